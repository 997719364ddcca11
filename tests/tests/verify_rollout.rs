//! verify-rollout's three ways in, against a local AWS, through the Lambda
//! Runtime API: a rolling service's completed deployment, an ECS lifecycle
//! hook (BLUE_GREEN), and a CodeDeploy hook; and the promotion that moves
//! only what ran and passed. The checks go to a small HTTP app that answers
//! as the image it serves (`nightshift_tests::canary`).

use aws_sdk_ecs::types::{
    DeploymentConfiguration, DeploymentLifecycleHook, DeploymentLifecycleHookStage, DeploymentStrategy,
};
use aws_sdk_ssm::types::ParameterType;
use nightshift_tests::canary::CanaryApp;
use nightshift_tests::event;
use nightshift_tests::platform::{
    SCHEDULE_GROUP, end_stage_rollout, push_image, pushed_digest, registry, schedule_role, seed_shop, seed_stages,
    stage_image, task_definition,
};
use nightshift_tests::runtime::{FunctionProcess, Outcome, binary};
use nightshift_tests::sandbox::Sandbox;
use serde_json::{Value, json};

const VERIFY_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:nightshift-verify-rollout";

fn spawn(sandbox: &Sandbox, function: &str) -> FunctionProcess {
    let mut env = sandbox.function_env();
    env.push(("SCHEDULE_GROUP".into(), SCHEDULE_GROUP.into()));
    env.push(("SCHEDULE_ROLE_ARN".into(), schedule_role()));
    FunctionProcess::spawn(&binary(function), &env)
}

/// The suite every test declares: health, and the version that answers is the revision's digest.
fn suite(app: &CanaryApp) -> String {
    json!({
        "target": app.url(),
        "samples": 2, "interval_seconds": 1,
        "requests": [
            {"name": "health", "path": "/health", "status": 200, "max_ms": 2000},
            {"name": "version", "path": "/version", "json": {"/image": "${digest}"}}
        ]
    })
    .to_string()
}

async fn declare(sandbox: &Sandbox, service: &str, suite: &str) {
    sandbox
        .ssm()
        .put_parameter()
        .name(format!("/nightshift/checks/{service}"))
        .value(suite)
        .r#type(ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .unwrap();
}

async fn tag(sandbox: &Sandbox, cluster: &str, service: &str, key: &str, value: &str) {
    let arn = format!("arn:aws:ecs:us-east-1:123456789012:service/{cluster}/{service}");
    let tag = aws_sdk_ecs::types::Tag::builder().key(key).value(value).build();
    sandbox.ecs().tag_resource().resource_arn(arn).tags(tag).send().await.unwrap();
}

fn service_arn(cluster: &str, service: &str) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:service/{cluster}/{service}")
}

/// `minutes` pass; each promotion schedule due is run by `watch`.
fn pass(sandbox: &Sandbox, watch: &mut FunctionProcess, minutes: f64) -> Vec<Value> {
    let fired = sandbox.pass_time(minutes);
    fired
        .iter()
        .map(|f| {
            let input: Value = serde_json::from_str(f["target"]["Input"].as_str().unwrap()).unwrap();
            watch.invoke(&input).response()
        })
        .collect()
}

/// Staging follows pushes and has checks; staging's rollout of the pushed 1.3.0 has completed.
async fn staging_rolled_out(sandbox: &Sandbox, app: &CanaryApp) -> Value {
    seed_stages(&sandbox.ecs(), &sandbox.ecr(), &sandbox.scheduler(), &sandbox.codedeploy(), false).await;
    sandbox.channel("slack/releases", "releases").await;
    tag(sandbox, "staging", "shop", "nightshift:notify", "slack/releases").await;
    declare(sandbox, "staging/shop", &suite(app)).await;
    // Staging's first rollout (1.2.0) completes: its task runs.
    end_stage_rollout(sandbox, "staging", "COMPLETED");
    let pushed = spawn(sandbox, "deploy-on-push").invoke(&event("deploy-on-push.ecr-push.json")).response();
    assert_eq!(pushed["deployed"][0]["cluster"], "staging", "{pushed:#}");
    end_stage_rollout(sandbox, "staging", "COMPLETED").remove(0)
}

