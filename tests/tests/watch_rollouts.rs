//! watch-rollouts against a local AWS whose ECS keeps deployments as ECS does:
//! the built binary, driven through the Lambda Runtime API with the event
//! shapes of `events/`, tells each rollout's outcome once, quarantines what
//! was rolled back, and the built deploy-on-push then refuses it.

use aws_sdk_ecs::types::ServiceField;
use nightshift_tests::platform::{CLUSTER, app, push_image, pushed_digest, registry, seed_shop, task_definition_of};
use nightshift_tests::runtime::{FunctionProcess, Outcome, binary};
use nightshift_tests::sandbox::{ACCOUNT, REGION, Sandbox};
use nightshift_tests::{emf, event};
use serde_json::{Value, json};

/// The shop, with `api` telling a Slack and a Teams channel about its rollouts.
async fn shop(sandbox: &Sandbox) {
    seed_shop(&sandbox.ecs(), &sandbox.ecr(), &sandbox.codedeploy()).await;
    sandbox.channel("slack/data-team", "slack").await;
    sandbox.channel("teams/ops", "teams").await;
    let tag = aws_sdk_ecs::types::Tag::builder().key("nightshift:notify").value("slack/data-team teams/ops").build();
    sandbox.ecs().tag_resource().resource_arn(api_arn()).tags(tag).send().await.unwrap();
}

fn api_arn() -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service/{CLUSTER}/api")
}

fn spawn(sandbox: &Sandbox, function: &str, extra: &[(&str, &str)]) -> FunctionProcess {
    let mut env = sandbox.function_env();
    env.push(("CLUSTERS".into(), CLUSTER.into()));
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    FunctionProcess::spawn(&binary(function), &env)
}

/// Ends `api`'s rollout in the sandbox's ECS; its deployments as ECS now lists them.
fn end_rollout(sandbox: &Sandbox, outcome: &str) {
    sandbox.end_rollout(CLUSTER, "api", outcome);
}

async fn api(sandbox: &Sandbox) -> aws_sdk_ecs::types::Service {
    nightshift_tests::platform::described(&sandbox.ecs(), CLUSTER, "api").await
}

fn tag(service: &aws_sdk_ecs::types::Service, key: &str) -> Option<String> {
    nightshift::ecs::tag_value(service.tags(), key).map(str::to_owned)
}

/// An event of `events/` for this deployment of `api`.
fn deployment_event(file: &str, deployment: &str, reason: Option<&str>) -> Value {
    let mut event = event(file);
    event["detail"]["deploymentId"] = json!(deployment);
    if let Some(reason) = reason {
        event["detail"]["reason"] = json!(reason);
    }
    event
}

