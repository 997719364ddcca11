//! Holds by hand (watch-rollouts' `{"hold": ...}` and `{"release": ...}`), as
//! the functions respect them: no automatic rollout or due promotion into a
//! held service; a hold that ended lets the next push through; a promotion by
//! hand still goes. The built binaries, through the Runtime API.

use nightshift_tests::event;
use nightshift_tests::platform::{SCHEDULE_GROUP, end_stage_rollout, schedule_role, seed_stages, stage_image};
use nightshift_tests::runtime::{FunctionProcess, binary};
use nightshift_tests::sandbox::{ACCOUNT, REGION, Sandbox};
use serde_json::{Value, json};

fn spawn(sandbox: &Sandbox, function: &str, dry_run: bool) -> FunctionProcess {
    let mut env = sandbox.function_env();
    env.push(("SCHEDULE_GROUP".into(), SCHEDULE_GROUP.into()));
    env.push(("SCHEDULE_ROLE_ARN".into(), schedule_role()));
    env.push(("DRY_RUN".into(), dry_run.to_string()));
    FunctionProcess::spawn(&binary(function), &env)
}

fn skipped_why(report: &Value, cluster: &str) -> String {
    let skipped = report["skipped"].as_array().cloned().unwrap_or_default();
    let found = skipped.iter().find(|s| s["cluster"] == cluster);
    found.and_then(|s| s["reason"].as_str()).unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_held_service_takes_no_push_and_a_hold_that_ended_or_was_released_lets_the_next_through() {
    // Given staging following pushes
    let sandbox = Sandbox::start();
    seed_stages(&sandbox.ecs(), &sandbox.ecr(), &sandbox.scheduler(), &sandbox.codedeploy(), false).await;
    let mut watch = spawn(&sandbox, "watch-rollouts", false);
    let before = stage_image(&sandbox.ecs(), "staging").await;

    // When it is held for two hours (with DRY_RUN first: nothing is written)
    let hold = json!({"hold": {"service": "staging/shop", "reason": "incident 42", "minutes": 120, "by": "ana"}});
    let dry = spawn(&sandbox, "watch-rollouts", true).invoke(&hold).response();
    assert_eq!(dry["hold"]["result"], "held", "{dry:#}");
    let arn = format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service/staging/shop");
    assert!(sandbox.state().holds(&arn).await.unwrap().is_empty(), "DRY_RUN holds nothing");
    let held = watch.invoke(&hold).response();
    assert_eq!((held["hold"]["result"].as_str(), held["hold"]["by"].as_str()), (Some("held"), Some("ana")));
    assert_eq!(watch.invoke(&hold).response()["hold"]["result"], "already", "the same hold again writes nothing");

    // Then a push skips it, saying who held it, until when and why
    let pushed = spawn(&sandbox, "deploy-on-push", false).invoke(&event("deploy-on-push.ecr-push.json")).response();
    let why = skipped_why(&pushed, "staging");
    assert!(why.starts_with("the service is held until ") && why.ends_with(" by ana: incident 42"), "{pushed:#}");
    assert_eq!(stage_image(&sandbox.ecs(), "staging").await, before);

    // When the hold has ended (its end passed; the table's TTL has not deleted it yet)
    let ended = nightshift::state::StateWrite::Hold {
        service: arn.clone(),
        reason: "incident 42".into(),
        by: "ana".into(),
        until: Some(chrono::Utc::now() - chrono::Duration::minutes(1)),
    };
    sandbox.state().write(&ended, chrono::Utc::now()).await.unwrap();
    let pushed = spawn(&sandbox, "deploy-on-push", false).invoke(&event("deploy-on-push.ecr-push.json")).response();

    // Then the push goes through
    assert_eq!(pushed["deployed"][0]["cluster"], "staging", "{pushed:#}");
    assert_ne!(stage_image(&sandbox.ecs(), "staging").await, before);
    let released = watch.invoke(&json!({"release": {"service": "staging/shop", "by": "ana"}})).response();
    assert_eq!(released["hold"]["result"], "released");
    let again = watch.invoke(&json!({"release": {"service": "staging/shop"}})).response();
    assert_eq!(again["hold"]["result"], "not held");
}

#[tokio::test]
async fn a_due_promotion_into_a_held_service_waits_and_one_by_hand_still_goes() {
    // Given staging ran 1.3.0 and qa's promotion is scheduled, and every service is held until released
    let sandbox = Sandbox::start();
    seed_stages(&sandbox.ecs(), &sandbox.ecr(), &sandbox.scheduler(), &sandbox.codedeploy(), false).await;
    let mut watch = spawn(&sandbox, "watch-rollouts", false);
    spawn(&sandbox, "deploy-on-push", false).invoke(&event("deploy-on-push.ecr-push.json")).response();
    let completed = end_stage_rollout(&sandbox, "staging", "COMPLETED").remove(0);
    assert_eq!(watch.invoke(&completed).response()["scheduled"].as_array().map(Vec::len), Some(1));
    let held = watch.invoke(&json!({"hold": {"service": "all", "reason": "release freeze", "by": "ana"}})).response();
    assert_eq!(held["hold"]["result"], "held", "{held:#}");
    let qa_before = stage_image(&sandbox.ecs(), "qa").await;

    // When the promotion comes due
    let fired = sandbox.pass_time(31.0);
    let input: Value = serde_json::from_str(fired[0]["target"]["Input"].as_str().unwrap()).unwrap();
    let due = watch.invoke(&input).response();

    // Then it does not move qa, saying why
    assert_eq!(due["promotion"]["result"], "refused", "{due:#}");
    let why = due["promotion"]["why"].as_str().unwrap();
    assert!(why.starts_with("every service is held until released by ana: release freeze"), "{why}");
    assert_eq!(stage_image(&sandbox.ecs(), "qa").await, qa_before);

    // When someone promotes by hand
    let by_hand = watch.invoke(&json!({"promote": "qa/shop"})).response();

    // Then it goes: a hold stops the automatic ones only
    assert_eq!(by_hand["promotion"]["result"], "promoted", "{by_hand:#}");
    assert_eq!(stage_image(&sandbox.ecs(), "qa").await, stage_image(&sandbox.ecs(), "staging").await);
}
