//! Promotion from staging to QA to prod, against a local AWS whose ECS keeps
//! deployments as ECS does and whose EventBridge Scheduler runs a schedule
//! when the test says time has come: the built deploy-on-push and
//! watch-rollouts, driven through the Lambda Runtime API. Time passes by
//! moving ECS's deployment times and the schedules into the past (`Sandbox::pass_time`), never by sleeping.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Timelike, Utc};
use lambda_runtime::{Context, LambdaEvent};
use nightshift::FixedClock;
use nightshift::window::{WeeklyWindows, zone};
use nightshift_tests::event;
use nightshift_tests::platform::{
    SCHEDULE_GROUP, STAGES, end_stage_rollout, push_image, pushed_digest, registry, schedule_role, seed_stages,
    stage_image,
};
use nightshift_tests::runtime::{FunctionProcess, Outcome, binary};
use nightshift_tests::sandbox::Sandbox;
use serde_json::{Value, json};

fn spawn(sandbox: &Sandbox, function: &str) -> FunctionProcess {
    let mut env = sandbox.function_env();
    env.push(("SCHEDULE_GROUP".into(), SCHEDULE_GROUP.into()));
    env.push(("SCHEDULE_ROLE_ARN".into(), schedule_role()));
    FunctionProcess::spawn(&binary(function), &env)
}

async fn stages(sandbox: &Sandbox, blue_green_prod: bool) {
    seed_stages(&sandbox.ecs(), &sandbox.ecr(), &sandbox.scheduler(), &sandbox.codedeploy(), blue_green_prod).await;
    sandbox.channel("slack/releases", "releases").await;
}

async fn image_of(sandbox: &Sandbox, stage: &str) -> String {
    stage_image(&sandbox.ecs(), stage).await
}

fn end_rollout(sandbox: &Sandbox, stage: &str, outcome: &str) -> Vec<Value> {
    end_stage_rollout(sandbox, stage, outcome)
}

/// The `at(...)` of a schedule, in UTC.
fn at(schedule: &Value) -> DateTime<Utc> {
    let expression = schedule["expression"].as_str().unwrap();
    let inner = expression.trim_start_matches("at(").trim_end_matches(')');
    chrono::NaiveDateTime::parse_from_str(inner, "%Y-%m-%dT%H:%M:%S").unwrap().and_utc()
}

/// `minutes` pass, then every schedule due runs: watch-rollouts is invoked
/// with its input. Each report, with its input in `"input"`.
fn pass(sandbox: &Sandbox, watch: &mut FunctionProcess, minutes: f64) -> Vec<Value> {
    sandbox
        .pass_time(minutes)
        .iter()
        .map(|fired| {
            assert_eq!(fired["target"]["Arn"], "arn:aws:lambda:us-east-1:123456789012:function:nightshift");
            assert_eq!(fired["target"]["RoleArn"], schedule_role());
            assert_eq!(fired["action_after_completion"], "DELETE");
            let input: Value = serde_json::from_str(fired["target"]["Input"].as_str().unwrap()).unwrap();
            let mut report = watch.invoke(&input).response();
            report["input"] = input;
            report
        })
        .collect()
}

