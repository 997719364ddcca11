//! deploy-on-push against a local AWS: the handler in-process with requests
//! counted, and the built binary through the Lambda Runtime API.
//!
//! moto stores `update-service --task-definition` as given and never advances
//! a service's deployments, so these tests assert on what was sent and stored.

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::TaskDefinitionField;
use deploy_on_push::{Controller, DeployConfig, DeployOnPush, DeployReport};
use lambda_runtime::{Context, LambdaEvent};
use nightshift::rollout::codedeploy::CodeDeploy;
use nightshift::signed::SignedHttp;
use nightshift::state::StateTable;
use nightshift_tests::platform::{
    CANARY, CLUSTER, CODEDEPLOY_APPLICATION, CODEDEPLOY_GROUP, SHOP, push_image, pushed_digest, registry, seed_shop,
};
use nightshift_tests::proxy::RecordingProxy;
use nightshift_tests::runtime::{FunctionProcess, Outcome, binary};
use nightshift_tests::sandbox::{ACCOUNT, REGION, STATE_TABLE, Sandbox};
use nightshift_tests::{emf, event};
use serde_json::{Value, json};
use std::sync::Arc;

async fn running_task_definitions(ecs: &Client) -> Vec<(String, String)> {
    let out = ecs
        .describe_services()
        .cluster(CLUSTER)
        .set_services(Some(SHOP[..10].iter().map(|s| (*s).to_owned()).collect()))
        .send()
        .await
        .unwrap();
    out.services()
        .iter()
        .map(|s| (s.service_name().unwrap().to_owned(), s.task_definition().unwrap().to_owned()))
        .collect()
}

/// The function in-process, its ECS, ECR, CodeDeploy and DynamoDB requests
/// counted together on the wire (the state table's are signed requests, not a client's).
fn function(sandbox: &Sandbox, dry_run: bool) -> (DeployOnPush, RecordingProxy) {
    let wire = RecordingProxy::start(sandbox.endpoint().trim_start_matches("http://"));
    let sdk = sandbox.sdk_config_for("deploy-on-push", &[("CLUSTERS", CLUSTER), ("STATE_TABLE", STATE_TABLE)]);
    let sdk = sdk.into_builder().endpoint_url(wire.endpoint()).build();
    let config = DeployConfig {
        clusters: vec![CLUSTER.into()],
        dry_run,
        state_table: STATE_TABLE.into(),
        registry_accounts: Vec::new(),
        identity: nightshift::identity::IdentityPatterns::default(),
    };
    let signed = Arc::new(SignedHttp::new(&sdk));
    let (ecs, ecr, codedeploy) = (Client::new(&sdk), aws_sdk_ecr::Client::new(&sdk), CodeDeploy::new(signed.clone()));
    let state = StateTable::new(signed, STATE_TABLE);
    (DeployOnPush::new(config, ecs, ecr, codedeploy, state), wire)
}

/// The push event of an image already in ECR.
fn push_event(tag: &str, digest: &str) -> LambdaEvent<Value> {
    let mut payload = event("deploy-on-push.ecr-push.json");
    payload["detail"]["image-tag"] = json!(tag);
    payload["detail"]["image-digest"] = json!(digest);
    LambdaEvent::new(payload, Context::default())
}

/// The event file's push (`shop/api:1.3.0`, in ECR since the shop was seeded).
fn push_1_3_0() -> LambdaEvent<Value> {
    push_event("1.3.0", &pushed_digest())
}

/// Pushes an image of `shop/api` to the sandbox's ECR; its push event.
async fn push(sandbox: &Sandbox, tag: &str, content: &str) -> LambdaEvent<Value> {
    let digest = push_image(&sandbox.ecr(), "shop/api", tag, content).await;
    push_event(tag, &digest)
}

async fn seed(sandbox: &Sandbox) -> Vec<(String, String)> {
    seed_shop(&sandbox.ecs(), &sandbox.ecr(), &sandbox.codedeploy()).await
}

fn reasons(report: &DeployReport) -> Vec<(String, String)> {
    let mut r: Vec<_> = report.skipped.iter().map(|s| (s.id.service.clone(), s.reason.clone())).collect();
    r.sort();
    r
}