#[tokio::test]
async fn a_rolling_service_passes_its_checks_and_only_then_does_its_image_move_on() {
    // Given staging rolled out 1.3.0, which the app serves, healthy
    let sandbox = Sandbox::start();
    let app = CanaryApp::start();
    app.serve(&pushed_digest());
    let completed = staging_rolled_out(&sandbox, &app).await;

    // When ECS says the deployment completed, twice
    let mut verify = spawn(&sandbox, "verify-rollout");
    let report = verify.invoke(&completed).response();
    let again = verify.invoke(&completed).response();

    // Then its checks pass, are recorded once, and told
    assert_eq!(report["way"], "rolling");
    assert_eq!(report["verdict"]["passed"], true, "{report:#}");
    assert_eq!(report["verdict"]["why"], "2 requests passed (4 samples)");
    assert_eq!(app.requests(), 4);
    let memory = sandbox.memory(&service_arn("staging", "shop")).await;
    let td = report["task_definition"].as_str().unwrap();
    assert!(memory.verdict(td).is_some_and(|v| v.passed), "{memory:?}");
    assert!(again["ignored"].as_str().unwrap().contains("passed its checks already"), "{again:#}");
    assert_eq!(app.requests(), 4, "checked once");
    assert_eq!(sandbox.webhooks("releases").len(), 1);

    // And after the soak, qa gets the digest
    let mut watch = spawn(&sandbox, "watch-rollouts");
    assert_eq!(watch.invoke(&completed).response()["outcome"], "succeeded");
    let promoted = pass(&sandbox, &mut watch, 31.0);
    assert_eq!(promoted[0]["promotion"]["result"], "promoted", "{promoted:#?}");
    assert_eq!(stage_image(&sandbox.ecs(), "qa").await, format!("{}/shop/api@{}", registry(), pushed_digest()));
}

#[tokio::test]
async fn a_bad_image_fails_its_checks_is_rolled_back_quarantined_told_and_never_promoted() {
    // Given staging rolled out 1.3.0, whose build is broken
    let sandbox = Sandbox::start();
    let app = CanaryApp::start();
    app.serve(&pushed_digest());
    app.breaks_on(&pushed_digest());
    let completed = staging_rolled_out(&sandbox, &app).await;
    let before = sandbox.ecs().list_task_definitions().family_prefix("shop-staging").send().await.unwrap();
    let first = before.task_definition_arns()[0].clone();

    // When its completed deployment is verified
    let report = spawn(&sandbox, "verify-rollout").invoke(&completed).response();

    // Then the checks fail, naming the request, how often, and a short sample of the answer
    assert_eq!(report["verdict"]["passed"], false, "{report:#}");
    assert_eq!(report["verdict"]["failures"][0], "health: passed 0 of 2 (HTTP 500, not 200)");
    assert!(report["verdict"]["excerpt"].as_str().unwrap().contains("cannot open the catalog"));
    // rolled back to what ran before, and quarantined
    assert_eq!(report["rolled_back_to"], first.as_str());
    let service = sandbox.ecs().describe_services().cluster("staging").services("shop").send().await.unwrap();
    assert_eq!(service.services()[0].task_definition(), Some(first.as_str()));
    let held = sandbox.quarantined(&service_arn("staging", "shop")).await;
    assert_eq!(held, [pushed_digest()]);
    // and told
    let told = sandbox.webhooks("releases");
    assert_eq!(told.len(), 1);
    assert!(told[0].to_string().contains("failed its checks"), "{:#}", told[0]);
    assert!(told[0].to_string().contains("health: passed 0 of 2"));

    // When the rollback completes, nothing of 1.3.0 runs, and the promotion it had scheduled comes due
    let mut watch = spawn(&sandbox, "watch-rollouts");
    watch.invoke(&completed).response();
    let rolled_back = end_stage_rollout(&sandbox, "staging", "COMPLETED").remove(0);
    let running = aws_sdk_ecs::types::DesiredStatus::Running;
    let tasks = sandbox.ecs().list_tasks().cluster("staging").service_name("shop").desired_status(running);
    let tasks = tasks.send().await.unwrap();
    assert_eq!(tasks.task_arns().len(), 1);
    let described = sandbox.ecs().describe_tasks().cluster("staging").set_tasks(Some(tasks.task_arns().to_vec()));
    let described = described.send().await.unwrap();
    assert!(described.tasks().iter().all(|t| t.task_definition_arn() == Some(first.as_str())));
    watch.invoke(&rolled_back).response();
    let refused = pass(&sandbox, &mut watch, 31.0);

    // Then qa never gets it
    assert!(refused.iter().all(|r| r["promotion"]["result"] != "promoted"), "{refused:#?}");
    assert_eq!(stage_image(&sandbox.ecs(), "qa").await, format!("{}/shop/api:1.2.0", registry()));
}

