//! The `nightshift` command end to end, as a new user runs it against the
//! sandbox: the stack "deployed" there (Lambda's Invoke runs the built
//! functions through the Runtime API), the command acting only through them.
//! Each command: its exit code, its output, what changed and what did not;
//! `--dry-run` changes nothing.

use nightshift_tests::cli::{GROUP, deploy, nightshift};
use nightshift_tests::event;
use nightshift_tests::platform::{
    DAGSTER, described, end_stage_rollout, seed_dagster, seed_dataspace, seed_stages, stage_image,
};
use nightshift_tests::runtime::{FunctionProcess, binary};
use nightshift_tests::sandbox::{ACCOUNT, REGION, Sandbox};
use serde_json::Value;

/// The digest of `shop/api:1.3.0`, as the registry holds it (events/deploy-on-push.ecr-push.json).
fn pushed_digest() -> String {
    nightshift_tests::platform::pushed_digest()
}

/// Staging, QA and prod following one another, and the stack deployed.
async fn stages() -> Sandbox {
    let sandbox = Sandbox::start();
    seed_stages(&sandbox.ecs(), &sandbox.ecr(), &sandbox.scheduler(), &sandbox.codedeploy(), false).await;
    deploy(&sandbox);
    sandbox
}

/// The push of `shop/api:1.3.0` as ECR sends it, to deploy-on-push.
fn push(sandbox: &Sandbox) -> Value {
    let process = FunctionProcess::spawn(&binary("deploy-on-push"), &sandbox.function_env());
    { process }.invoke(&event("deploy-on-push.ecr-push.json")).response()
}

fn arn(cluster: &str, service: &str) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster}/{service}")
}