#[tokio::test]
async fn a_push_rolls_out_to_exactly_the_services_whose_policy_takes_it() {
    // Given services following shop/api with different policies
    let sandbox = Sandbox::start();
    let ecs = sandbox.ecs();
    let before = seed(&sandbox).await;
    let (function, wire) = function(&sandbox, false);

    // When 1.3.0 is pushed
    let report = function.handle(push_1_3_0()).await.unwrap();

    // Then `api` and both named containers of `pair` move, to new revisions cloned from their running ones,
    // and the blue/green service gets a CodeDeploy deployment (see the blue/green tests)
    let moved: Vec<_> = report.deployed.iter().map(|d| (d.id.service.as_str(), d.controller)).collect();
    assert_eq!(
        moved,
        [("api", Controller::Ecs), ("blue-green", Controller::CodeDeploy), ("pair", Controller::Ecs)],
        "{report:#?}"
    );
    let deployed = &report.deployed[0];
    assert_eq!((deployed.id.cluster.as_str(), deployed.id.service.as_str()), (CLUSTER, "api"));
    let new_arn = deployed.new_task_definition.clone().unwrap();
    assert!(new_arn.ends_with("task-definition/api:2"), "{new_arn}");
    let pair: Vec<_> = report.deployed[2].images.iter().map(|i| i.container.as_str()).collect();
    assert_eq!(pair, ["app", "worker"], "nightshift:containers names two containers, separated by a space");
    let after = running_task_definitions(&ecs).await;
    for (name, td) in &before {
        let now = &after.iter().find(|(n, _)| n == name).unwrap().1;
        if name == "api" {
            assert_eq!(now, &new_arn);
        } else if name == "pair" {
            assert!(now.ends_with("task-definition/pair:2"), "{now}");
        } else {
            // blue-green too: ECS runs the new revision only once CodeDeploy has shifted the traffic
            assert_eq!(now, td, "{name} must not move");
        }
    }
    let old = ecs
        .describe_task_definition()
        .task_definition(&before[0].1)
        .include(TaskDefinitionField::Tags)
        .send()
        .await
        .unwrap();
    let new = ecs
        .describe_task_definition()
        .task_definition(&new_arn)
        .include(TaskDefinitionField::Tags)
        .send()
        .await
        .unwrap();
    let (old_td, new_td) = (old.task_definition().unwrap(), new.task_definition().unwrap());
    let app = &new_td.container_definitions()[0];
    assert_eq!(app.image(), Some(format!("{}/shop/api@{}", registry(), pushed_digest()).as_str()));
    assert_eq!(app.environment(), old_td.container_definitions()[0].environment());
    assert_eq!(app.port_mappings(), old_td.container_definitions()[0].port_mappings());
    assert_eq!((app.memory(), app.cpu()), (Some(512), 256));
    assert_eq!(new_td.container_definitions()[1], old_td.container_definitions()[1], "the proxy is untouched");
    assert_eq!(new_td.task_role_arn(), old_td.task_role_arn());
    assert_eq!(new_td.execution_role_arn(), old_td.execution_role_arn());
    assert_eq!(new_td.network_mode(), old_td.network_mode());
    assert_eq!((new_td.cpu(), new_td.memory()), (Some("512"), Some("1024")));
    assert_eq!(new_td.volumes(), old_td.volumes());
    let mut tags: Vec<_> = new.tags().iter().map(|t| (t.key().unwrap(), t.value().unwrap())).collect();
    tags.sort();
    assert_eq!(tags, [("nightshift:image-tag/app", "1.3.0"), ("team", "shop")]);
    let api = ecs.describe_services().cluster(CLUSTER).services("api").send().await.unwrap();
    // The breaker was off (seed_shop): it is on now, with rollback, and the team's own settings are kept
    let deployment = api.services()[0].deployment_configuration().unwrap();
    let breaker = deployment.deployment_circuit_breaker().unwrap();
    assert!(breaker.enable && breaker.rollback);
    assert_eq!((deployment.maximum_percent(), deployment.minimum_healthy_percent()), (Some(150), Some(50)));
    let untouched = ecs.describe_services().cluster(CLUSTER).services("worker").send().await.unwrap();
    let worker_breaker = untouched.services()[0].deployment_configuration().unwrap().deployment_circuit_breaker();
    assert!(!worker_breaker.unwrap().enable, "a service that did not move keeps its breaker off");

    // And every other follower is reported with its reason
    let r = reasons(&report);
    let reason =
        |name: &str| r.iter().find(|(n, _)| n == name).map(|(_, why)| why.as_str()).unwrap_or("(not reported)");
    assert_eq!(reason("worker"), "app: 1.3.0 is outside patch of 1.2.0");
    assert_eq!(reason("api-v2"), format!("no container runs {}/shop/api", registry()));
    assert_eq!(reason("preview"), "app: tracks latest, not 1.3.0");
    assert!(reason("odd").starts_with("policy not understood"), "{}", reason("odd"));
    assert_eq!(reason("rc"), "app: 1.3.0 does not match glob:RC_*");
    assert_eq!(reason("nightly"), "app: 1.3.0 does not match regex:nightly-[0-9]+");
    assert_eq!(reason("legacy"), "(not reported)");
    assert_eq!(wire.count("RegisterTaskDefinition"), 2, "blue-green shares api's revision and change");
    assert_eq!((wire.count("UpdateService"), wire.count("CreateDeployment")), (2, 1));
    assert_eq!(
        wire.count("DescribeServices"),
        3,
        "ten services, one batch; each rolling update's read again under its lease"
    );
    assert_eq!(wire.count("BatchGetItem"), 1, "the quarantine of every follower, one read");
    assert_eq!((wire.count("PutItem"), wire.count("DeleteItem")), (2, 2), "a lease taken and given back per update");
    assert_eq!(wire.count("DescribeImages"), 1, "one look at ECR for every change");
    // And each follower whose task definition was read now carries what it runs
    assert_eq!(wire.count("TagResource"), 7, "api, worker, api-v2, preview, rc, nightly, pair");
    let mut recorded: Vec<&str> = report.recorded.iter().map(|id| id.service.as_str()).collect();
    recorded.sort_unstable();
    assert_eq!(recorded, ["api", "api-v2", "nightly", "pair", "preview", "rc", "worker"], "every record is reported");
    let records = ecs
        .describe_services()
        .cluster(CLUSTER)
        .services("api")
        .services("preview")
        .include(aws_sdk_ecs::types::ServiceField::Tags)
        .send()
        .await
        .unwrap();
    let record =
        |i: usize| nightshift::ecs::tag_value(records.services()[i].tags(), "nightshift:running").map(str::to_owned);
    assert_eq!(record(0).as_deref(), Some("api:2 app=shop/api:1.3.0"));
    assert_eq!(record(1).as_deref(), Some("preview:1 app=shop/api:latest"));

    // And the same event again, even in a fresh process, writes nothing; the ECS services cost no
    // task definition read (the blue/green one is read until CodeDeploy is done, to find the replay)
    let (fresh, wire) = self::function(&sandbox, false);
    let again = fresh.handle(push_1_3_0()).await.unwrap();
    assert!(again.deployed.is_empty() && again.failed.is_empty() && again.recorded.is_empty(), "{again:#?}");
    assert_eq!(
        reasons(&again).iter().find(|(n, _)| n == "api").unwrap().1,
        "app: 1.3.0 is not newer than the running 1.3.0"
    );
    let writes = ["RegisterTaskDefinition", "UpdateService", "TagResource", "CreateDeployment"];
    assert!(writes.iter().all(|w| wire.count(w) == 0), "{:?}", wire.all());
    assert_eq!(wire.count("DescribeTaskDefinition"), 2, "blue-green's running revision and its group's target");
    assert_eq!(running_task_definitions(&ecs).await[0].1, new_arn);
}