/// The alarm `api-5xx`, in `state`.
fn alarm(sandbox: &Sandbox, state: &str) {
    let alarm = json!({"AlarmName": "api-5xx", "Namespace": "shop", "MetricName": "5xx", "Statistic": "Sum",
        "Period": 60, "EvaluationPeriods": 1, "Threshold": 1.0, "ComparisonOperator": "GreaterThanThreshold"});
    sandbox.cloudwatch("PutMetricAlarm", &alarm);
    sandbox.cloudwatch("SetAlarmState", &json!({"AlarmName": "api-5xx", "StateValue": state, "StateReason": "test"}));
}

fn with_alarm(app: &CanaryApp, name: &str) -> String {
    let mut suite: Value = serde_json::from_str(&suite(app)).unwrap();
    suite["alarms"] = json!([name]);
    suite.to_string()
}

#[tokio::test]
async fn a_named_alarm_that_stayed_ok_lets_the_checks_pass() {
    let sandbox = Sandbox::start();
    let app = CanaryApp::start();
    app.serve(&pushed_digest());
    let completed = staging_rolled_out(&sandbox, &app).await;
    alarm(&sandbox, "OK");
    declare(&sandbox, "staging/shop", &with_alarm(&app, "api-5xx")).await;

    let report = spawn(&sandbox, "verify-rollout").invoke(&completed).response();

    assert_eq!(report["verdict"]["passed"], true, "{report:#}");
    assert_eq!(report["verdict"]["why"], "2 requests passed (4 samples), no alarm of 1 in ALARM");
}

#[tokio::test]
async fn a_named_alarm_in_alarm_fails_the_checks() {
    // Given healthy answers, but the suite's alarm in ALARM
    let sandbox = Sandbox::start();
    let app = CanaryApp::start();
    app.serve(&pushed_digest());
    let completed = staging_rolled_out(&sandbox, &app).await;
    alarm(&sandbox, "ALARM");
    declare(&sandbox, "staging/shop", &with_alarm(&app, "api-5xx")).await;

    let report = spawn(&sandbox, "verify-rollout").invoke(&completed).response();

    assert_eq!(report["verdict"]["passed"], false, "{report:#}");
    assert_eq!(report["verdict"]["why"], "failed: alarm api-5xx was in ALARM");
    assert!(report["rolled_back_to"].is_string());
}