#[tokio::test]
async fn a_push_reaches_staging_then_qa_then_prod_each_after_its_soak_as_the_same_digest() {
    // Given staging (follows pushes), qa (promoted from staging) and prod (from qa, soak 60)
    let sandbox = Sandbox::start();
    stages(&sandbox, false).await;
    let pinned = format!("{}/shop/api@{}", registry(), pushed_digest());

    // When shop/api 1.3.0 is pushed
    let pushed = spawn(&sandbox, "deploy-on-push").invoke(&event("deploy-on-push.ecr-push.json")).response();

    // Then it reaches staging at once, and only staging
    let deployed: Vec<&str> =
        pushed["deployed"].as_array().unwrap().iter().map(|d| d["cluster"].as_str().unwrap()).collect();
    assert_eq!(deployed, ["staging"]);
    assert_eq!(image_of(&sandbox, "staging").await, pinned);
    assert_eq!(image_of(&sandbox, "qa").await, format!("{}/shop/api:1.2.0", registry()));

    // When staging's rollout completes, and ECS says so twice, to two processes
    let completed = end_rollout(&sandbox, "staging", "COMPLETED").remove(0);
    let mut watch = spawn(&sandbox, "watch-rollouts");
    let first = watch.invoke(&completed).response();
    let again = watch.invoke(&completed).response();
    let cold = spawn(&sandbox, "watch-rollouts").invoke(&completed).response();

    // Then qa's promotion is scheduled once, at the end of its 30-minute soak
    assert_eq!(first["outcome"], "succeeded");
    let scheduled = first["scheduled"].as_array().unwrap();
    assert_eq!(scheduled.len(), 1, "{first:#}");
    assert_eq!((scheduled[0]["cluster"].as_str(), scheduled[0]["already"].as_bool()), (Some("qa"), Some(false)));
    let ended: DateTime<Utc> = completed["detail"]["updatedAt"].as_str().unwrap().parse().unwrap();
    let schedules = sandbox.schedules();
    assert_eq!(schedules.len(), 1, "{schedules:#?}");
    assert_eq!(at(&schedules[0]), ended + Duration::minutes(30));
    assert!(Utc::now() < ended + Duration::minutes(30));
    assert_eq!(schedules[0]["group"], SCHEDULE_GROUP);
    for duplicate in [&again, &cold] {
        assert_eq!(duplicate["outcome"], Value::Null);
        assert!(duplicate.get("scheduled").is_none(), "{duplicate:#}");
    }
    assert_eq!(sandbox.schedules().len(), 1, "a duplicate outcome schedules nothing twice");

    // When 20 minutes pass: nothing is due; then the soak passes
    assert!(pass(&sandbox, &mut watch, 20.0).is_empty());
    let promoted = pass(&sandbox, &mut watch, 11.0);

    // Then qa runs the digest staging ran (never the tag), and the schedule is gone
    assert_eq!(promoted.len(), 1);
    let promotion = &promoted[0]["promotion"];
    assert_eq!(
        (promotion["result"].as_str(), promotion["from"].as_str()),
        (Some("promoted"), Some("staging/shop")),
        "{promotion:#}"
    );
    assert_eq!(promotion["deployed"]["images"][0]["to"], pinned);
    assert_eq!(image_of(&sandbox, "qa").await, pinned);
    assert!(sandbox.schedules().is_empty());
    assert_eq!(image_of(&sandbox, "prod").await, format!("{}/shop/api:1.2.0", registry()), "not before qa's soak");

    // When qa's rollout completes, and 60 minutes pass (prod's soak)
    let completed = end_rollout(&sandbox, "qa", "COMPLETED").remove(0);
    let qa = watch.invoke(&completed).response();
    assert_eq!(qa["scheduled"][0]["cluster"], "prod");
    assert!(pass(&sandbox, &mut watch, 59.0).is_empty());
    let promoted = pass(&sandbox, &mut watch, 2.0);

    // Then prod runs the same digest, and its channel heard nothing (a success, at failures)
    assert_eq!(promoted[0]["promotion"]["result"], "promoted");
    assert_eq!(image_of(&sandbox, "prod").await, pinned);
    assert!(sandbox.webhooks("releases").is_empty());

    // And the schedule's input, replayed (Lambda's retry), or a promotion by hand, changes nothing
    let replayed = watch.invoke(&promoted[0]["input"]).response();
    assert_eq!(replayed["promotion"]["result"], "already", "{replayed:#}");
    assert_eq!(
        replayed["promotion"]["why"],
        format!("prod/shop already runs {} from qa/shop", nightshift::quarantine::short(&pushed_digest()))
    );
    let by_hand = watch.invoke(&event("watch-rollouts.promote-by-hand.json")).response();
    assert_eq!(by_hand["promotion"]["result"], "already", "{by_hand:#}");
    for stage in STAGES {
        assert_eq!(image_of(&sandbox, stage).await, pinned, "{stage}");
    }
}