#[tokio::test]
async fn a_rolled_back_rollout_is_told_once_to_each_channel_and_its_digest_never_comes_back() {
    // Given api rolled out 1.3.0 by deploy-on-push, and ECS's circuit breaker failing it and rolling back
    let sandbox = Sandbox::start();
    shop(&sandbox).await;
    let mut deploy = spawn(&sandbox, "deploy-on-push", &[]);
    let pushed = deploy.invoke(&event("deploy-on-push.ecr-push.json")).response();
    assert_eq!(pushed["deployed"][0]["service"], "api");
    end_rollout(&sandbox, "FAILED");
    let service = api(&sandbox).await;
    let ids: Vec<(String, String)> = service
        .deployments()
        .iter()
        .map(|d| (d.id().unwrap().to_owned(), d.rollout_state_reason().unwrap_or_default().to_owned()))
        .collect();
    let (rollback, reason) = ids[0].clone();
    let failed = ids[1].0.clone();
    assert!(reason.contains("rolling back to"), "{ids:?}");

    // When ECS's events arrive twice and out of order, in two processes
    let rolling_back = deployment_event("watch-rollouts.ecs-deployment-rolling-back.json", &rollback, Some(&reason));
    let failure = deployment_event("watch-rollouts.ecs-deployment-failed.json", &failed, None);
    let mut watch = spawn(&sandbox, "watch-rollouts", &[]);
    let first = watch.invoke(&rolling_back).response();
    let again = watch.invoke(&failure).response();
    let mut cold = spawn(&sandbox, "watch-rollouts", &[]);
    let late = cold.invoke(&rolling_back).response();
    end_rollout(&sandbox, "COMPLETED");
    let done =
        cold.invoke(&deployment_event("watch-rollouts.ecs-deployment-completed.json", &rollback, None)).response();

    // Then the outcome was decided once: rolled back, of the failed deployment, with its image
    assert_eq!((first["outcome"].as_str(), first["rollout"].as_str()), (Some("rolled back"), Some(failed.as_str())));
    assert!(first["task_definition"].as_str().unwrap().ends_with("task-definition/api:2"));
    assert!(first["previous_task_definition"].as_str().unwrap().ends_with("task-definition/api:1"));
    assert_eq!(
        first["images"][0],
        json!({
            "container": "app",
            "image": format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/shop/api@{}", pushed_digest()),
            "tag": "1.3.0",
            "digest": pushed_digest(),
        })
    );
    for later in [&again, &late, &done] {
        assert_eq!(later["outcome"], Value::Null, "{later:#}");
        assert!(later.get("told").is_none(), "{later:#}");
    }

    // And each channel was told once, in its own format
    let (slack, teams) = (sandbox.webhooks("slack"), sandbox.webhooks("teams"));
    assert_eq!((slack.len(), teams.len()), (1, 1));
    assert_eq!(slack[0]["blocks"][0]["text"]["text"], "Rollout rolled back: shop/api");
    assert!(slack[0]["text"].as_str().unwrap().contains("ECS rolled the service back to api:1"), "{}", slack[0]);
    let card = &teams[0]["attachments"][0]["content"];
    assert_eq!(
        (card["version"].as_str(), card["body"][0]["text"].as_str()),
        (Some("1.4"), Some("Rollout rolled back: shop/api"))
    );

    // And the digest is quarantined on the service, and the outcome remembered, in the state table
    let short = nightshift::quarantine::short(&pushed_digest());
    let memory = sandbox.memory(&api_arn()).await;
    assert_eq!(sandbox.quarantined(&api_arn()).await, [pushed_digest()]);
    assert_eq!((memory.mark(&failed), memory.mark(&rollback)), (Some("rolled-back"), Some("rollback")));
    let service = api(&sandbox).await;
    assert_eq!((tag(&service, "nightshift:quarantine"), tag(&service, "nightshift:told")), (None, None), "no tags");
    assert_eq!(first["quarantined"], json!([short]));

    // And deploy-on-push refuses that digest for api, replayed or pushed under another tag
    let replayed = deploy.invoke(&event("deploy-on-push.ecr-push.json")).response();
    let retagged_digest = push_image(&sandbox.ecr(), "shop/api", "1.3.1", "shop/api 1.3.0").await;
    assert_eq!(retagged_digest, pushed_digest());
    let mut retagged = event("deploy-on-push.ecr-push.json");
    retagged["detail"]["image-tag"] = json!("1.3.1");
    let retagged = deploy.invoke(&retagged).response();
    for report in [&replayed, &retagged] {
        let api = report["skipped"].as_array().unwrap().iter().find(|s| s["service"] == "api").unwrap();
        assert_eq!(
            api["reason"],
            format!("{short} is quarantined on this service: a rollout of it failed or was rolled back")
        );
        assert!(report["deployed"].as_array().unwrap().iter().all(|d| d["service"] != "api"));
        assert_eq!(report["told"].as_array().map(Vec::len), Some(2), "{report:#}");
    }
    // And says so to api's channels, each time
    let slack = sandbox.webhooks("slack");
    assert_eq!(slack.len(), 3);
    assert_eq!(slack[1]["blocks"][0]["text"]["text"], "Push refused: shop/api");
    assert!(slack[2]["text"].as_str().unwrap().contains("shop/api:1.3.1"), "{}", slack[2]);
    let lines = watch.report_lines(2);
    let names = ["RolloutSucceeded", "RolloutFailed", "RolloutRolledBack", "ChannelsTold", "RunFailed"];
    assert_eq!(emf::metric_values(&lines[0], &names), [0.0, 0.0, 1.0, 2.0, 0.0]);
}