#[tokio::test]
async fn a_tracked_tag_moves_when_its_digest_changes() {
    let sandbox = Sandbox::start();
    seed(&sandbox).await;
    let (function, _wire) = function(&sandbox, false);
    let latest = push(&sandbox, "latest", "shop/api latest 2").await;
    let report = function.handle(replay(&latest)).await.unwrap();
    let moved: Vec<_> = report.deployed.iter().map(|d| d.id.service.as_str()).collect();
    assert_eq!(moved, ["preview"], "{report:#?}");
    let again = function.handle(latest).await.unwrap();
    assert!(again.deployed.is_empty());
}

fn replay(event: &LambdaEvent<Value>) -> LambdaEvent<Value> {
    LambdaEvent::new(event.payload.clone(), Context::default())
}

fn deployed(report: &DeployReport) -> Vec<&str> {
    report.deployed.iter().map(|d| d.id.service.as_str()).collect()
}

fn skipped<'a>(report: &'a DeployReport, service: &str) -> &'a str {
    report.skipped.iter().find(|s| s.id.service == service).map_or("(not skipped)", |s| s.reason.as_str())
}

#[tokio::test]
async fn docker_labels_carry_glob_and_regex_policies_that_ecs_tags_cannot() {
    // Given `rc` (service tag label, container label glob:RC_*) and `nightly` (service
    // tag semver, overridden by its container's label regex:nightly-[0-9]+)
    let sandbox = Sandbox::start();
    seed(&sandbox).await;
    let (function, _wire) = function(&sandbox, false);

    // When RC_1.3.0 and then nightly-42 are pushed
    let rc = function.handle(push(&sandbox, "RC_1.3.0", "rc 1.3.0").await).await.unwrap();
    let nightly = function.handle(push(&sandbox, "nightly-42", "nightly 42").await).await.unwrap();

    // Then each moves only its labelled container, and nothing else moves
    assert_eq!(deployed(&rc), ["rc"], "{rc:#?}");
    assert_eq!(deployed(&nightly), ["nightly"], "{nightly:#?}");
    assert_eq!(skipped(&nightly, "rc"), "app: nightly-42 does not match glob:RC_*");
    let td = sandbox
        .ecs()
        .describe_task_definition()
        .task_definition(rc.deployed[0].new_task_definition.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    let app = &td.task_definition().unwrap().container_definitions()[0];
    assert_eq!(app.docker_labels().unwrap()["nightshift.deploy"], "glob:RC_*", "the label stays on the new revision");
}

#[tokio::test]
async fn a_late_or_repeated_older_push_never_moves_a_service_backwards() {
    // Given two pushes of `latest` and two nightly builds, in that order
    let sandbox = Sandbox::start();
    seed(&sandbox).await;
    let (function, wire) = function(&sandbox, false);
    let older_latest = push(&sandbox, "latest", "shop/api latest 2").await;
    let newer_latest = push(&sandbox, "latest", "shop/api latest 3").await;
    let older_nightly = push(&sandbox, "nightly-42", "nightly 42").await;
    let newer_nightly = push(&sandbox, "nightly-43", "nightly 43").await;

    // When their events arrive newest first, then the older ones late
    assert_eq!(deployed(&function.handle(replay(&newer_latest)).await.unwrap()), ["preview"]);
    assert_eq!(deployed(&function.handle(replay(&newer_nightly)).await.unwrap()), ["nightly"]);
    wire.reset();
    let late_latest = function.handle(replay(&older_latest)).await.unwrap();
    let late_nightly = function.handle(replay(&older_nightly)).await.unwrap();

    // Then nothing moves back, and the report says why
    assert!(late_latest.deployed.is_empty() && late_nightly.deployed.is_empty());
    assert_eq!(
        skipped(&late_latest, "preview"),
        "app: latest no longer names this image in ECR: a later push moved it"
    );
    let why = skipped(&late_nightly, "nightly");
    assert!(why.starts_with("app: the running image was pushed at ") && why.contains(", after this push ("), "{why}");
    assert_eq!((wire.count("RegisterTaskDefinition"), wire.count("UpdateService")), (0, 0));

    // And the newest events again (a retry after a partial failure) change nothing either
    wire.reset();
    for event in [&newer_latest, &newer_nightly] {
        assert!(function.handle(replay(event)).await.unwrap().deployed.is_empty());
    }
    assert_eq!(
        (wire.count("RegisterTaskDefinition"), wire.count("UpdateService"), wire.count("TagResource")),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn a_push_whose_image_is_no_longer_in_ecr_is_not_deployed() {
    let sandbox = Sandbox::start();
    seed(&sandbox).await;
    let (function, wire) = function(&sandbox, false);
    let event = push(&sandbox, "RC_1.3.0", "rc 1.3.0").await;
    let digest = event.payload["detail"]["image-digest"].as_str().unwrap().to_owned();
    sandbox
        .ecr()
        .batch_delete_image()
        .repository_name("shop/api")
        .image_ids(aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(&digest).build())
        .send()
        .await
        .unwrap();
    let report = function.handle(event).await.unwrap();
    assert!(report.deployed.is_empty());
    assert_eq!(skipped(&report, "rc"), format!("app: {digest} no longer exists in ECR"));
    assert_eq!((wire.count("RegisterTaskDefinition"), wire.count("UpdateService")), (0, 0));
}

#[tokio::test]
async fn dry_run_decides_and_registers_nothing() {
    let sandbox = Sandbox::start();
    let ecs = sandbox.ecs();
    let before = seed(&sandbox).await;
    let (function, wire) = function(&sandbox, true);
    let report = function.handle(push_1_3_0()).await.unwrap();
    assert!(report.dry_run);
    assert_eq!(report.deployed.len(), 3);
    assert!(report.deployed.iter().all(|d| d.new_task_definition.is_none()));
    assert!(report.recorded.is_empty(), "no record is written with DRY_RUN");
    let canary = report.deployed[1].codedeploy.clone().unwrap();
    assert_eq!((canary.deployment_config.as_str(), canary.deployment_id), (CANARY, None));
    let writes = ["RegisterTaskDefinition", "UpdateService", "TagResource", "CreateDeployment"];
    assert!(writes.iter().all(|w| wire.count(w) == 0), "{:?}", wire.all());
    let after = running_task_definitions(&ecs).await;
    assert!(before.iter().all(|b| after.contains(b)));
}

#[tokio::test]
async fn a_push_no_policy_takes_costs_only_the_service_reads_once_the_followers_are_recorded() {
    // Given a shop whose followers carry records (a first push read their revisions)
    let sandbox = Sandbox::start();
    seed(&sandbox).await;
    let (function, wire) = function(&sandbox, false);
    let first = function.handle(push(&sandbox, "release-2026-11-26", "release 1").await).await.unwrap();
    assert!(first.deployed.is_empty() && first.failed.is_empty(), "{first:#?}");
    assert_eq!(wire.count("TagResource"), 8);

    // When a tag no policy or label takes is pushed, in a fresh process
    let (fresh, wire) = self::function(&sandbox, false);
    let report = fresh.handle(push(&sandbox, "release-2026-11-27", "release 2").await).await.unwrap();

    // Then only the services were read
    assert!(report.deployed.is_empty() && report.failed.is_empty());
    assert_eq!(wire.all().into_keys().collect::<Vec<_>>(), ["BatchGetItem", "DescribeServices", "ListServices"]);
}

#[tokio::test]
async fn a_revision_read_once_is_not_read_again_even_by_a_fresh_process() {
    // Given a function that has seen one push (track could take any tag, so a revision was read and recorded)
    let sandbox = Sandbox::start();
    seed(&sandbox).await;
    let (warm, wire) = function(&sandbox, false);
    warm.handle(push(&sandbox, "build-1", "build 1").await).await.unwrap();
    assert_eq!((wire.count("DescribeTaskDefinition"), wire.count("TagResource")), (7, 8), "blue-green shares api's");

    // When another push concerns none of the services, then no task definition is read again,
    // in the same warm process or in a cold one
    for (n, (function, wire)) in [(warm, wire), function(&sandbox, false)].into_iter().enumerate() {
        wire.reset();
        let tag = format!("build-{}", n + 2);
        let report = function.handle(push(&sandbox, &tag, &tag).await).await.unwrap();
        assert!(report.deployed.is_empty());
        assert_eq!(wire.all().into_keys().collect::<Vec<_>>(), ["BatchGetItem", "DescribeServices", "ListServices"]);
    }
}

#[tokio::test]
async fn events_that_are_not_a_tagged_successful_push_change_nothing() {
    let sandbox = Sandbox::start();
    seed(&sandbox).await;
    let (function, wire) = function(&sandbox, false);
    let mut deletion = event("deploy-on-push.ecr-push.json");
    deletion["detail"]["action-type"] = json!("DELETE");
    let report = function.handle(LambdaEvent::new(deletion, Context::default())).await.unwrap();
    assert!(report.ignored.unwrap().contains("not a successful push"));
    let mut untagged = event("deploy-on-push.ecr-push.json");
    untagged["detail"].as_object_mut().unwrap().remove("image-tag");
    let report = function.handle(LambdaEvent::new(untagged, Context::default())).await.unwrap();
    assert!(report.ignored.unwrap().contains("no tag"));
    let mut broken = event("deploy-on-push.ecr-push.json");
    broken["detail"].as_object_mut().unwrap().remove("repository-name");
    let err = function.handle(LambdaEvent::new(broken, Context::default())).await.unwrap_err();
    assert_eq!(err.to_string(), "invalid event: detail.repository-name is missing");
    assert_eq!(wire.total(), 0);
}

/// The group's deployments, oldest first, each with its AppSpec (parsed) and configuration.
async fn group_deployments(
    sandbox: &Sandbox,
) -> Vec<(String, Value, String, aws_sdk_codedeploy::types::DeploymentStatus)> {
    let codedeploy = sandbox.codedeploy();
    let ids = codedeploy
        .list_deployments()
        .application_name(CODEDEPLOY_APPLICATION)
        .deployment_group_name(CODEDEPLOY_GROUP)
        .send()
        .await
        .unwrap()
        .deployments
        .unwrap_or_default();
    let mut found = Vec::new();
    for id in ids {
        let info = codedeploy.get_deployment().deployment_id(&id).send().await.unwrap().deployment_info.unwrap();
        let rollback = info.auto_rollback_configuration().unwrap();
        let events: Vec<_> = rollback.events().iter().map(|e| e.as_str()).collect();
        assert!(rollback.enabled && events == ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"], "{rollback:?}");
        let content = info.revision().unwrap().app_spec_content().unwrap().content().unwrap();
        let spec: Value = serde_json::from_str(content).unwrap();
        found.push((id, spec, info.deployment_config_name().unwrap().to_owned(), info.status().unwrap().clone()));
    }
    found
}

/// The AppSpec nightshift writes for the shop's blue/green service.
fn shop_appspec(task_definition: &str) -> Value {
    json!({"version": 0.0, "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": {
        "TaskDefinition": task_definition,
        "LoadBalancerInfo": {"ContainerName": "app", "ContainerPort": 8080}}}}]})
}

async fn tag_blue_green(sandbox: &Sandbox, tags: &[(&str, &str)]) {
    let tags = tags.iter().map(|(k, v)| aws_sdk_ecs::types::Tag::builder().key(*k).value(*v).build());
    let arn = format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service/{CLUSTER}/blue-green");
    sandbox.ecs().tag_resource().resource_arn(arn).set_tags(Some(tags.collect())).send().await.unwrap();
}

#[tokio::test]
async fn a_blue_green_service_takes_the_configuration_and_test_hook_its_tags_name() {
    // Given the blue/green service naming its group, another configuration and a canary test
    let sandbox = Sandbox::start();
    seed(&sandbox).await;
    let linear = "CodeDeployDefault.ECSLinear10PercentEvery1Minutes";
    tag_blue_green(
        &sandbox,
        &[
            ("nightshift:codedeploy", "shop/blue-green"),
            ("nightshift:deployment-config", linear),
            ("nightshift:test-hook", "CodeDeployHook_shop-canary"),
        ],
    )
    .await;
    let (function, wire) = function(&sandbox, false);

    // When 1.3.0 is pushed
    let report = function.handle(push_1_3_0()).await.unwrap();

    // Then the deployment runs the canary test after test traffic, by the named configuration
    let blue_green = report.deployed.iter().find(|d| d.id.service == "blue-green").unwrap();
    let created = blue_green.codedeploy.clone().unwrap();
    assert_eq!((created.application.as_str(), created.deployment_group.as_str()), ("shop", "blue-green"));
    assert_eq!(created.deployment_config, linear);
    let deployments = group_deployments(&sandbox).await;
    assert_eq!(deployments.len(), 1);
    let mut expected = shop_appspec(blue_green.new_task_definition.as_deref().unwrap());
    expected["Hooks"] = json!([{"AfterAllowTestTraffic": "CodeDeployHook_shop-canary"}]);
    assert_eq!((&deployments[0].1, deployments[0].2.as_str()), (&expected, linear));
    assert_eq!(created.deployment_id.as_deref(), Some(deployments[0].0.as_str()));
    // And the named group was read alone, without listing the account's applications
    assert_eq!((wire.count("ListApplications"), wire.count("BatchGetDeploymentGroups")), (0, 1));
}

#[tokio::test]
async fn a_group_that_does_not_deploy_the_service_fails_only_that_service() {
    let sandbox = Sandbox::start();
    seed(&sandbox).await;
    let (function, wire) = function(&sandbox, false);
    for (named, reason) in [
        ("shop/gone", "CodeDeploy has no deployment group shop/gone (named by nightshift:codedeploy)"),
        ("blue-green", "nightshift:codedeploy is \"blue-green\", not <application>/<deployment-group>"),
    ] {
        tag_blue_green(&sandbox, &[("nightshift:codedeploy", named)]).await;
        let err = function.handle(push_1_3_0()).await.unwrap_err();
        assert_eq!(nightshift::LambdaFailure::error_type(&err), "DeployFailed");
        assert!(err.to_string().ends_with(&format!("shop/blue-green: {reason}")), "{err}");
    }
    assert_eq!(wire.count("CreateDeployment"), 0);
    assert!(group_deployments(&sandbox).await.is_empty());
    assert!(running_task_definitions(&sandbox.ecs()).await[0].1.ends_with("api:2"), "api went ahead");
}

#[tokio::test]
async fn a_group_not_tagged_for_nightshift_is_refused_by_iam_and_the_failure_says_which_tag_to_add() {
    // Given IAM refusing CreateDeployment, as it does for a group not tagged nightshift:deploys
    let sandbox = Sandbox::start();
    seed(&sandbox).await;
    let denied = json!({"status": 400, "type": "AccessDeniedException",
                        "message": "User is not authorized to perform: codedeploy:CreateDeployment"});
    sandbox.fail("CreateDeployment", json!([denied]));

    // When a push reaches the blue/green service
    let (function, _wire) = function(&sandbox, false);
    let err = function.handle(push_1_3_0()).await.unwrap_err();

    // Then only that service fails, naming the tag its group and application need
    let message = err.to_string();
    assert!(message.contains("shop/blue-green: CodeDeploy CreateDeployment"), "{message}");
    assert!(message.contains("tagged nightshift:deploys: tag shop/blue-green and its application"), "{message}");
    assert!(running_task_definitions(&sandbox.ecs()).await[0].1.ends_with("api:2"), "api went ahead");
}

#[tokio::test]
async fn two_pushes_at_once_make_one_deployment_and_codedeploy_refuses_the_other() {
    // Given two processes that both find the group free (each one's read of it waits for the other's)
    let sandbox = Sandbox::start();
    seed(&sandbox).await;
    let next = push(&sandbox, "1.3.1", "shop/api 1.3.1").await;
    sandbox.together("BatchGetDeploymentGroups", 2);
    let ((one, _one_wire), (other, _other_wire)) = (function(&sandbox, false), function(&sandbox, false));

    // When 1.3.0 and 1.3.1 are handled at the same time
    let (a, b) = tokio::join!(one.handle(push_1_3_0()), other.handle(next));

    // Then CodeDeploy holds one deployment, and the other push failed saying why (so Lambda retries it)
    assert_eq!(group_deployments(&sandbox).await.len(), 1);
    let refused = [a, b].into_iter().filter_map(Result::err).map(|e| e.to_string()).collect::<Vec<_>>();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].contains("shop/blue-green: CodeDeploy CreateDeployment on shop/blue-green failed: The Deployment Group 'blue-green' already has an active Deployment 'd-"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn the_built_binary_canaries_blue_green_keeps_ecs_on_the_breaker_and_retries_a_busy_group() {
    let sandbox = Sandbox::start();
    let ecs = sandbox.ecs();
    seed(&sandbox).await;
    let mut env = sandbox.function_env();
    env.push(("CLUSTERS".into(), CLUSTER.into()));
    let mut process = FunctionProcess::spawn(&binary("deploy-on-push"), &env);

    // A push: ECS services roll with the circuit breaker, the blue/green one gets one canary deployment
    let report = process.invoke(&event("deploy-on-push.ecr-push.json")).response();
    let deployed: Vec<_> = report["deployed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["service"].as_str().unwrap(), d["controller"].as_str().unwrap()))
        .collect();
    assert_eq!(deployed, [("api", "ECS"), ("blue-green", "CODE_DEPLOY"), ("pair", "ECS")]);
    assert_eq!(report["deployed"][0]["images"][0]["container"], "app");
    let canary = &report["deployed"][1];
    let deployments = group_deployments(&sandbox).await;
    assert_eq!(deployments.len(), 1, "exactly one deployment");
    let (id, spec, config, _) = &deployments[0];
    assert_eq!(
        canary["codedeploy"],
        json!({"application": "shop", "deployment_group": "blue-green", "deployment_config": CANARY, "deployment_id": id})
    );
    assert_eq!((spec, config.as_str()), (&shop_appspec(canary["new_task_definition"].as_str().unwrap()), CANARY));
    let running = running_task_definitions(&ecs).await;
    assert!(running[0].1.ends_with("api:2") && running[5].1.ends_with("api:1"), "{running:?}");
    let breaker = ecs.describe_services().cluster(CLUSTER).services("api").send().await.unwrap().services()[0]
        .deployment_configuration()
        .and_then(|d| d.deployment_circuit_breaker().cloned())
        .unwrap();
    assert!(breaker.enable && breaker.rollback);

    // The same event again creates nothing
    let again = process.invoke(&event("deploy-on-push.ecr-push.json")).response();
    assert_eq!(again["deployed"], json!([]));
    let blue_green = again["skipped"].as_array().unwrap().iter().find(|s| s["service"] == "blue-green").unwrap();
    assert_eq!(
        blue_green["reason"],
        format!("CodeDeploy deployment {id} of shop/blue-green already deploys this revision (InProgress)")
    );

    // A newer push while the canary runs: the ECS services move, the blue/green one fails, the invocation fails
    let next = push(&sandbox, "1.3.1", "shop/api 1.3.1").await.payload;
    match process.invoke(&next) {
        Outcome::Error { error_type, error_message } => {
            assert_eq!(error_type, "DeployFailed");
            assert!(
                error_message.ends_with(&format!(
                    "shop/blue-green: CodeDeploy deployment {id} of shop/blue-green is InProgress: the group takes \
                     no second deployment until it ends (the push is retried)"
                )),
                "{error_message}"
            );
        }
        other => panic!("expected the invocation to fail, got {other:?}"),
    }
    assert_eq!(group_deployments(&sandbox).await.len(), 1);
    assert!(running_task_definitions(&ecs).await[0].1.ends_with("api:3"));

    // Once the canary is done, Lambda's retry of that push deploys it
    sandbox.end_deployment(id, "Succeeded");
    let retried = process.invoke(&next).response();
    let moved: Vec<_> = retried["deployed"].as_array().unwrap().iter().map(|d| d["service"].clone()).collect();
    assert_eq!(moved, [json!("blue-green")], "{retried:#}");
    let deployments = group_deployments(&sandbox).await;
    assert_eq!(deployments.len(), 2);
    assert_eq!(deployments[1].1, shop_appspec(retried["deployed"][0]["new_task_definition"].as_str().unwrap()));

    let lines = process.report_lines(4);
    let names = ["ServicesDeployed", "ServicesSkipped", "ServicesFailed", "RunFailed"];
    assert_eq!(emf::metric_values(&lines[0], &names), [3.0, 6.0, 0.0, 0.0]);
    assert_eq!(emf::metric_values(&lines[1], &names), [0.0, 9.0, 0.0, 0.0]);
    assert_eq!(emf::metric_values(&lines[2], &names), [2.0, 6.0, 1.0, 1.0]);
    assert_eq!(emf::metric_values(&lines[3], &names), [1.0, 8.0, 0.0, 0.0]);
}