#[tokio::test]
async fn a_staging_service_that_scales_more_often_than_its_soak_is_still_promoted_once_it_has_soaked() {
    // Given 1.3.0 rolled out to staging, completed, and qa's promotion scheduled at the end of its 30-minute soak
    let sandbox = Sandbox::start();
    stages(&sandbox, false).await;
    spawn(&sandbox, "deploy-on-push").invoke(&event("deploy-on-push.ecr-push.json")).response();
    let completed = end_rollout(&sandbox, "staging", "COMPLETED").remove(0);
    let mut watch = spawn(&sandbox, "watch-rollouts");
    watch.invoke(&completed).response();
    assert_eq!(sandbox.schedules().len(), 1);

    // When staging scales out a minute before the soak ends (ECS moves its deployment's updatedAt),
    // and the promotion comes due
    assert!(pass(&sandbox, &mut watch, 29.0).is_empty());
    sandbox.ecs().update_service().cluster("staging").service("shop").desired_count(3).send().await.unwrap();
    let due = pass(&sandbox, &mut watch, 2.0);

    // Then qa is promoted: the soak ran from the completion staging's event carried
    assert_eq!(due.len(), 1);
    assert_eq!(due[0]["promotion"]["result"], "promoted", "{:#}", due[0]);
    // (the input carries it: the sandbox moved it 31 minutes back, as time passed)
    let carried: DateTime<Utc> = due[0]["input"]["promotion"]["completed_at"].as_str().unwrap().parse().unwrap();
    let ended: DateTime<Utc> = completed["detail"]["updatedAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(carried, ended - Duration::minutes(31));
    assert_eq!(image_of(&sandbox, "qa").await, format!("{}/shop/api@{}", registry(), pushed_digest()));
}

#[tokio::test]
async fn a_rollout_that_fails_in_qa_stops_the_chain_there_and_its_digest_never_reaches_prod() {
    // Given 1.3.0 promoted to qa after staging's soak
    let sandbox = Sandbox::start();
    stages(&sandbox, false).await;
    spawn(&sandbox, "deploy-on-push").invoke(&event("deploy-on-push.ecr-push.json")).response();
    let mut watch = spawn(&sandbox, "watch-rollouts");
    watch.invoke(&end_rollout(&sandbox, "staging", "COMPLETED").remove(0)).response();
    let promoted = pass(&sandbox, &mut watch, 31.0);
    assert_eq!(promoted[0]["promotion"]["result"], "promoted");

    // When qa's rollout fails and ECS's circuit breaker rolls it back
    let events = end_rollout(&sandbox, "qa", "FAILED");
    let reports: Vec<Value> = events.iter().map(|e| watch.invoke(e).response()).collect();

    // Then the digest is quarantined on qa, and nothing is scheduled for prod
    assert_eq!(reports[0]["outcome"], "rolled back", "{:#}", reports[0]);
    let short = nightshift::quarantine::short(&pushed_digest());
    assert_eq!(reports[0]["quarantined"], json!([short]));
    assert!(reports.iter().all(|r| r.get("scheduled").is_none()));
    assert!(sandbox.schedules().is_empty());
    // And once the rollback completed, even time passing moves nothing to prod
    let rollback_done = end_rollout(&sandbox, "qa", "COMPLETED").remove(0);
    let done = watch.invoke(&rollback_done).response();
    assert_eq!(done["outcome"], Value::Null, "a rollback's completion is no success: {done:#}");
    assert!(pass(&sandbox, &mut watch, 120.0).is_empty());
    assert_eq!(image_of(&sandbox, "prod").await, format!("{}/shop/api:1.2.0", registry()));

    // And promoting prod by hand is refused and told to prod's channel: qa was rolled back
    let by_hand = watch.invoke(&event("watch-rollouts.promote-by-hand.json")).response();
    let promotion = &by_hand["promotion"];
    assert_eq!(promotion["result"], "refused");
    assert!(
        promotion["why"].as_str().unwrap().starts_with("qa/shop is not settled: its last rollout failed"),
        "{promotion:#}"
    );
    let told = sandbox.webhooks("releases");
    assert_eq!(told.len(), 1);
    assert_eq!(told[0]["blocks"][0]["text"]["text"], "Promotion held: prod/shop");

    // And a later promotion of that digest into qa is refused by qa's quarantine
    let mut again = event("watch-rollouts.promote-by-hand.json");
    again["promote"] = json!("qa/shop");
    let refused = watch.invoke(&again).response();
    assert_eq!(refused["promotion"]["why"], format!("{short} is quarantined on qa/shop: a rollout of it failed there"));
    match spawn(&sandbox, "watch-rollouts").invoke(&json!({"promote": "qa"})) {
        Outcome::Error { error_type, error_message } => {
            assert_eq!(error_type, "InvalidEvent");
            assert_eq!(error_message, "invalid event: promote: \"qa\" is not <cluster>/<service>");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_rollbacks_completion_arriving_after_ecs_forgot_the_failed_rollout_is_no_success() {
    // Given 1.3.0 promoted to qa, and qa's rollout failed and rolled back before any of its events arrived
    let sandbox = Sandbox::start();
    stages(&sandbox, false).await;
    spawn(&sandbox, "deploy-on-push").invoke(&event("deploy-on-push.ecr-push.json")).response();
    let mut watch = spawn(&sandbox, "watch-rollouts");
    watch.invoke(&end_rollout(&sandbox, "staging", "COMPLETED").remove(0)).response();
    assert_eq!(pass(&sandbox, &mut watch, 31.0)[0]["promotion"]["result"], "promoted");
    let failure_events = end_rollout(&sandbox, "qa", "FAILED");
    let rollback_done = end_rollout(&sandbox, "qa", "COMPLETED").remove(0);
    assert_eq!(
        sandbox.ecs().describe_services().cluster("qa").services("shop").send().await.unwrap().services()[0]
            .deployments()
            .len(),
        1,
        "ECS lists the rollback alone"
    );

    // When the rollback's completion arrives first
    let done = watch.invoke(&rollback_done).response();

    // Then it is told as the rollout rolled back, from ECS's service deployment history: the digest
    // is quarantined on qa and nothing is scheduled for prod
    assert_eq!(done["outcome"], "rolled back", "{done:#}");
    let short = nightshift::quarantine::short(&pushed_digest());
    assert_eq!(done["quarantined"], json!([short]));
    assert!(done.get("scheduled").is_none() && sandbox.schedules().is_empty(), "{done:#}");

    // And the failure's own events, late, tell nothing again; time passing moves nothing to prod
    for late in &failure_events {
        assert_eq!(watch.invoke(late).response()["outcome"], Value::Null);
    }
    assert!(pass(&sandbox, &mut watch, 120.0).is_empty());
    assert_eq!(image_of(&sandbox, "prod").await, format!("{}/shop/api:1.2.0", registry()));
    assert_eq!(sandbox.webhooks("releases").len(), 0, "prod was told nothing");
}

#[tokio::test]
async fn a_later_push_failing_upstream_does_not_cancel_the_due_promotion_of_the_good_one() {
    // Given 1.3.0 completed on staging, its promotion to qa due in 30 minutes
    let sandbox = Sandbox::start();
    stages(&sandbox, false).await;
    let mut deploy = spawn(&sandbox, "deploy-on-push");
    deploy.invoke(&event("deploy-on-push.ecr-push.json")).response();
    let mut watch = spawn(&sandbox, "watch-rollouts");
    watch.invoke(&end_rollout(&sandbox, "staging", "COMPLETED").remove(0)).response();
    assert!(pass(&sandbox, &mut watch, 10.0).is_empty());

    // When 1.4.0 is pushed, reaches staging and fails there; the promotion falls due during the rollback
    let digest = push_image(&sandbox.ecr(), "shop/api", "1.4.0", "shop/api 1.4.0").await;
    let mut push = event("deploy-on-push.ecr-push.json");
    push["detail"]["image-tag"] = json!("1.4.0");
    push["detail"]["image-digest"] = json!(digest);
    assert_eq!(deploy.invoke(&push).response()["deployed"][0]["cluster"], "staging");
    for failure in end_rollout(&sandbox, "staging", "FAILED") {
        watch.invoke(&failure).response();
    }
    let during = pass(&sandbox, &mut watch, 21.0);

    // Then it waits for staging to settle instead of being dropped
    assert_eq!(during.len(), 1);
    assert_eq!(during[0]["promotion"]["result"], "waiting", "{:#}", during[0]);
    assert_eq!(image_of(&sandbox, "qa").await, format!("{}/shop/api:1.2.0", registry()));

    // And once the rollback restored 1.3.0 on staging, 1.3.0 is promoted to qa
    let done = watch.invoke(&end_rollout(&sandbox, "staging", "COMPLETED").remove(0)).response();
    assert_eq!(done["outcome"], Value::Null, "{done:#}");
    let after = pass(&sandbox, &mut watch, 11.0);
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["promotion"]["result"], "promoted", "{:#}", after[0]);
    assert_eq!(image_of(&sandbox, "qa").await, format!("{}/shop/api@{}", registry(), pushed_digest()));
}

#[tokio::test]
async fn a_blue_green_prod_gets_its_promotion_as_one_codedeploy_deployment() {
    // Given prod deployed by CodeDeploy (blue/green), and 1.3.0 soaked in staging, then in qa
    let sandbox = Sandbox::start();
    stages(&sandbox, true).await;
    let pinned = format!("{}/shop/api@{}", registry(), pushed_digest());
    spawn(&sandbox, "deploy-on-push").invoke(&event("deploy-on-push.ecr-push.json")).response();
    let mut watch = spawn(&sandbox, "watch-rollouts");
    watch.invoke(&end_rollout(&sandbox, "staging", "COMPLETED").remove(0)).response();
    assert_eq!(pass(&sandbox, &mut watch, 31.0)[0]["promotion"]["result"], "promoted");
    watch.invoke(&end_rollout(&sandbox, "qa", "COMPLETED").remove(0)).response();

    // When prod's promotion comes due, and Lambda retries it while the canary runs
    let fired = pass(&sandbox, &mut watch, 61.0);
    let promotion = &fired[0]["promotion"];
    assert!(sandbox.schedules().is_empty(), "the schedule deleted itself");

    // Then prod gets one CodeDeploy deployment of a revision pinned to qa's digest
    assert_eq!(promotion["result"], "promoted", "{promotion:#}");
    let deployed = &promotion["deployed"];
    assert_eq!(
        (deployed["controller"].as_str(), deployed["codedeploy"]["deployment_group"].as_str()),
        (Some("CODE_DEPLOY"), Some("prod"))
    );
    assert_eq!(deployed["images"][0]["to"], pinned);
    let id = deployed["codedeploy"]["deployment_id"].as_str().unwrap().to_owned();
    let again = watch.invoke(&json!({"promote": "prod/shop"})).response();
    assert_eq!(again["promotion"]["result"], "already", "{again:#}");
    assert!(
        again["promotion"]["why"]
            .as_str()
            .unwrap()
            .contains(&format!("CodeDeploy deployment {id} of shop-prod/prod already deploys"))
    );

    // And once CodeDeploy is done, prod runs the digest
    sandbox.end_deployment(&id, "Succeeded");
    assert_eq!(image_of(&sandbox, "prod").await, pinned);
}

#[tokio::test]
async fn a_promotion_whose_every_try_fails_is_retried_then_lands_in_the_dead_letter_queue() {
    // Given 1.3.0 soaked in staging and qa, prod blue/green, and prod's CodeDeploy group busy deploying
    // something else that never ends; watch-rollouts' schedules dead-letter into the stack's queue
    let sandbox = Sandbox::start();
    stages(&sandbox, true).await;
    let queue = sandbox.dead_letter_queue("nightshift-failed-invocations");
    let mut env = sandbox.function_env();
    env.push(("SCHEDULE_GROUP".into(), SCHEDULE_GROUP.into()));
    env.push(("SCHEDULE_ROLE_ARN".into(), schedule_role()));
    env.push(("SCHEDULE_DEAD_LETTER_ARN".into(), queue.clone()));
    let mut watch = FunctionProcess::spawn(&binary("watch-rollouts"), &env);
    spawn(&sandbox, "deploy-on-push").invoke(&event("deploy-on-push.ecr-push.json")).response();
    watch.invoke(&end_rollout(&sandbox, "staging", "COMPLETED").remove(0)).response();
    assert_eq!(pass(&sandbox, &mut watch, 31.0)[0]["promotion"]["result"], "promoted");
    watch.invoke(&end_rollout(&sandbox, "qa", "COMPLETED").remove(0)).response();
    let running = sandbox.ecs().describe_services().cluster("prod").services("shop").send().await.unwrap();
    let prod_revision = running.services()[0].task_definition().unwrap().to_owned();
    let appspec = json!({"version": 0.0, "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": {
        "TaskDefinition": prod_revision, "LoadBalancerInfo": {"ContainerName": "app", "ContainerPort": 8080}}}}]});
    let revision = aws_sdk_codedeploy::types::RevisionLocation::builder()
        .revision_type(aws_sdk_codedeploy::types::RevisionLocationType::AppSpecContent)
        .app_spec_content(aws_sdk_codedeploy::types::AppSpecContent::builder().content(appspec.to_string()).build())
        .build();
    let codedeploy = sandbox.codedeploy();
    codedeploy
        .create_deployment()
        .application_name("shop-prod")
        .deployment_group_name("prod")
        .revision(revision)
        .send()
        .await
        .unwrap();

    // When prod's promotion comes due, and each try fails (the group takes no second deployment), as
    // Scheduler tries it again and again
    let mut tries = 0;
    let mut minutes = 61.0;
    loop {
        let fired = sandbox.pass_time(minutes);
        minutes = 0.0;
        let [fired] = fired.as_slice() else { break };
        let input: Value = serde_json::from_str(fired["target"]["Input"].as_str().unwrap()).unwrap();
        let Outcome::Error { error_type, error_message } = watch.invoke(&input) else { panic!("the try should fail") };
        assert_eq!(error_type, "PromotionFailed", "{error_message}");
        tries += 1;
        let answer = sandbox.schedule_failed(fired, &error_message);
        if answer["dead_lettered"] == true {
            break;
        }
        assert!(tries < 10, "{answer}");
    }

    // Then it was tried once and retried five times (its RetryPolicy), and its input is in the queue, for the
    // alarm and a replay; no schedule is left
    assert_eq!(tries, 6);
    let letters = sandbox.dead_letters(&queue);
    assert_eq!(letters.len(), 1, "{letters:#?}");
    let input: Value = serde_json::from_str(letters[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        (input["promotion"]["service"].as_str(), input["promotion"]["from"].as_str()),
        (Some("prod/shop"), Some("qa/shop"))
    );
    assert!(
        letters[0]["attributes"]["ERROR_MESSAGE"].as_str().unwrap().contains("takes no second deployment"),
        "{letters:#?}"
    );
    assert!(sandbox.schedules().is_empty());
}

#[tokio::test]
async fn a_promotion_outside_its_window_waits_for_the_window_to_open() {
    // Given qa promoted only on weekdays from 09:00 to 16:00 (UTC), and staging's 1.3.0 completed
    let sandbox = Sandbox::start();
    stages(&sandbox, false).await;
    let window =
        aws_sdk_ecs::types::Tag::builder().key("nightshift:promote-window").value("Mon-Fri 09:00-16:00").build();
    let qa = "arn:aws:ecs:us-east-1:123456789012:service/qa/shop";
    sandbox.ecs().tag_resource().resource_arn(qa).tags(window).send().await.unwrap();
    spawn(&sandbox, "deploy-on-push").invoke(&event("deploy-on-push.ecr-push.json")).response();
    let completed = end_rollout(&sandbox, "staging", "COMPLETED").remove(0);
    let ended: DateTime<Utc> = completed["detail"]["updatedAt"].as_str().unwrap().parse().unwrap();

    // When the success is told to watch-rollouts (the binary, today)
    spawn(&sandbox, "watch-rollouts").invoke(&completed).response();

    // Then qa's schedule is at the end of the soak if the window is open then, else when it opens
    let weekdays = WeeklyWindows::parse("Mon-Fri 09:00-16:00", zone("UTC").unwrap()).unwrap();
    let schedules = sandbox.schedules();
    let first = at(&schedules[0]);
    let soaked = ended + Duration::minutes(30);
    assert!(weekdays.window_at(first).is_some(), "{first} is in the window");
    assert!(first == soaked || (first > soaked && (first.hour(), first.minute()) == (9, 0)), "{first} after {soaked}");

    // When it runs on a Saturday (watch-rollouts in this process, its clock fixed there)
    let saturday = Utc.with_ymd_and_hms(2027, 1, 2, 12, 0, 0).unwrap();
    let input: Value = serde_json::from_str(schedules[0]["target"]["Input"].as_str().unwrap()).unwrap();
    let mut settings: HashMap<String, String> = sandbox.function_env().into_iter().collect();
    settings.insert("SCHEDULE_GROUP".into(), SCHEDULE_GROUP.into());
    settings.insert("SCHEDULE_ROLE_ARN".into(), schedule_role());
    let config = watch_rollouts::WatchConfig::from_vars(&settings).unwrap();
    let signed: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let sdk = sandbox.sdk_config_for("watch-rollouts", &signed);
    let notifier =
        nightshift::notify::Notifier::new(nightshift::notify::NotifyConfig::from_vars(&settings).unwrap(), &sdk);
    let ecs = nightshift::aws::ecs_client(&sdk);
    let signed = Arc::new(nightshift::signed::SignedHttp::new(&sdk));
    let codedeploy = nightshift::rollout::codedeploy::CodeDeploy::new(signed.clone());
    let function = watch_rollouts::WatchRollouts::new(
        config,
        ecs,
        codedeploy,
        signed.clone(),
        nightshift::state::StateTable::new(signed, &settings["STATE_TABLE"]),
        &notifier,
    )
    .with_clock(Arc::new(FixedClock(saturday)));
    let mut context = Context::default();
    context.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:nightshift".into();
    let report = function.handle(LambdaEvent::new(input, context)).await.unwrap();

    // Then nothing moves, and it is scheduled again for Monday 09:00
    let promotion = report.promotion.unwrap();
    assert_eq!(
        (promotion.result, promotion.why.as_str()),
        (watch_rollouts::plan::PromotionResult::Waiting, "outside nightshift:promote-window Mon-Fri 09:00-16:00 (UTC)")
    );
    let monday = Utc.with_ymd_and_hms(2027, 1, 4, 9, 0, 0).unwrap();
    assert_eq!(promotion.scheduled.map(|s| (s.at, s.already)), Some((monday, false)));
    assert!(sandbox.schedules().iter().any(|s| at(s) == monday));
    assert_eq!(image_of(&sandbox, "qa").await, format!("{}/shop/api:1.2.0", registry()));
}