#[tokio::test]
async fn a_suite_naming_an_alarm_cloudwatch_does_not_have_fails_closed() {
    // Given an ECS BLUE_GREEN service whose suite names an alarm with a typo
    let sandbox = Sandbox::start();
    let app = CanaryApp::start();
    app.serve(&pushed_digest());
    ecs_blue_green(&sandbox).await;
    alarm(&sandbox, "OK");
    declare(&sandbox, "shop/api", &with_alarm(&app, "api-5xx-typo")).await;

    // When 1.3.0 is pushed and the hook runs
    spawn(&sandbox, "deploy-on-push").invoke(&event("deploy-on-push.ecr-push.json")).response();
    let ran = sandbox.run_hooks(&mut spawn(&sandbox, "verify-rollout"));

    // Then it failed, saying which alarm, and ECS rolled back
    let outcome = ran[0].1.clone().response();
    assert_eq!(outcome["hookStatus"], "FAILED");
    assert_eq!(outcome["verdict"]["why"], "failed: CloudWatch has no alarm named \"api-5xx-typo\"");
    assert_eq!(ran[0].2["rollout"], "ROLLED_BACK");
}

#[tokio::test]
async fn a_malformed_suite_fails_closed_with_its_parameter_and_the_reason() {
    // Given staging rolled out 1.3.0, with a suite that has no requests
    let sandbox = Sandbox::start();
    let app = CanaryApp::start();
    let completed = staging_rolled_out(&sandbox, &app).await;
    declare(&sandbox, "staging/shop", &json!({"target": app.url(), "requests": []}).to_string()).await;

    // When it is verified
    let report = spawn(&sandbox, "verify-rollout").invoke(&completed).response();

    // Then it failed, never passed, saying which parameter and why; nothing was sent
    assert_eq!(report["verdict"]["passed"], false);
    assert_eq!(
        report["verdict"]["why"],
        "failed: the check suite /nightshift/checks/staging/shop is refused: it has no requests: a suite checks at least one"
    );
    assert_eq!(app.requests(), 0);
    assert!(report["rolled_back_to"].is_string());
    assert_eq!(sandbox.quarantined(&service_arn("staging", "shop")).await, [pushed_digest()]);
}

#[tokio::test]
async fn a_rollout_into_a_service_at_desired_count_0_promotes_nothing_until_the_image_has_run_for_the_soak() {
    // Given staging asleep (desired count 0), without checks
    let sandbox = Sandbox::start();
    seed_stages(&sandbox.ecs(), &sandbox.ecr(), &sandbox.scheduler(), &sandbox.codedeploy(), false).await;
    let ecs = sandbox.ecs();
    ecs.update_service().cluster("staging").service("shop").desired_count(0).send().await.unwrap();

    // When 1.3.0 is pushed, and staging's rollout completes at once, no task started
    spawn(&sandbox, "deploy-on-push").invoke(&event("deploy-on-push.ecr-push.json")).response();
    let service = ecs.describe_services().cluster("staging").services("shop").send().await.unwrap();
    let primary = &service.services()[0].deployments()[0];
    assert_eq!((primary.rollout_state().map(|s| s.as_str()), primary.running_count()), (Some("COMPLETED"), 0));
    let mut completed = event("watch-rollouts.ecs-deployment-completed.json");
    completed["resources"] = json!([service_arn("staging", "shop")]);
    completed["detail"]["deploymentId"] = json!(primary.id().unwrap());
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    (completed["time"], completed["detail"]["updatedAt"]) = (json!(now), json!(now));
    let mut watch = spawn(&sandbox, "watch-rollouts");
    assert_eq!(watch.invoke(&completed).response()["scheduled"][0]["cluster"], "qa");

    // Then the promotion, due after the soak, waits: the image never ran
    let waiting = pass(&sandbox, &mut watch, 31.0);
    let promotion = &waiting[0]["promotion"];
    assert_eq!(promotion["result"], "waiting", "{promotion:#}");
    assert!(promotion["why"].as_str().unwrap().starts_with("no task of staging/shop runs sha256:"), "{promotion:#}");
    assert_eq!(stage_image(&ecs, "qa").await, format!("{}/shop/api:1.2.0", registry()));
    // and is checked again a soak later: still nothing ran
    let still = pass(&sandbox, &mut watch, 31.0);
    assert_eq!(still[0]["promotion"]["result"], "waiting");

    // When staging wakes: by hand, a promotion now is refused, its task has run for minutes only
    ecs.update_service().cluster("staging").service("shop").desired_count(1).send().await.unwrap();
    let by_hand = watch.invoke(&json!({"promote": "qa/shop"})).response();
    assert_eq!(by_hand["promotion"]["result"], "refused", "{by_hand:#}");
    assert!(by_hand["promotion"]["why"].as_str().unwrap().contains("oldest task running sha256:"), "{by_hand:#}");

    // When it has run for the soak, and the promotion is checked again
    let promoted = pass(&sandbox, &mut watch, 31.0);

    // Then it moves on
    assert!(promoted.iter().any(|r| r["promotion"]["result"] == "promoted"), "{promoted:#?}");
    assert_eq!(stage_image(&ecs, "qa").await, format!("{}/shop/api@{}", registry(), pushed_digest()));
}