#[tokio::test]
async fn a_failed_rollout_quarantines_only_the_digest_it_changed_not_a_sidecar_pinned_beside_it() {
    // Given api running app 1.2.0 beside a sidecar pinned by digest, which every revision keeps
    let sandbox = Sandbox::start();
    shop(&sandbox).await;
    let ecs = sandbox.ecs();
    let sidecar_digest = format!("sha256:{}", "5".repeat(64));
    let mut sidecar = app(&format!("{}/shop/envoy@{sidecar_digest}", registry()));
    sidecar.name = Some("envoy".into());
    let app_image = format!("{}/shop/api:1.2.0", registry());
    let revision = task_definition_of(&ecs, "api", vec![app(&app_image), sidecar]).await;
    ecs.update_service().cluster(CLUSTER).service("api").task_definition(&revision).send().await.unwrap();
    end_rollout(&sandbox, "COMPLETED");

    // When deploy-on-push rolls 1.3.0 out to app, and ECS fails the rollout and rolls it back
    let pushed = spawn(&sandbox, "deploy-on-push", &[]).invoke(&event("deploy-on-push.ecr-push.json")).response();
    assert_eq!(pushed["deployed"][0]["images"].as_array().map(Vec::len), Some(1), "{pushed:#}");
    end_rollout(&sandbox, "FAILED");
    let failed = api(&sandbox).await.deployments()[1].id().unwrap().to_owned();
    let failure = deployment_event("watch-rollouts.ecs-deployment-failed.json", &failed, None);
    let told = spawn(&sandbox, "watch-rollouts", &[]).invoke(&failure).response();

    // Then only the pushed digest is quarantined; the sidecar, which did not change, is not
    let short = nightshift::quarantine::short(&pushed_digest());
    assert_eq!(told["quarantined"], json!([short]), "{told:#}");
    assert_eq!(sandbox.quarantined(&api_arn()).await, [pushed_digest()]);
}

#[tokio::test]
async fn an_event_forwarded_from_another_account_or_region_leaves_the_local_service_of_that_name_alone() {
    // Given api's rollout failed and rolled back here, not yet told
    let sandbox = Sandbox::start();
    shop(&sandbox).await;
    spawn(&sandbox, "deploy-on-push", &[]).invoke(&event("deploy-on-push.ecr-push.json")).response();
    end_rollout(&sandbox, "FAILED");
    let failed = api(&sandbox).await.deployments()[1].id().unwrap().to_owned();
    let mut watch = spawn(&sandbox, "watch-rollouts", &[]);
    // And a service shop/api in another account (reached through an assumed role) and in another region
    let elsewhere = [("210987654321", REGION), (ACCOUNT, "eu-central-1")];
    let mut foreign = Vec::new();
    for (account, region) in elsewhere {
        let ecs = aws_sdk_ecs::Client::new(&sandbox.config_in(account, region));
        ecs.create_cluster().cluster_name(CLUSTER).send().await.unwrap();
        let container =
            aws_sdk_ecs::types::ContainerDefinition::builder().name("app").image("nginx:1.27").memory(256).build();
        let td = ecs.register_task_definition().family("api").container_definitions(container).send().await.unwrap();
        let td = td.task_definition().and_then(|t| t.task_definition_arn()).unwrap().to_owned();
        ecs.create_service()
            .cluster(CLUSTER)
            .service_name("api")
            .task_definition(&td)
            .desired_count(1)
            .send()
            .await
            .unwrap();
        let service = nightshift_tests::platform::described(&ecs, CLUSTER, "api").await;
        assert_eq!(
            service.service_arn(),
            Some(format!("arn:aws:ecs:{region}:{account}:service/{CLUSTER}/api").as_str())
        );
        foreign.push((ecs, service));
    }

    // When the failure of that service in another account, then in another region, arrives
    let mut reports = Vec::new();
    for (account, region) in elsewhere {
        let mut forwarded = deployment_event("watch-rollouts.ecs-deployment-failed.json", &failed, None);
        forwarded["account"] = json!(account);
        forwarded["region"] = json!(region);
        forwarded["resources"] = json!([format!("arn:aws:ecs:{region}:{account}:service/{CLUSTER}/api")]);
        reports.push(watch.invoke(&forwarded).response());
    }

    // Then each is ignored with where it came from, and the local api is neither told, quarantined nor recorded
    for (report, place) in
        reports.iter().zip(["account 210987654321 in us-east-1", "account 123456789012 in eu-central-1"])
    {
        let why = report["ignored"].as_str().unwrap_or_default();
        assert!(why.starts_with(&format!("the event is about {place}; this function acts in account")), "{report:#}");
        assert_eq!(report["outcome"], Value::Null);
    }
    assert!(sandbox.webhooks("slack").is_empty() && sandbox.webhooks("teams").is_empty());
    assert_eq!(sandbox.memory(&api_arn()).await, nightshift::state::Memory::default(), "nothing remembered");
    // And the services it was about are left as they were (nightshift acts in its own account and region only)
    for (ecs, before) in &foreign {
        let now = nightshift_tests::platform::described(ecs, CLUSTER, "api").await;
        assert_eq!(
            (now.task_definition(), now.deployments().len()),
            (before.task_definition(), before.deployments().len())
        );
        assert_eq!(sandbox.memory(now.service_arn().unwrap()).await, nightshift::state::Memory::default());
    }

    // And the local event itself is still acted on
    let local = watch.invoke(&deployment_event("watch-rollouts.ecs-deployment-failed.json", &failed, None)).response();
    assert_eq!(local["outcome"], "rolled back", "{local:#}");
}