#[tokio::test]
async fn status_shows_every_service_group_and_the_dataspace_as_a_table_and_as_json() {
    // Given the three stages, the Dagster group and the dataspace
    let sandbox = stages().await;
    seed_dagster(&sandbox.ecs(), &sandbox.scaling_counted().0).await;
    seed_dataspace(&sandbox.ecs(), &sandbox.s3()).await;

    // When status is asked for
    let ran = nightshift(&sandbox, &["status"]);

    // Then one table shows each service nightshift looks after, plain when piped
    assert_eq!(ran.code, 0, "{ran:?}");
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert!(lines[0].starts_with("SERVICE") && lines[0].contains("NEXT PROMOTION"), "{}", ran.stdout);
    let row =
        |id: &str| lines.iter().find(|l| l.starts_with(id)).copied().unwrap_or_else(|| panic!("{id}: {}", ran.stdout));
    assert!(row("staging/shop ").contains("1.2.0") && row("staging/shop ").contains("pushes (semver)"));
    assert!(row("qa/shop ").contains("staging/shop") && row("prod/shop ").contains("qa/shop"));
    assert!(row("dagster/daemon ").ends_with("awake"), "{}", ran.stdout);
    assert!(!ran.stdout.contains("metabase"), "a service outside nightshift is not shown: {}", ran.stdout);
    assert!(
        ran.stdout.contains("scale group dagster: awake (dagster/code-location, dagster/daemon, dagster/webserver)")
    );
    assert!(ran.stdout.contains("dataspace mvd: last reset "), "{}", ran.stdout);
    assert!(!ran.stdout.contains('\x1b'));

    // And --json is the documented document; --cluster narrows it
    let json = nightshift(&sandbox, &["status", "--json"]).json();
    let services = json["services"].as_array().unwrap();
    let staging = services.iter().find(|s| s["cluster"] == "staging").unwrap();
    assert_eq!(staging["images"][0]["tag"], "1.2.0");
    assert_eq!((staging["followsPushes"].as_str(), staging["state"].as_str()), (Some("semver"), Some("awake")));
    assert_eq!(staging["rollout"], "IN_PROGRESS", "the sandbox's new services are still rolling out");
    assert_eq!(json["groups"][0]["name"], GROUP);
    assert_eq!(json["dataspace"]["name"], "mvd");
    let narrowed = nightshift(&sandbox, &["status", "--json", "--cluster", "qa"]).json();
    assert_eq!(narrowed["services"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn deploy_rolls_an_image_out_as_its_push_would_and_dry_run_and_wrong_input_change_nothing() {
    let sandbox = stages().await;
    let before = stage_image(&sandbox.ecs(), "staging").await;

    // A dry run says what it would roll out, and changes nothing
    let dry = nightshift(&sandbox, &["deploy", "staging/shop", "1.3.0", "--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(dry.stdout.starts_with("would roll out staging/shop:"), "{}", dry.stdout);
    assert!(dry.stdout.contains(&format!("shop/api@{}", pushed_digest())), "{}", dry.stdout);
    assert_eq!(stage_image(&sandbox.ecs(), "staging").await, before);

    // Wrong input: a clear error, exit 1, nothing changed
    let unknown = nightshift(&sandbox, &["deploy", "staging/shop", "9.9.9"]);
    assert_eq!(unknown.code, 1);
    assert!(unknown.stderr.contains("holds 9.9.9: push it first"), "{unknown:?}");
    let not_pushes = nightshift(&sandbox, &["deploy", "qa/shop", "1.3.0"]);
    assert!(not_pushes.code == 1 && not_pushes.stderr.contains("does not follow pushes"), "{not_pushes:?}");
    let malformed = nightshift(&sandbox, &["deploy", "shop", "1.3.0"]);
    assert!(malformed.code == 1 && malformed.stderr.contains("is not <cluster>/<service>"), "{malformed:?}");
    assert_eq!(stage_image(&sandbox.ecs(), "staging").await, before);

    // The deploy, waited for: it rolls out, the rollout completes, exit 0
    let waiting = std::thread::scope(|scope| {
        let run = scope.spawn(|| nightshift(&sandbox, &["deploy", "staging/shop", "1.3.0", "--wait"]));
        // Once ECS started the rollout, it ends as ECS would (a thread of its own: no runtime here)
        scope.spawn(|| {
            let started = std::time::Instant::now();
            while sandbox_image_is(&sandbox, &before) && started.elapsed().as_secs() < 60 {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            std::thread::sleep(std::time::Duration::from_secs(1));
            end_stage_rollout(&sandbox, "staging", "COMPLETED");
        });
        run.join().unwrap()
    });
    assert_eq!(waiting.code, 0, "{waiting:?}");
    assert!(waiting.stdout.starts_with("rolling out staging/shop:"), "{}", waiting.stdout);
    assert!(waiting.stdout.trim_end().ends_with("staging/shop: rolled out"), "{}", waiting.stdout);
    assert!(stage_image(&sandbox.ecs(), "staging").await.ends_with(&pushed_digest()));

    // The same deploy again: nothing to do, nothing written
    let again = nightshift(&sandbox, &["deploy", "staging/shop", "1.3.0"]);
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stdout.contains("not deployed"), "{again:?}");
}

/// Whether staging still runs `image` (a blocking read, for a thread that waits on the command).
fn sandbox_image_is(sandbox: &Sandbox, image: &str) -> bool {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async { stage_image(&sandbox.ecs(), "staging").await == image })
}

#[tokio::test]
async fn rollback_quarantines_the_digest_holds_the_service_and_goes_back_and_a_second_one_does_nothing() {
    // Given staging rolled out 1.3.0 from its push
    let sandbox = stages().await;
    let before = stage_image(&sandbox.ecs(), "staging").await;
    assert_eq!(push(&sandbox)["deployed"][0]["cluster"], "staging");
    end_stage_rollout(&sandbox, "staging", "COMPLETED");
    let bad = stage_image(&sandbox.ecs(), "staging").await;

    // A dry run changes nothing
    let dry = nightshift(&sandbox, &["rollback", "staging/shop", "--reason", "500s on checkout", "--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(
        dry.stdout.contains("would quarantine on staging/shop") && dry.stdout.contains("would roll out"),
        "{}",
        dry.stdout
    );
    assert_eq!(stage_image(&sandbox.ecs(), "staging").await, bad);
    assert!(sandbox.state().memory(&arn("staging", "shop")).await.unwrap().quarantine.is_empty());

    // When it is rolled back
    let ran = nightshift(&sandbox, &["rollback", "staging/shop", "--reason", "500s on checkout"]);

    // Then the digest is quarantined, the service held until released, and it runs the images before
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(
        ran.stdout.contains(&format!("quarantined on staging/shop: {}", nightshift_status_short(&pushed_digest()))),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("held staging/shop until released"), "{}", ran.stdout);
    assert!(stage_image(&sandbox.ecs(), "staging").await.ends_with(before.rsplit('/').next().unwrap()));
    let held = sandbox.state().holds(&arn("staging", "shop")).await.unwrap();
    assert!(held[0].reason.contains("500s on checkout") && held[0].until.is_none(), "{held:?}");
    let listed = nightshift(&sandbox, &["quarantine", "list", "--json"]).json();
    assert_eq!(listed[0]["service"], "staging/shop");
    assert_eq!(listed[0]["digest"].as_str(), Some(pushed_digest().as_str()));

    // And the push of it again stays out; a second rollback has nothing to do
    let pushed = push(&sandbox);
    assert!(pushed["deployed"].as_array().unwrap().is_empty(), "{pushed:#}");
    end_stage_rollout(&sandbox, "staging", "COMPLETED");
    let again = nightshift(&sandbox, &["rollback", "staging/shop"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("nothing to roll back") && again.stdout.contains("rolled back already"), "{again:?}");
    let status = nightshift(&sandbox, &["status"]).stdout;
    let row = status.lines().find(|l| l.starts_with("staging/shop")).unwrap();
    assert!(
        row.contains("held until released") && row.contains(&nightshift_status_short(&pushed_digest())),
        "{status}"
    );
}

fn nightshift_status_short(digest: &str) -> String {
    digest.trim_start_matches("sha256:").chars().take(12).collect()
}

#[tokio::test]
async fn a_hold_stops_a_push_until_released_and_dry_run_holds_nothing() {
    let sandbox = stages().await;
    let before = stage_image(&sandbox.ecs(), "staging").await;

    let dry = nightshift(&sandbox, &["hold", "staging/shop", "--for", "2h", "--reason", "incident 7", "--dry-run"]);
    assert!(dry.code == 0 && dry.stdout.starts_with("would hold staging/shop until "), "{dry:?}");
    assert!(sandbox.state().holds(&arn("staging", "shop")).await.unwrap().is_empty());

    let held = nightshift(&sandbox, &["hold", "staging/shop", "--for", "2h", "--reason", "incident 7"]);
    assert!(held.code == 0 && held.stdout.starts_with("held staging/shop until "), "{held:?}");
    let skipped = push(&sandbox);
    let why = skipped["skipped"][0]["reason"].as_str().unwrap_or_default();
    assert!(why.starts_with("the service is held until ") && why.ends_with(": incident 7"), "{skipped:#}");
    assert_eq!(stage_image(&sandbox.ecs(), "staging").await, before);

    let missing = nightshift(&sandbox, &["hold", "staging/shop"]);
    assert!(missing.code == 2 && missing.stderr.contains("--reason"), "{missing:?}");

    let released = nightshift(&sandbox, &["release", "staging/shop"]);
    assert!(released.code == 0 && released.stdout.starts_with("released staging/shop"), "{released:?}");
    assert_eq!(push(&sandbox)["deployed"][0]["cluster"], "staging");

    let all = nightshift(&sandbox, &["hold", "--all", "--reason", "release freeze"]);
    assert!(all.code == 0 && all.stdout.starts_with("held every service until released"), "{all:?}");
    assert!(nightshift(&sandbox, &["status"]).stdout.contains("Every service is held until released by "));
    assert_eq!(nightshift(&sandbox, &["release", "--all"]).code, 0);
}

#[tokio::test]
async fn promote_by_hand_moves_the_follower_to_what_it_follows_and_dry_run_does_not() {
    // Given staging runs 1.3.0, its rollout done
    let sandbox = stages().await;
    push(&sandbox);
    end_stage_rollout(&sandbox, "staging", "COMPLETED");
    let early = nightshift(&sandbox, &["promote", "qa/shop"]);
    assert!(
        early.code == 1 && early.stdout.contains("refused") && early.stdout.contains("the soak is 30 minutes"),
        "{early:?}"
    );
    // Its soak passed
    sandbox.pass_time(31.0);
    let qa_before = stage_image(&sandbox.ecs(), "qa").await;

    let dry = nightshift(&sandbox, &["promote", "qa/shop", "--dry-run"]);
    assert!(dry.code == 0 && dry.stdout.starts_with("would promote qa/shop from staging/shop"), "{dry:?}");
    assert_eq!(stage_image(&sandbox.ecs(), "qa").await, qa_before);

    let ran = nightshift(&sandbox, &["promote", "qa/shop"]);
    assert!(ran.code == 0 && ran.stdout.starts_with("promoting qa/shop from staging/shop"), "{ran:?}");
    assert_eq!(stage_image(&sandbox.ecs(), "qa").await, stage_image(&sandbox.ecs(), "staging").await);

    let refused = nightshift(&sandbox, &["promote", "staging/shop"]);
    assert_eq!(refused.code, 1, "a service that follows none is not promoted: {refused:?}");
}

#[tokio::test]
async fn a_digest_quarantined_by_hand_is_refused_until_released() {
    let sandbox = stages().await;
    let digest = pushed_digest();

    let dry = nightshift(&sandbox, &["quarantine", "add", &digest, "--reason", "CVE-2026-1", "--dry-run"]);
    assert!(dry.code == 0 && dry.stdout.contains("would quarantine"), "{dry:?}");
    assert_eq!(nightshift(&sandbox, &["quarantine", "list"]).stdout.trim(), "no digest is quarantined");

    let added = nightshift(&sandbox, &["quarantine", "add", &digest, "--reason", "CVE-2026-1"]);
    assert!(added.code == 0 && added.stdout.contains("quarantined (3 of 3 services changed)"), "{added:?}");
    let again = nightshift(&sandbox, &["quarantine", "add", &digest, "--reason", "CVE-2026-1"]);
    assert!(again.stdout.contains("already (0 of 3 services changed)"), "the same again writes nothing: {again:?}");
    assert!(nightshift(&sandbox, &["quarantine", "list"]).stdout.contains("CVE-2026-1"));

    let refused = nightshift(&sandbox, &["deploy", "staging/shop", &digest]);
    assert!(refused.code == 1 && refused.stdout.contains("is quarantined on this service"), "{refused:?}");

    let bad = nightshift(&sandbox, &["quarantine", "add", "sha256:123"]);
    assert!(bad.code == 1 && bad.stderr.contains("is not an image digest"), "{bad:?}");

    let released = nightshift(&sandbox, &["quarantine", "release", &digest, "--service", "staging/shop"]);
    assert!(released.code == 0 && released.stdout.contains("released (1 of 1 services changed)"), "{released:?}");
    let deployed = nightshift(&sandbox, &["deploy", "staging/shop", &digest]);
    assert_eq!(deployed.code, 0, "{deployed:?}");
}

#[tokio::test]
async fn sleep_and_wake_override_the_windows_for_a_while_and_the_windows_rule_again_once_it_ends() {
    // Given the Dagster group awake, with no window and no recent ingress (idle)
    let sandbox = Sandbox::start();
    seed_dagster(&sandbox.ecs(), &sandbox.scaling_counted().0).await;
    deploy(&sandbox);
    let desired = |name: &'static str| {
        let ecs = sandbox.ecs();
        async move { described(&ecs, DAGSTER, name).await.desired_count() }
    };

    let dry = nightshift(&sandbox, &["sleep", GROUP, "--for", "2h", "--dry-run"]);
    assert!(dry.code == 0 && dry.stdout.contains("(would set)"), "{dry:?}");
    assert_eq!(desired("daemon").await, 1);

    // When it is woken by hand for three hours: awake, whatever idleness says
    let woke = nightshift(&sandbox, &["wake", GROUP, "--for", "3h"]);
    assert!(
        woke.code == 0 && woke.stdout.contains("awake by hand until ") && woke.stdout.contains("(set)"),
        "{woke:?}"
    );
    let tick = FunctionProcess::spawn(
        &binary("scale-to-zero"),
        &[sandbox.function_env(), vec![("CLUSTERS".into(), DAGSTER.into()), ("SCALE_GROUP".into(), GROUP.into())]]
            .concat(),
    );
    let mut tick = tick;
    let during = tick.invoke(&event("scale-to-zero.schedule.json")).response();
    assert_eq!(during["needed"], true, "{during:#}");
    assert!(during["reasons"][0].as_str().unwrap().starts_with("woken by hand by "), "{during:#}");
    let status = nightshift(&sandbox, &["status"]).stdout;
    assert!(status.contains("scale group dagster: awake") && status.contains("; awake by hand until "), "{status}");

    // When it is put to sleep by hand: asleep now
    let slept = nightshift(&sandbox, &["sleep", GROUP, "--for", "2h"]);
    assert!(slept.code == 0 && slept.stdout.contains("decision: sleep"), "{slept:?}");
    assert_eq!(desired("daemon").await, 0);

    // When the override ends (its end passed, the item not yet gone): the windows rule again
    let ended = nightshift::state::StateWrite::Override {
        group: GROUP.into(),
        awake: true,
        by: "ana".into(),
        until: chrono::Utc::now() - chrono::Duration::minutes(1),
    };
    sandbox.state().write(&ended, chrono::Utc::now()).await.unwrap();
    let after = tick.invoke(&event("scale-to-zero.schedule.json")).response();
    assert!(!after["reasons"].to_string().contains("by hand"), "{after:#}");
    assert_eq!(after["needed"], false);

    let wrong = nightshift(&sandbox, &["wake", "metabase"]);
    assert!(wrong.code == 1 && wrong.stderr.contains("scales the group \"dagster\", not \"metabase\""), "{wrong:?}");
}

#[tokio::test]
async fn reset_runs_the_dataspace_reset_now_and_dry_run_restarts_nothing() {
    let sandbox = Sandbox::start();
    seed_dataspace(&sandbox.ecs(), &sandbox.s3()).await;
    deploy(&sandbox);
    let restarted = || {
        let ecs = sandbox.ecs();
        async move { described(&ecs, "selt", "dpf").await.deployments().len() }
    };
    let before = restarted().await;

    let dry = nightshift(&sandbox, &["reset", "--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(dry.stdout.contains("space-enforcer-laser-tec: reset (dry run)"), "{}", dry.stdout);
    assert_eq!(restarted().await, before);

    let ran = nightshift(&sandbox, &["reset", "--wait", "--participant", "space-enforcer-laser-tec"]);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(ran.stdout.starts_with("space-enforcer-laser-tec: reset ("), "{}", ran.stdout);
    assert_eq!(ran.stdout.lines().count(), 1, "one participant: {}", ran.stdout);
    let json = nightshift(&sandbox, &["reset", "--wait", "--json", "--participant", "space-enforcer-laser-tec"]).json();
    assert!(json["by"].as_str().is_some_and(|by| by.starts_with("arn:aws:")), "who asked is in the report: {json:#}");

    let background = nightshift(&sandbox, &["reset"]);
    assert!(background.code == 0 && background.stdout.starts_with("reset started"), "{background:?}");
}

#[tokio::test]
async fn a_stack_that_is_not_there_is_a_clear_error() {
    let sandbox = Sandbox::start();
    deploy(&sandbox);
    let ran = nightshift(&sandbox, &["--stack", "other", "status"]);
    assert_eq!(ran.code, 1);
    assert!(ran.stderr.contains("there is no stack \"other\""), "{ran:?}");
}

#[tokio::test]
async fn the_manual_event_files_are_what_the_functions_take_and_dry_run_ones_change_nothing() {
    let sandbox = stages().await;
    seed_dagster(&sandbox.ecs(), &sandbox.scaling_counted().0).await;
    push(&sandbox);
    end_stage_rollout(&sandbox, "staging", "COMPLETED");
    let before = stage_image(&sandbox.ecs(), "staging").await;
    let group = [("CLUSTERS".to_owned(), DAGSTER.to_owned()), ("SCALE_GROUP".to_owned(), GROUP.to_owned())];
    let watch = [
        ("SCHEDULE_GROUP".to_owned(), nightshift_tests::platform::SCHEDULE_GROUP.to_owned()),
        ("SCHEDULE_ROLE_ARN".to_owned(), nightshift_tests::platform::schedule_role()),
    ];
    for (file, function, extra) in [
        ("deploy-on-push.deploy-by-hand.json", "deploy-on-push", &[][..]),
        ("watch-rollouts.rollback-by-hand.json", "watch-rollouts", &watch[..]),
        ("watch-rollouts.hold.json", "watch-rollouts", &watch[..]),
        ("watch-rollouts.quarantine-by-hand.json", "watch-rollouts", &watch[..]),
        ("scale-to-zero.override.json", "scale-to-zero", &group[..]),
    ] {
        let mut asked = event(file);
        asked["dryRun"] = Value::Bool(true);
        let env = [sandbox.function_env(), extra.to_vec()].concat();
        let report = FunctionProcess::spawn(&binary(function), &env).invoke(&asked).response();
        assert_eq!(report["dry_run"], true, "{file}: {report:#}");
        assert!(report.get("ignored").is_none_or(Value::is_null), "{file}: {report:#}");
    }
    // Nothing changed: no quarantine, no hold, no override, the image as it was
    let memory = sandbox.state().memory(&arn("staging", "shop")).await.unwrap();
    assert!(memory.quarantine.is_empty(), "{memory:?}");
    assert!(sandbox.state().holds(&arn("staging", "shop")).await.unwrap().is_empty());
    assert_eq!(sandbox.state().override_of(GROUP).await.unwrap(), None);
    assert_eq!(stage_image(&sandbox.ecs(), "staging").await, before);
}