/// `shop/api`, an ECS service with ECS's own BLUE_GREEN strategy, whose
/// lifecycle hook after test traffic shifts is verify-rollout.
async fn ecs_blue_green(sandbox: &Sandbox) {
    let ecs = sandbox.ecs();
    nightshift_tests::platform::seed_registry(&sandbox.ecr()).await;
    ecs.create_cluster().cluster_name("shop").send().await.unwrap();
    let td = task_definition(&ecs, "api", &format!("{}/shop/api:1.2.0", registry())).await;
    let hook = DeploymentLifecycleHook::builder()
        .hook_target_arn(VERIFY_ARN)
        .role_arn("arn:aws:iam::123456789012:role/nightshift-EcsHookInvokeRole")
        .lifecycle_stages(DeploymentLifecycleHookStage::PostTestTrafficShift)
        .build();
    let config =
        DeploymentConfiguration::builder().strategy(DeploymentStrategy::BlueGreen).lifecycle_hooks(hook).build();
    let deploy = aws_sdk_ecs::types::Tag::builder().key("nightshift:deploy").value("semver").build();
    ecs.create_service()
        .cluster("shop")
        .service_name("api")
        .task_definition(td)
        .desired_count(1)
        .deployment_configuration(config)
        .tags(deploy)
        .send()
        .await
        .unwrap();
    sandbox.end_rollout("shop", "api", "COMPLETED");
}

fn push(tag: &str, digest: &str) -> Value {
    let mut push = event("deploy-on-push.ecr-push.json");
    push["detail"]["image-tag"] = json!(tag);
    push["detail"]["image-digest"] = json!(digest);
    push
}