#[tokio::test]
async fn a_success_is_told_only_when_asked_for_and_a_channel_that_fails_everywhere_gets_the_event_retried() {
    // Given api's rollout of 1.3.0 completing
    let sandbox = Sandbox::start();
    shop(&sandbox).await;
    // (started by deploy-on-push at NOTIFY_LEVEL=all, which tells that)
    spawn(&sandbox, "deploy-on-push", &[("NOTIFY_LEVEL", "all")])
        .invoke(&event("deploy-on-push.ecr-push.json"))
        .response();
    end_rollout(&sandbox, "COMPLETED");
    let id = api(&sandbox).await.deployments()[0].id().unwrap().to_owned();
    let completed = deployment_event("watch-rollouts.ecs-deployment-completed.json", &id, None);

    // When it is told at NOTIFY_LEVEL=failures, then (the same event in another stack) with both channels down at all
    let quiet = spawn(&sandbox, "watch-rollouts", &[("NOTIFY_LEVEL", "failures"), ("DRY_RUN", "true")])
        .invoke(&completed)
        .response();
    sandbox.webhook_answers("slack", json!([{"status": 500}]));
    sandbox.webhook_answers("teams", json!([{"status": 404}]));
    let mut loud = spawn(&sandbox, "watch-rollouts", &[("NOTIFY_LEVEL", "all")]);
    let down = loud.invoke(&completed);
    let retried = loud.invoke(&completed).response();
    let replayed = loud.invoke(&completed).response();

    // Then at failures it is decided but told to no one; at all, a run that told no one fails and
    // records nothing, so Lambda's retry tells it; after that, nothing more
    assert_eq!((quiet["outcome"].as_str(), quiet.get("told")), (Some("succeeded"), None));
    match down {
        Outcome::Error { error_type, error_message } => {
            assert_eq!(error_type, "NotTold");
            assert!(error_message.contains("teams/ops: the webhook answered HTTP 404"), "{error_message}");
        }
        other => panic!("expected the run to fail, got {other:?}"),
    }
    assert_eq!(retried["outcome"], "succeeded");
    assert_eq!(retried["told"].as_array().unwrap().len(), 2);
    assert_eq!(replayed["outcome"], Value::Null);
    let slack = sandbox.webhooks("slack");
    assert_eq!(slack.len(), 3, "the start; the success once refused, once taken");
    assert_eq!(slack[0]["blocks"][0]["text"]["text"], "Rollout started: shop/api");
    assert!(slack[0]["text"].as_str().unwrap().contains("shop/api:1.2.0 →"), "old and new image: {}", slack[0]);
    assert_eq!(slack[2]["blocks"][0]["text"]["text"], "Rollout succeeded: shop/api");
    assert!(sandbox.quarantined(&api_arn()).await.is_empty(), "a success quarantines nothing");
}