#[tokio::test]
async fn an_ecs_blue_green_service_is_checked_by_its_lifecycle_hook_good_moves_bad_rolls_back() {
    // Given an ECS BLUE_GREEN service with checks that take two rounds six seconds apart
    let sandbox = Sandbox::start();
    let app = CanaryApp::start();
    ecs_blue_green(&sandbox).await;
    let paced = json!({"target": app.url(), "samples": 2, "interval_seconds": 6,
        "requests": [{"name": "version", "path": "/version", "json": {"/image": "${digest}"}}]});
    declare(&sandbox, "shop/api", &paced.to_string()).await;

    // When 1.3.0 is pushed: deploy-on-push updates the service, and ECS runs its hook
    let pushed = spawn(&sandbox, "deploy-on-push").invoke(&event("deploy-on-push.ecr-push.json")).response();
    assert_eq!(pushed["deployed"][0]["service"], "api", "{pushed:#}");
    app.serve(&pushed_digest());
    let mut verify = spawn(&sandbox, "verify-rollout");
    let ran = sandbox.run_hooks(&mut verify);

    // Then the first invocation hands back IN_PROGRESS with its progress, the second passes
    assert_eq!(ran.len(), 2, "{ran:#?}");
    let first = ran[0].1.clone().response();
    assert_eq!((first["hookStatus"].as_str(), first["callBackDelay"].as_u64()), (Some("IN_PROGRESS"), Some(6)));
    assert_eq!(first["hookDetails"]["nightshiftChecks"]["rounds"], 1);
    assert_eq!(ran[1].0["hookDetails"]["nightshiftChecks"]["rounds"], 1, "ECS hands the progress back");
    let second = ran[1].1.clone().response();
    assert_eq!(second["hookStatus"], "SUCCEEDED", "{second:#}");
    assert_eq!(ran[1].2["rollout"], "COMPLETED");
    let td = second["task_definition"].as_str().unwrap();
    assert!(sandbox.memory(&service_arn("shop", "api")).await.verdict(td).is_some_and(|v| v.passed));

    // When a broken 1.4.0 is pushed
    let bad = push_image(&sandbox.ecr(), "shop/api", "1.4.0", "shop/api 1.4.0 broken").await;
    spawn(&sandbox, "deploy-on-push").invoke(&push("1.4.0", &bad)).response();
    app.serve(&pushed_digest()); // The test listener still reaches the old version: /version is wrong.
    let ran = sandbox.run_hooks(&mut verify);

    // Then it fails, ECS rolls back, and the digest is quarantined
    let last = ran.last().unwrap();
    assert_eq!(last.1.clone().response()["hookStatus"], "FAILED", "{ran:#?}");
    assert_eq!(last.2["rollout"], "ROLLED_BACK");
    let service = sandbox.ecs().describe_services().cluster("shop").services("api").send().await.unwrap();
    assert_eq!(service.services()[0].task_definition(), Some(td));
    assert_eq!(sandbox.quarantined(&service_arn("shop", "api")).await, std::slice::from_ref(&bad));

    // And watch-rollouts tells ECS's own rollback as rolled back, the digest already held
    let failed = last.2["deployments"].as_array().unwrap().iter().find(|d| d["rolloutState"] == "FAILED").unwrap();
    let mut event = event("watch-rollouts.ecs-deployment-failed.json");
    event["resources"] = json!([service_arn("shop", "api")]);
    event["detail"]["deploymentId"] = failed["id"].clone();
    event["detail"]["reason"] = failed["rolloutStateReason"].clone();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    (event["time"], event["detail"]["updatedAt"]) = (json!(now), json!(now));
    let watched = spawn(&sandbox, "watch-rollouts").invoke(&event).response();
    assert_eq!(watched["outcome"], "rolled back", "{watched:#}");
    assert_eq!(sandbox.quarantined(&service_arn("shop", "api")).await, std::slice::from_ref(&bad));

    // And the same push again is refused: the digest is quarantined
    let again = spawn(&sandbox, "deploy-on-push").invoke(&push("1.4.0", &bad)).response();
    assert!(again["deployed"].as_array().is_none_or(Vec::is_empty), "{again:#}");
}