#[tokio::test]
async fn a_canary_codedeploy_rolled_back_is_told_once_and_its_digest_is_refused_for_that_service() {
    // Given the blue/green service's canary of 1.3.0, failed and rolled back by CodeDeploy
    let sandbox = Sandbox::start();
    shop(&sandbox).await;
    let arn = format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service/{CLUSTER}/blue-green");
    let notify = aws_sdk_ecs::types::Tag::builder().key("nightshift:notify").value("slack/data-team").build();
    sandbox.ecs().tag_resource().resource_arn(&arn).tags(notify).send().await.unwrap();
    let mut deploy = spawn(&sandbox, "deploy-on-push", &[]);
    let pushed = deploy.invoke(&event("deploy-on-push.ecr-push.json")).response();
    let canary = pushed["deployed"].as_array().unwrap().iter().find(|d| d["service"] == "blue-green").unwrap().clone();
    let id = canary["codedeploy"]["deployment_id"].as_str().unwrap().to_owned();
    sandbox.end_deployment(&id, "Failed");

    // When CodeDeploy's FAILURE event comes, twice
    let mut failure = event("watch-rollouts.codedeploy-deployment-failure.json");
    failure["detail"]["deploymentId"] = json!(id);
    let mut watch = spawn(&sandbox, "watch-rollouts", &[]);
    let first = watch.invoke(&failure).response();
    let again = watch.invoke(&failure).response();

    // Then it was rolled back, told once, its digest quarantined on blue-green (and only there)
    assert_eq!((first["outcome"].as_str(), first["service"].as_str()), (Some("rolled back"), Some("blue-green")));
    assert_eq!(first["task_definition"], canary["new_task_definition"]);
    assert_eq!(again["outcome"], Value::Null);
    let slack = sandbox.webhooks("slack");
    assert_eq!(slack.len(), 1);
    assert_eq!(slack[0]["blocks"][0]["text"]["text"], "Rollout rolled back: shop/blue-green");
    let short = nightshift::quarantine::short(&pushed_digest());
    let out = sandbox
        .ecs()
        .describe_services()
        .cluster(CLUSTER)
        .services("blue-green")
        .services("api")
        .include(ServiceField::Tags)
        .send()
        .await
        .unwrap();
    let blue_green = out.services()[0].service_arn().unwrap();
    assert_eq!(sandbox.quarantined(blue_green).await, [pushed_digest()]);
    assert!(sandbox.quarantined(&api_arn()).await.is_empty(), "api's rollout is its own");

    // And deploy-on-push's replay leaves blue-green alone, saying why
    let replayed = deploy.invoke(&event("deploy-on-push.ecr-push.json")).response();
    let skipped = replayed["skipped"].as_array().unwrap().iter().find(|s| s["service"] == "blue-green").unwrap();
    assert!(skipped["reason"].as_str().unwrap().starts_with(&format!("{short} is quarantined")), "{skipped}");
}

#[tokio::test]
async fn a_rollout_to_a_service_asleep_at_zero_tasks_completes_at_once_as_ecs_completes_it() {
    // Given api asleep: desired count 0
    let sandbox = Sandbox::start();
    shop(&sandbox).await;
    sandbox.ecs().update_service().cluster(CLUSTER).service("api").desired_count(0).send().await.unwrap();

    // When 1.3.0 is pushed to it
    let pushed = spawn(&sandbox, "deploy-on-push", &[]).invoke(&event("deploy-on-push.ecr-push.json")).response();
    assert_eq!(pushed["deployed"][0]["service"], "api");

    // Then ECS completes the rollout at once, no task ever started, and watch-rollouts takes it for a
    // success (which is why a promotion must gate on checks that ran, not on ECS's word alone)
    let service = api(&sandbox).await;
    let deployments = service.deployments();
    assert_eq!(deployments.len(), 1, "the one before is drained");
    assert_eq!(deployments[0].rollout_state().map(|s| s.as_str()), Some("COMPLETED"));
    assert_eq!((deployments[0].running_count(), deployments[0].desired_count()), (0, 0));
    let id = deployments[0].id().unwrap().to_owned();
    let done = deployment_event("watch-rollouts.ecs-deployment-completed.json", &id, None);
    let told = spawn(&sandbox, "watch-rollouts", &[]).invoke(&done).response();
    assert_eq!(told["outcome"], "succeeded", "{told:#}");
}