#[tokio::test]
async fn a_codedeploy_blue_green_service_is_checked_by_its_test_hook() {
    // Given the shop's blue/green service, whose test hook is verify-rollout, with checks
    let sandbox = Sandbox::start();
    let app = CanaryApp::start();
    seed_shop(&sandbox.ecs(), &sandbox.ecr(), &sandbox.codedeploy()).await;
    tag(&sandbox, "shop", "blue-green", "nightshift:test-hook", "nightshift-verify-rollout").await;
    declare(&sandbox, "shop/blue-green", &suite(&app)).await;

    // When 1.3.0 is pushed, and CodeDeploy runs the hook once test traffic reaches it
    let pushed = spawn(&sandbox, "deploy-on-push").invoke(&event("deploy-on-push.ecr-push.json")).response();
    let deployment = pushed["deployed"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|d| d["deployment_id"].as_str().or(d["codedeploy"]["deployment_id"].as_str()))
        .unwrap_or_else(|| panic!("{pushed:#}"))
        .to_owned();
    app.serve(&pushed_digest());
    let mut verify = spawn(&sandbox, "verify-rollout");
    let ran = sandbox.run_hooks(&mut verify);

    // Then it answered CodeDeploy Succeeded, and the deployment went on to succeed
    assert_eq!(ran.len(), 1, "{ran:#?}");
    let report = ran[0].1.clone().response();
    assert_eq!((report["way"].as_str(), report["answered"].as_str()), (Some("codedeploy-hook"), Some("Succeeded")));
    let info = sandbox.codedeploy().get_deployment().deployment_id(&deployment).send().await.unwrap();
    assert_eq!(info.deployment_info().unwrap().status().unwrap().as_str(), "Succeeded");

    // And the same hook delivered twice is answered once
    let replay = verify.invoke(&ran[0].0).response();
    assert!(replay["warnings"].to_string().contains("answered already"), "{replay:#}");

    // When a broken 1.4.0 is pushed
    let bad = push_image(&sandbox.ecr(), "shop/api", "1.4.0", "shop/api 1.4.0 broken").await;
    app.serve(&bad);
    app.breaks_on(&bad);
    spawn(&sandbox, "deploy-on-push").invoke(&push("1.4.0", &bad)).response();
    let ran = sandbox.run_hooks(&mut verify);

    // Then CodeDeploy hears Failed and rolls back, and the digest is quarantined
    assert_eq!(ran[0].1.clone().response()["answered"], "Failed", "{ran:#?}");
    assert_eq!(sandbox.quarantined(&service_arn("shop", "blue-green")).await, [bad]);
}

#[tokio::test]
async fn a_hook_without_a_suite_fails_closed() {
    // Given an ECS BLUE_GREEN service whose hook is verify-rollout, but no suite
    let sandbox = Sandbox::start();
    ecs_blue_green(&sandbox).await;

    // When 1.3.0 is pushed and the hook runs
    spawn(&sandbox, "deploy-on-push").invoke(&event("deploy-on-push.ecr-push.json")).response();
    let ran = sandbox.run_hooks(&mut spawn(&sandbox, "verify-rollout"));

    // Then it failed, saying where the suite should be, and ECS rolled back
    let outcome = ran[0].1.clone().response();
    assert_eq!(outcome["hookStatus"], "FAILED");
    assert!(outcome["verdict"]["why"].as_str().unwrap().contains("no check suite at /nightshift/checks/shop/api"));
    assert!(matches!(ran[0].1, Outcome::Response(_)));
}

#[tokio::test]
async fn with_dry_run_the_checks_run_and_nothing_is_recorded_quarantined_rolled_back_or_told() {
    // Given staging rolled out a broken 1.3.0
    let sandbox = Sandbox::start();
    let app = CanaryApp::start();
    app.serve(&pushed_digest());
    app.breaks_on(&pushed_digest());
    let completed = staging_rolled_out(&sandbox, &app).await;
    let before = sandbox.ecs().describe_services().cluster("staging").services("shop").send().await.unwrap();
    let running = before.services()[0].task_definition().unwrap().to_owned();

    // When verify-rollout runs with DRY_RUN=true
    let mut env = sandbox.function_env();
    env.push(("DRY_RUN".into(), "true".into()));
    let report = FunctionProcess::spawn(&binary("verify-rollout"), &env).invoke(&completed).response();

    // Then the verdict is reported, and nothing changed
    assert_eq!((report["dry_run"].as_bool(), report["verdict"]["passed"].as_bool()), (Some(true), Some(false)));
    let after = sandbox.ecs().describe_services().cluster("staging").services("shop").send().await.unwrap();
    assert_eq!(after.services()[0].task_definition(), Some(running.as_str()));
    assert_eq!(after.services()[0].deployments().len(), 1, "no rollback started");
    let memory = sandbox.memory(&service_arn("staging", "shop")).await;
    assert!(memory.verdicts.is_empty() && memory.quarantine.is_empty(), "{memory:?}");
    assert!(sandbox.webhooks("releases").is_empty());
}
