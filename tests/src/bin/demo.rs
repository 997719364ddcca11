//! `make demo`: nightshift's functions at work on a local AWS.
//!
//! Starts the moto sandbox, seeds a realistic platform, runs each built
//! function binary through the Lambda Runtime API stand-in, prints what
//! changed, and stops the sandbox. `demo <scene>` runs one scene only.

use std::collections::BTreeMap;
use std::process::ExitCode;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, ExpirationStatus, LifecycleRule, LifecycleRuleFilter, Transition,
    TransitionStorageClass,
};
use chrono::{SecondsFormat, Utc};
use nightshift_tests::event;
use nightshift_tests::platform::{
    CLUSTER, DAGSTER, MANIFEST_BUCKET, MANIFEST_KEY, SCHEDULE_GROUP, STAGES, end_stage_rollout, mvd_manifest,
    push_image, registry, schedule_role, seed_dagster, seed_dataspace, seed_shop, seed_stages, stage_image, start_run,
};
use nightshift_tests::runtime::{FunctionProcess, Outcome, binary};
use nightshift_tests::sandbox::Sandbox;
use serde_json::Value;

const SCENES: [&str; 9] = [
    "expire-logs",
    "deploy-on-push",
    "watch-rollouts",
    "promote",
    "verify-rollout",
    "accounts",
    "scale",
    "reset-dataspace",
    "status",
];

#[tokio::main]
async fn main() -> ExitCode {
    let only: Option<String> = std::env::args().nth(1);
    if let Some(scene) = &only
        && !SCENES.contains(&scene.as_str())
    {
        eprintln!("no scene {scene:?}; the scenes are: {}", SCENES.join(", "));
        return ExitCode::FAILURE;
    }
    println!("Starting the local AWS sandbox (moto) ...");
    let sandbox = Sandbox::start();
    println!("  listening on {}\n", sandbox.endpoint());
    let wants = |scene: &str| only.as_deref().is_none_or(|o| o == scene);
    let mut ok = true;
    if wants("expire-logs") {
        ok &= expire_logs(&sandbox).await;
    }
    if wants("deploy-on-push") {
        ok &= deploy_on_push(&sandbox).await;
    }
    if wants("watch-rollouts") {
        ok &= watch_rollouts().await;
    }
    if wants("promote") {
        ok &= promote().await;
    }
    if wants("verify-rollout") {
        ok &= verify_rollout().await;
    }
    if wants("accounts") {
        ok &= accounts().await;
    }
    if wants("scale") {
        ok &= scale(&sandbox).await;
    }
    if wants("reset-dataspace") {
        ok &= reset_dataspace(&sandbox).await;
    }
    if wants("status") {
        ok &= status(&sandbox, only.is_none());
    }
    println!("Stopping the sandbox.");
    drop(sandbox);
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// The `nightshift` command over the sandbox the scenes above worked on: the
/// stack "deployed" there, its status read as a new user would.
fn status(sandbox: &Sandbox, after_every_scene: bool) -> bool {
    heading("nightshift status: the whole platform at a glance");
    nightshift_tests::cli::deploy(sandbox);
    println!("$ nightshift status");
    let ran = nightshift_tests::cli::nightshift(sandbox, &["status"]);
    print!("{}", ran.stdout);
    eprint!("{}", ran.stderr);
    if !after_every_scene {
        println!("\n(the scene alone has nothing to show: `make demo` runs it after the others)");
        return ran.code == 0;
    }
    // Every service the scenes left, and the group and the dataspace, are shown.
    let shown = |what: &str| ran.stdout.contains(what);
    let all = ["shop/api ", "dagster/daemon ", "scale group dagster:", "dataspace mvd: last reset 20"];
    let missing: Vec<&str> = all.into_iter().filter(|w| !shown(w)).collect();
    if !missing.is_empty() {
        eprintln!("status lacks {missing:?}");
    }
    println!(
        "\nThe same as JSON: nightshift status --json; by hand: nightshift deploy|rollback|hold|promote|wake|reset (docs/cli.md)\n"
    );
    ran.code == 0 && missing.is_empty()
}

fn heading(title: &str) {
    println!("== {title} {}", "=".repeat(70usize.saturating_sub(title.len())));
}

/// Runs one invocation and returns the report, or prints the error.
fn invoke(process: &mut FunctionProcess, payload: &Value) -> Option<Value> {
    match process.invoke(payload) {
        Outcome::Response(report) => Some(report),
        other => {
            println!("  the function failed: {other:?}\n{}", process.output());
            None
        }
    }
}

const LOGS: &str = "grafana-logs";

async fn put(s3: &Client, key: &str, bytes: usize) {
    s3.put_object()
        .bucket(LOGS)
        .key(key)
        .body(ByteStream::from(vec![b'x'; bytes]))
        .send()
        .await
        .expect("seed the logs bucket");
}

/// Objects by age group ("45 days", ...) under each top-level prefix.
async fn census(s3: &Client) -> BTreeMap<(String, i64), (u64, u64)> {
    let now = Utc::now().timestamp();
    let mut census = BTreeMap::new();
    let listing = s3.list_objects_v2().bucket(LOGS).send().await.expect("list the logs bucket");
    for object in listing.contents() {
        let key = object.key().unwrap_or_default();
        let top = key.split('/').next().unwrap_or_default().to_owned();
        let days = (now - object.last_modified().map_or(now, |t| t.secs())) / 86_400;
        let entry = census.entry((top, days)).or_insert((0, 0));
        entry.0 += 1;
        entry.1 += u64::try_from(object.size().unwrap_or(0)).unwrap_or(0);
    }
    census
}

async fn print_bucket(s3: &Client) {
    println!("  {:<14} {:>8} {:>8} {:>10}", "prefix", "age", "objects", "bytes");
    for ((top, days), (count, bytes)) in census(s3).await {
        println!("  {:<14} {:>6} d {:>8} {:>10}", format!("{top}/"), days, count, bytes);
    }
    let rules = s3
        .get_bucket_lifecycle_configuration()
        .bucket(LOGS)
        .send()
        .await
        .map(|out| out.rules().to_vec())
        .unwrap_or_default();
    println!("  lifecycle rules:");
    for rule in rules {
        let prefix = rule.filter().and_then(|f| f.prefix()).unwrap_or_default();
        let expire = rule.expiration().map_or(String::new(), |e| match (e.days(), e.expired_object_delete_marker()) {
            (Some(days), _) => format!(", expire after {days} d"),
            (_, Some(true)) => ", remove expired delete markers".to_owned(),
            _ => String::new(),
        });
        let transition = rule.transitions().first().map_or(String::new(), |t| {
            format!(", to {} after {} d", t.storage_class().map_or("?", |c| c.as_str()), t.days().unwrap_or(0))
        });
        println!("    - {} (prefix {prefix:?}{expire}{transition})", rule.id().unwrap_or_default());
    }
}

async fn expire_logs(sandbox: &Sandbox) -> bool {
    heading("expire-logs: Grafana logs older than 30 days go");
    let s3 = sandbox.s3();
    s3.create_bucket().bucket(LOGS).send().await.expect("create the logs bucket");
    // Loki's layout: chunks and an index per tenant; dashboards kept by another rule.
    let ages = [(45.0, 6), (31.0, 4), (29.0, 5), (0.0, 5)];
    for (days, count) in ages {
        let group = format!("loki/d{days:02}");
        for n in 0..count {
            put(&s3, &format!("{group}/fake/chunks/{n:04}-{days}d chunk.gz"), 2048).await;
        }
        put(&s3, &format!("{group}/index/index_{days}d+ünïcødé.tsdb"), 512).await;
        if days > 0.0 {
            sandbox.backdate(LOGS, &format!("{group}/"), days);
        }
    }
    put(&s3, "dashboards/overview.json", 4096).await;
    sandbox.backdate(LOGS, "dashboards/", 120.0);
    let archive = LifecycleRule::builder()
        .id("archive-dashboards")
        .filter(LifecycleRuleFilter::builder().prefix("dashboards/").build())
        .status(ExpirationStatus::Enabled)
        .transitions(Transition::builder().days(90).storage_class(TransitionStorageClass::Glacier).build())
        .build()
        .expect("a valid rule");
    s3.put_bucket_lifecycle_configuration()
        .bucket(LOGS)
        .lifecycle_configuration(BucketLifecycleConfiguration::builder().rules(archive).build().expect("rules"))
        .send()
        .await
        .expect("seed the lifecycle rule");
    println!("Before (bucket {LOGS}; LOG_PREFIX=loki/, RETENTION_DAYS=30):");
    print_bucket(&s3).await;

    let mut env = sandbox.function_env();
    for (k, v) in [("LOG_BUCKET", LOGS), ("LOG_PREFIX", "loki/"), ("RETENTION_DAYS", "30")] {
        env.push((k.to_owned(), v.to_owned()));
    }
    let mut process = FunctionProcess::spawn(&binary("expire-logs"), &env);
    println!("\nInvoking expire-logs with events/expire-logs.schedule.json through the Runtime API ...");
    let Some(report) = invoke(&mut process, &event("expire-logs.schedule.json")) else {
        return false;
    };
    println!(
        "  lifecycle {}, scanned {}, expired {} ({} bytes), errors {}, complete {}",
        report["lifecycle"].as_str().unwrap_or("?"),
        report["objects_scanned"],
        report["objects_expired"],
        report["bytes_freed"],
        report["errors_total"],
        report["complete"]
    );
    println!("\nAfter:");
    print_bucket(&s3).await;

    println!("\nThe same event again (at-least-once delivery):");
    let Some(again) = invoke(&mut process, &event("expire-logs.schedule.json")) else {
        return false;
    };
    println!(
        "  lifecycle {}, scanned {}, expired {}: nothing left to do\n",
        again["lifecycle"].as_str().unwrap_or("?"),
        again["objects_scanned"],
        again["objects_expired"]
    );
    again["objects_expired"] == 0 && again["lifecycle"] == "unchanged"
}

async fn print_services(ecs: &aws_sdk_ecs::Client) {
    let arns = ecs.list_services().cluster(CLUSTER).send().await.expect("list services").service_arns().to_vec();
    let mut services = ecs
        .describe_services()
        .cluster(CLUSTER)
        .set_services(Some(arns))
        .include(aws_sdk_ecs::types::ServiceField::Tags)
        .send()
        .await
        .expect("describe services")
        .services()
        .to_vec();
    services.sort_by(|a, b| a.service_name().cmp(&b.service_name()));
    println!("  {:<11} {:<22} {:<14} image of app", "service", "nightshift:deploy", "revision");
    for service in services {
        let policy = service
            .tags()
            .iter()
            .find(|t| t.key() == Some("nightshift:deploy"))
            .and_then(|t| t.value())
            .unwrap_or("(untagged)");
        let td = service.task_definition().unwrap_or_default();
        let image = ecs
            .describe_task_definition()
            .task_definition(td)
            .send()
            .await
            .ok()
            .and_then(|d| {
                d.task_definition()
                    .and_then(|t| t.container_definitions().first().and_then(|c| c.image().map(str::to_owned)))
            })
            .unwrap_or_default();
        let short = image.rsplit('/').next().unwrap_or_default();
        let short = if short.len() > 30 { format!("{}...", &short[..30]) } else { short.to_owned() };
        println!(
            "  {:<11} {:<22} {:<14} {}",
            service.service_name().unwrap_or_default(),
            policy,
            td.rsplit('/').next().unwrap_or_default(),
            short
        );
    }
}

async fn deploy_on_push(sandbox: &Sandbox) -> bool {
    heading("deploy-on-push: an image pushed to ECR rolls out to the services that follow it");
    let (ecr, ecs) = (sandbox.ecr(), sandbox.ecs());
    seed_shop(&ecs, &ecr, &sandbox.codedeploy()).await;
    println!("Before (cluster {CLUSTER}; every service runs {}/shop/api):", registry());
    print_services(&ecs).await;

    let push = event("deploy-on-push.ecr-push.json");
    println!(
        "\nPushed shop/api:1.3.0 ({}); EventBridge delivers its ECR Image Action event ...",
        push["detail"]["image-digest"].as_str().unwrap_or_default()
    );
    let mut env = sandbox.function_env();
    env.push(("CLUSTERS".to_owned(), CLUSTER.to_owned()));
    let mut process = FunctionProcess::spawn(&binary("deploy-on-push"), &env);
    let Some(report) = invoke(&mut process, &push) else {
        return false;
    };
    for moved in report["deployed"].as_array().into_iter().flatten() {
        let name = |v: &Value| v.as_str().unwrap_or_default().rsplit('/').next().unwrap_or_default().to_owned();
        let how = match moved["codedeploy"]["deployment_id"].as_str() {
            Some(id) => format!(
                "CodeDeploy deployment {id} ({}); ECS runs it once the traffic has shifted",
                moved["codedeploy"]["deployment_config"].as_str().unwrap_or_default()
            ),
            None => "UpdateService, circuit breaker with rollback".to_owned(),
        };
        println!(
            "  moved    {:<11} {} -> {}  by {how}",
            moved["service"].as_str().unwrap_or_default(),
            name(&moved["old_task_definition"]),
            name(&moved["new_task_definition"])
        );
    }
    for skipped in report["skipped"].as_array().into_iter().flatten() {
        println!(
            "  stayed   {:<11} {}",
            skipped["service"].as_str().unwrap_or_default(),
            skipped["reason"].as_str().unwrap_or_default()
        );
    }
    println!("  (services without nightshift:deploy are never looked at)");
    println!("\nAfter:");
    print_services(&ecs).await;

    println!("\nThe same event again (EventBridge and Lambda deliver at least once):");
    let Some(again) = invoke(&mut process, &push) else {
        return false;
    };
    let moved = again["deployed"].as_array().map_or(0, Vec::len);
    println!("  {moved} services moved: nothing registered, nothing updated");

    println!("\nTwo release candidates are pushed, RC_1.3.0 then RC_1.3.1; their events arrive newest first.");
    println!("(rc follows the docker label nightshift.deploy=glob:RC_* on its container: ECS tags cannot hold a *)");
    let older = push_event(&ecr, "RC_1.3.0").await;
    let newer = push_event(&ecr, "RC_1.3.1").await;
    let Some(first) = invoke(&mut process, &newer) else { return false };
    let Some(late) = invoke(&mut process, &older) else { return false };
    for (tag, report) in [("RC_1.3.1", &first), ("RC_1.3.0, late", &late)] {
        let moved: Vec<&str> =
            report["deployed"].as_array().into_iter().flatten().filter_map(|d| d["service"].as_str()).collect();
        let rc = report["skipped"].as_array().into_iter().flatten().find(|s| s["service"] == "rc");
        match rc {
            Some(rc) => println!("  {tag:<15} rc stayed: {}", rc["reason"].as_str().unwrap_or_default()),
            None => println!("  {tag:<15} moved: {}", moved.join(", ")),
        }
    }
    println!();
    let canary = canary(sandbox, &mut process, &report).await;
    moved == 0
        && first["deployed"].as_array().is_some_and(|d| d.len() == 1)
        && late["deployed"] == serde_json::json!([])
        && canary
}

/// The blue/green service's canary: the AppSpec CodeDeploy got, a push while
/// it runs (refused, retried), and the retry once it is done.
async fn canary(sandbox: &Sandbox, process: &mut FunctionProcess, first: &Value) -> bool {
    println!("blue-green is a blue/green service (the CODE_DEPLOY controller): CodeDeploy shifts its traffic.");
    let Some(id) = first["deployed"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["service"] == "blue-green")
        .and_then(|d| d["codedeploy"]["deployment_id"].as_str())
    else {
        println!("  no CodeDeploy deployment was created for blue-green");
        return false;
    };
    let info = sandbox.codedeploy().get_deployment().deployment_id(id).send().await.expect("get deployment");
    let info = info.deployment_info().expect("deployment info");
    let appspec = info.revision().and_then(|r| r.app_spec_content()).and_then(|a| a.content()).unwrap_or_default();
    println!(
        "  deployment {id}: {} in group {}/{}, {}",
        info.deployment_config_name().unwrap_or_default(),
        info.application_name().unwrap_or_default(),
        info.deployment_group_name().unwrap_or_default(),
        info.status().map(|s| s.as_str()).unwrap_or_default()
    );
    println!("  its AppSpec: {appspec}");

    println!("\nshop/api:1.3.1 is pushed while the canary runs:");
    let next = push_event(&sandbox.ecr(), "1.3.1").await;
    let refused = match process.invoke(&next) {
        Outcome::Error { error_type, error_message } => {
            println!("  the invocation fails ({error_type}), so Lambda retries it; the ECS services moved:");
            println!("  {error_message}");
            true
        }
        other => {
            println!("  expected the invocation to fail, got {other:?}");
            false
        }
    };
    println!("\nThe canary succeeds (the sandbox ends it: CodeDeploy makes the new task set primary).");
    sandbox.end_deployment(id, "Succeeded");
    println!("Lambda's retry of the 1.3.1 push:");
    let Some(retry) = invoke(process, &next) else { return false };
    let second = retry["deployed"].as_array().into_iter().flatten().find(|d| d["service"] == "blue-green");
    if let Some(second) = second {
        println!(
            "  blue-green gets CodeDeploy deployment {}",
            second["codedeploy"]["deployment_id"].as_str().unwrap_or_default()
        );
    }
    println!();
    refused && second.is_some()
}

/// A rollout rolled back: told to Slack and Teams once, its digest quarantined, the next push of it refused.
async fn watch_rollouts() -> bool {
    heading("watch-rollouts: a rollback told to Slack and Teams, and its image never comes back");
    // A shop of its own: the deploy-on-push scene's is in another state.
    let sandbox = Sandbox::start();
    let (ecr, ecs) = (sandbox.ecr(), sandbox.ecs());
    seed_shop(&ecs, &ecr, &sandbox.codedeploy()).await;
    sandbox.channel("slack/data-team", "slack-data-team").await;
    sandbox.channel("teams/ops", "teams-ops").await;
    let api = format!(
        "arn:aws:ecs:{}:{}:service/{CLUSTER}/api",
        nightshift_tests::sandbox::REGION,
        nightshift_tests::sandbox::ACCOUNT
    );
    let notify = aws_sdk_ecs::types::Tag::builder().key("nightshift:notify").value("slack/data-team teams/ops").build();
    ecs.tag_resource().resource_arn(&api).tags(notify).send().await.expect("tag api");
    println!(
        "api is tagged nightshift:notify=\"slack/data-team teams/ops\"; each channel's webhook URL is an SSM SecureString."
    );

    let mut env = sandbox.function_env();
    env.push(("CLUSTERS".to_owned(), CLUSTER.to_owned()));
    let mut deploy = FunctionProcess::spawn(&binary("deploy-on-push"), &env);
    let Some(_) = invoke(&mut deploy, &event("deploy-on-push.ecr-push.json")) else { return false };
    println!(
        "deploy-on-push rolled shop/api:1.3.0 out to api; its tasks fail to start, and ECS's circuit breaker rolls back."
    );
    sandbox.end_rollout(CLUSTER, "api", "FAILED");
    let service = ecs.describe_services().cluster(CLUSTER).services("api").send().await.expect("describe api");
    let deployments = service.services()[0].deployments().to_vec();
    let (Some(rollback), Some(failed)) = (deployments.first(), deployments.get(1)) else { return false };
    let with = |file: &str, id: &str, reason: Option<&str>| {
        let mut e = event(file);
        e["detail"]["deploymentId"] = Value::String(id.to_owned());
        // The rollout ends now (the files' times are examples).
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
        (e["time"], e["detail"]["updatedAt"]) = (Value::String(now.clone()), Value::String(now));
        if let Some(reason) = reason {
            e["detail"]["reason"] = Value::String(reason.to_owned());
        }
        e
    };
    let events = [
        (
            "SERVICE_DEPLOYMENT_FAILED",
            with("watch-rollouts.ecs-deployment-failed.json", failed.id().unwrap_or_default(), None),
        ),
        (
            "SERVICE_DEPLOYMENT_IN_PROGRESS (the rollback)",
            with(
                "watch-rollouts.ecs-deployment-rolling-back.json",
                rollback.id().unwrap_or_default(),
                rollback.rollout_state_reason(),
            ),
        ),
        (
            "SERVICE_DEPLOYMENT_FAILED again (a duplicate)",
            with("watch-rollouts.ecs-deployment-failed.json", failed.id().unwrap_or_default(), None),
        ),
    ];
    let mut watch = FunctionProcess::spawn(&binary("watch-rollouts"), &env);
    let mut outcomes = Vec::new();
    for (name, e) in &events {
        let Some(report) = invoke(&mut watch, e) else { return false };
        let outcome = report["outcome"]
            .as_str()
            .map_or_else(|| format!("nothing new ({})", report["why"].as_str().unwrap_or_default()), str::to_owned);
        println!("  {name:<46} -> {outcome}");
        outcomes.push(report["outcome"].clone());
    }
    let slack = sandbox.webhooks("slack-data-team");
    let teams = sandbox.webhooks("teams-ops");
    println!("\nSlack #data-team received {} message(s):", slack.len());
    for m in &slack {
        println!("  {}", m["text"].as_str().unwrap_or_default());
    }
    println!("Teams ops received {} Adaptive Card(s):", teams.len());
    for m in &teams {
        let card = &m["attachments"][0]["content"];
        println!(
            "  {} | {}",
            card["body"][0]["text"].as_str().unwrap_or_default(),
            card["body"][1]["text"].as_str().unwrap_or_default()
        );
    }
    let quarantine: Vec<String> =
        sandbox.quarantined(&api).await.iter().map(|d| nightshift::quarantine::short(d)).collect();
    println!("\nThe state table quarantines on api: {}.", quarantine.join(" "));

    println!("\nThe same image is pushed again as shop/api:1.3.1:");
    let digest = push_image(&ecr, "shop/api", "1.3.1", "shop/api 1.3.0").await;
    let mut same = event("deploy-on-push.ecr-push.json");
    same["detail"]["image-tag"] = Value::String("1.3.1".into());
    same["detail"]["image-digest"] = Value::String(digest);
    let Some(report) = invoke(&mut deploy, &same) else { return false };
    let refused = report["skipped"].as_array().into_iter().flatten().find(|s| s["service"] == "api");
    if let Some(refused) = refused {
        println!("  api stayed: {}", refused["reason"].as_str().unwrap_or_default());
    }
    let told = sandbox.webhooks("slack-data-team").len();
    println!("  and Slack heard of it too ({told} messages in all).\n");
    outcomes.first() == Some(&Value::String("rolled back".into()))
        && outcomes[1..].iter().all(Value::is_null)
        && slack.len() == 1
        && teams.len() == 1
        && !quarantine.is_empty()
        && refused.is_some()
        && told == 2
}

/// Prints what each stage runs: its `app` image's tag or digest.
async fn print_stages(ecs: &aws_sdk_ecs::Client) -> Vec<String> {
    let mut images = Vec::new();
    for stage in STAGES {
        let image = stage_image(ecs, stage).await;
        let short = image.rsplit_once('/').map_or(image.as_str(), |(_, last)| last).to_owned();
        println!("    {stage:<8} {short}");
        images.push(image);
    }
    images
}

/// Lets `minutes` pass in the sandbox; runs the promotions that come due through watch-rollouts.
fn pass(sandbox: &Sandbox, watch: &mut FunctionProcess, minutes: f64) -> Vec<Value> {
    let mut reports = Vec::new();
    for fired in sandbox.pass_time(minutes) {
        let Ok(input) = serde_json::from_str::<Value>(fired["target"]["Input"].as_str().unwrap_or_default()) else {
            continue;
        };
        if let Some(report) = invoke(watch, &input) {
            let p = &report["promotion"];
            println!(
                "  schedule {} ran: {} {} ({})",
                fired["name"].as_str().unwrap_or_default(),
                p["service"].as_str().unwrap_or_default(),
                p["result"].as_str().unwrap_or_default(),
                p["why"].as_str().unwrap_or_default()
            );
            reports.push(report);
        }
    }
    reports
}

async fn promote() -> bool {
    heading("watch-rollouts: promotion from staging to qa to prod, each after its soak");
    let sandbox = Sandbox::start();
    let (ecr, ecs) = (sandbox.ecr(), sandbox.ecs());
    seed_stages(&ecs, &ecr, &sandbox.scheduler(), &sandbox.codedeploy(), false).await;
    sandbox.channel("slack/releases", "slack-releases").await;
    println!("staging/shop follows pushes (nightshift:deploy=semver); qa/shop is tagged");
    println!("nightshift:promote-from=staging/shop (soak 30 min); prod/shop promote-from=qa/shop, soak-minutes=60.");
    let mut env = sandbox.function_env();
    env.push(("SCHEDULE_GROUP".to_owned(), SCHEDULE_GROUP.to_owned()));
    env.push(("SCHEDULE_ROLE_ARN".to_owned(), schedule_role()));
    let mut deploy = FunctionProcess::spawn(&binary("deploy-on-push"), &env);
    let mut watch = FunctionProcess::spawn(&binary("watch-rollouts"), &env);

    println!(
        "
shop/api:1.3.0 is pushed:"
    );
    let Some(pushed) = invoke(&mut deploy, &event("deploy-on-push.ecr-push.json")) else { return false };
    println!(
        "  deploy-on-push deployed {} service(s): staging only",
        pushed["deployed"].as_array().map_or(0, Vec::len)
    );
    let mut ok = true;
    for (stage, soak) in [("staging", 31.0), ("qa", 61.0)] {
        let completed = end_stage_rollout(&sandbox, stage, "COMPLETED").remove(0);
        let Some(report) = invoke(&mut watch, &completed) else { return false };
        for s in report["scheduled"].as_array().into_iter().flatten() {
            println!(
                "  {stage}'s rollout succeeded: {}/{} promotion scheduled at {}",
                s["cluster"].as_str().unwrap_or_default(),
                s["service"].as_str().unwrap_or_default(),
                s["at"].as_str().unwrap_or_default()
            );
        }
        println!("  ... {soak} minutes pass (in the sandbox) ...");
        ok &= pass(&sandbox, &mut watch, soak).first().is_some_and(|r| r["promotion"]["result"] == "promoted");
    }
    end_stage_rollout(&sandbox, "prod", "COMPLETED");
    println!(
        "
What each stage runs now (one digest, never a tag):"
    );
    let images = print_stages(&ecs).await;
    ok &= images.iter().all(|i| *i == images[0]) && images[0].contains("@sha256:");

    println!(
        "
shop/api:1.4.0 is pushed; staging and its soak go well, qa's rollout fails and ECS rolls it back:"
    );
    let push = push_event(&ecr, "1.4.0").await;
    let Some(_) = invoke(&mut deploy, &push) else { return false };
    let Some(_) = invoke(&mut watch, &end_stage_rollout(&sandbox, "staging", "COMPLETED").remove(0)) else {
        return false;
    };
    pass(&sandbox, &mut watch, 31.0);
    for e in end_stage_rollout(&sandbox, "qa", "FAILED") {
        let Some(report) = invoke(&mut watch, &e) else { return false };
        if let Some(outcome) = report["outcome"].as_str() {
            println!("  qa's rollout {outcome}; quarantined on qa: {}", report["quarantined"]);
        }
    }
    let Some(_) = invoke(&mut watch, &end_stage_rollout(&sandbox, "qa", "COMPLETED").remove(0)) else {
        return false;
    };
    println!("  the rollback completed; ... two hours pass ...");
    ok &= pass(&sandbox, &mut watch, 120.0).is_empty();
    let mut by_hand = event("watch-rollouts.promote-by-hand.json");
    by_hand["promote"] = Value::String("prod/shop".into());
    let Some(report) = invoke(&mut watch, &by_hand) else { return false };
    println!(
        "  promoting prod by hand: {} ({})",
        report["promotion"]["result"].as_str().unwrap_or_default(),
        report["promotion"]["why"].as_str().unwrap_or_default()
    );
    ok &= report["promotion"]["result"] == "refused";
    let told = sandbox.webhooks("slack-releases");
    println!("  prod's Slack #releases: {}", told.first().and_then(|m| m["text"].as_str()).unwrap_or("nothing"));
    println!(
        "
The chain stopped at qa:"
    );
    let after = print_stages(&ecs).await;
    println!();
    ok && after[2] == images[2] && after[0] != images[0]
}

/// The newest event of this source and tag (or any) on `account`'s default bus.
fn newest(sandbox: &Sandbox, account: &str, source: &str, tag: Option<&str>) -> Option<Value> {
    let on_bus = sandbox.bus(account).into_iter();
    on_bus.rev().find(|e| e["source"] == source && tag.is_none_or(|t| e["detail"]["image-tag"] == t))
}

async fn accounts() -> bool {
    use nightshift_tests::accounts::{
        PROD, REGISTRY, STAGING, STRANGER, image_in, in_staging, prod_watch, registry_host,
        staging_desired_and_capacity, three_accounts,
    };
    heading("many accounts: one registry, a staging account, a prod account");
    let sandbox = Sandbox::start();
    three_accounts(&sandbox).await;
    let staging_arn = format!("arn:aws:ecs:us-east-1:{STAGING}:service/staging/shop");
    let staging_ecs = aws_sdk_ecs::Client::new(&sandbox.config_in(STAGING, "us-east-1"));
    let opt_in = aws_sdk_ecs::types::Tag::builder().key("nightshift:sleep-after-promotion").value("true").build();
    let tagged = staging_ecs.tag_resource().resource_arn(&staging_arn).tags(opt_in).send().await;
    if tagged.is_err() {
        return false;
    }
    println!("registry {REGISTRY} (registry.yaml: ChildAccountIds={STAGING}) holds shop/api;");
    println!(
        "staging {STAGING} (RegistryAccountIds={REGISTRY}, PromoteToAccountIds={PROD}): staging/shop follows pushes,"
    );
    println!("  tagged nightshift:sleep-after-promotion=true;");
    println!(
        "prod {PROD} (PromoteFromAccountIds={STAGING}): prod/shop is tagged nightshift:promote-from={STAGING}:staging/shop."
    );
    let registry_ecr = aws_sdk_ecr::Client::new(&sandbox.config_in(REGISTRY, "us-east-1"));
    let labels = [
        ("org.opencontainers.image.revision", "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432"),
        ("org.opencontainers.image.source", "https://github.com/acme/shop"),
    ];
    let tags = ["1.3.0", "pr-42"];
    nightshift_tests::platform::push_labelled_image(&sandbox, &registry_ecr, REGISTRY, "shop/api", &tags, &labels)
        .await;
    println!(
        "
shop/api:1.3.0 (also tagged pr-42, labelled with its commit) is pushed in the registry:"
    );
    let Some(push) = newest(&sandbox, STAGING, "aws.ecr", Some("1.3.0")) else { return false };
    println!(
        "  EventBridge forwarded the push to staging's bus (its account: {})",
        push["account"].as_str().unwrap_or("")
    );
    let Some(deployed) = invoke(&mut in_staging(&sandbox, "deploy-on-push"), &push) else { return false };
    let merge = &deployed["identity"];
    let text = |v: &Value| v.as_str().unwrap_or("?").to_owned();
    println!(
        "  staging's deploy-on-push rolled it out by digest; the merge: PR #{} commit {}",
        text(&merge["pr"]),
        text(&merge["commit"])
    );
    let completed = nightshift_tests::platform::complete_rollout_in(&sandbox, STAGING, "staging", "shop");
    let mut staging_watch = in_staging(&sandbox, "watch-rollouts");
    let Some(_) = invoke(&mut staging_watch, &completed) else { return false };
    let Some(outcome) = newest(&sandbox, PROD, "nightshift", None) else { return false };
    println!("  staging succeeded; its Rollout Outcome reached prod's bus (from {})", text(&outcome["account"]));
    let mut prod = prod_watch(&sandbox);
    let Some(heard) = invoke(&mut prod, &outcome) else { return false };
    println!("  prod scheduled its own promotion at {}", heard["scheduled"][0]["at"].as_str().unwrap_or_default());
    println!("  ... 31 minutes pass (in the sandbox) ...");
    let fired = sandbox.pass_time(31.0);
    let input: Value = fired
        .first()
        .and_then(|f| f["target"]["Input"].as_str())
        .and_then(|i| serde_json::from_str(i).ok())
        .unwrap_or_default();
    let Some(promoted) = invoke(&mut prod, &input) else { return false };
    println!(
        "  prod, reading staging through its read-only role nightshift-reader: {} ({})",
        promoted["promotion"]["result"].as_str().unwrap_or_default(),
        promoted["promotion"]["why"].as_str().unwrap_or_default()
    );
    let (image, tags) = image_in(&sandbox, PROD, "prod").await;
    let tag = |key: &str| tags.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value()).unwrap_or("").to_owned();
    println!("  prod runs {image}");
    println!("  its revision: nightshift:pr={} nightshift:commit={}", tag("nightshift:pr"), tag("nightshift:commit"));
    let prod_done = nightshift_tests::platform::complete_rollout_in(&sandbox, PROD, "prod", "shop");
    let Some(_) = invoke(&mut prod, &prod_done) else { return false };
    let back = sandbox.bus(STAGING).into_iter().rfind(|e| e["source"] == "nightshift" && e["account"] == PROD);
    let Some(back) = back else { return false };
    let Some(slept) = invoke(&mut staging_watch, &back) else { return false };
    let (desired, _) = staging_desired_and_capacity(&sandbox).await;
    println!(
        "\nprod's rollout succeeded; its outcome went back to staging, which {}: {} (desired count now {desired})",
        slept["sleep"]["result"].as_str().unwrap_or_default(),
        slept["sleep"]["why"].as_str().unwrap_or_default()
    );
    let mut stranger = event("deploy-on-push.ecr-push-from-registry.json");
    stranger["account"] = Value::String(STRANGER.into());
    let Some(ignored) = invoke(&mut in_staging(&sandbox, "deploy-on-push"), &stranger) else { return false };
    println!(
        "
A push from an account staging does not list: {}",
        ignored["ignored"].as_str().unwrap_or_default()
    );
    let next =
        nightshift_tests::platform::push_labelled_image(&sandbox, &registry_ecr, REGISTRY, "shop/api", &["1.4.0"], &[])
            .await;
    let Some(push) = newest(&sandbox, STAGING, "aws.ecr", Some("1.4.0")) else { return false };
    let Some(woken) = invoke(&mut in_staging(&sandbox, "deploy-on-push"), &push) else { return false };
    let (desired, _) = staging_desired_and_capacity(&sandbox).await;
    println!(
        "shop/api:1.4.0 is pushed: staging woke to {} task(s) (desired count now {desired}) and runs it.\n",
        woken["deployed"][0]["woke"]
    );
    let (now, _) = image_in(&sandbox, STAGING, "staging").await;
    slept["sleep"]["result"] == "slept" && now == format!("{}/shop/api@{next}", registry_host(REGISTRY)) && desired == 2
}

/// Pushes `shop/api:<tag>` to the sandbox's ECR; its ECR Image Action event.
async fn verify_rollout() -> bool {
    heading("verify-rollout: checks declared in SSM; only what passed moves on");
    let sandbox = Sandbox::start();
    let (ecr, ecs) = (sandbox.ecr(), sandbox.ecs());
    seed_stages(&ecs, &ecr, &sandbox.scheduler(), &sandbox.codedeploy(), false).await;
    end_stage_rollout(&sandbox, "staging", "COMPLETED");
    // A small app standing in for staging's traffic: it answers as the image it serves.
    let app = nightshift_tests::canary::CanaryApp::start();
    let suite = serde_json::json!({"target": app.url(), "samples": 3, "interval_seconds": 1, "requests": [
        {"name": "health", "path": "/health", "status": 200},
        {"name": "version", "path": "/version", "json": {"/image": "${digest}"}}]});
    let put = sandbox.ssm().put_parameter().name("/nightshift/checks/staging/shop").value(suite.to_string());
    put.r#type(aws_sdk_ssm::types::ParameterType::String).send().await.expect("put the suite");
    println!("staging/shop's suite, /nightshift/checks/staging/shop:\n  {suite}");
    let mut env = sandbox.function_env();
    env.push(("SCHEDULE_GROUP".to_owned(), SCHEDULE_GROUP.to_owned()));
    env.push(("SCHEDULE_ROLE_ARN".to_owned(), schedule_role()));
    let mut deploy = FunctionProcess::spawn(&binary("deploy-on-push"), &env);
    let mut verify = FunctionProcess::spawn(&binary("verify-rollout"), &env);
    let mut watch = FunctionProcess::spawn(&binary("watch-rollouts"), &env);
    let mut ok = true;
    for (tag, broken) in [("1.3.0", false), ("1.4.0", true)] {
        let push = if tag == "1.3.0" { event("deploy-on-push.ecr-push.json") } else { push_event(&ecr, tag).await };
        let digest = push["detail"]["image-digest"].as_str().unwrap_or_default().to_owned();
        app.serve(&digest);
        if broken {
            app.breaks_on(&digest);
        }
        println!("\nshop/api:{tag} is pushed{}:", if broken { " (a broken build)" } else { "" });
        let Some(_) = invoke(&mut deploy, &push) else { return false };
        let completed = end_stage_rollout(&sandbox, "staging", "COMPLETED").remove(0);
        let Some(report) = invoke(&mut verify, &completed) else { return false };
        let verdict = &report["verdict"];
        println!("  staging's rollout completed; verify-rollout: {}", verdict["why"].as_str().unwrap_or_default());
        if let Some(excerpt) = verdict["excerpt"].as_str() {
            println!("  the answer: {excerpt}");
        }
        if let Some(to) = report["rolled_back_to"].as_str() {
            println!("  rolled back to {to}; quarantined: {}", report["quarantined"]);
            end_stage_rollout(&sandbox, "staging", "COMPLETED");
        }
        let Some(_) = invoke(&mut watch, &completed) else { return false };
        println!("  ... 31 minutes pass (in the sandbox) ...");
        let reports = pass(&sandbox, &mut watch, 31.0);
        let promoted = reports.iter().any(|r| r["promotion"]["result"] == "promoted");
        ok &= promoted != broken && verdict["passed"] == !broken;
    }
    println!("\nWhat each stage runs now:");
    print_stages(&ecs).await;
    println!();
    ok
}

async fn push_event(ecr: &aws_sdk_ecr::Client, tag: &str) -> Value {
    let digest = push_image(ecr, "shop/api", tag, &format!("shop/api {tag}")).await;
    let mut push = event("deploy-on-push.ecr-push.json");
    push["detail"]["image-tag"] = Value::String(tag.to_owned());
    push["detail"]["image-digest"] = Value::String(digest);
    push
}

async fn print_group(sandbox: &Sandbox) {
    let ecs = sandbox.ecs();
    let arns = ecs.list_services().cluster(DAGSTER).send().await.expect("list services").service_arns().to_vec();
    let out = ecs
        .describe_services()
        .cluster(DAGSTER)
        .set_services(Some(arns))
        .include(aws_sdk_ecs::types::ServiceField::Tags)
        .send()
        .await
        .expect("describe services");
    let targets = sandbox
        .scaling_counted()
        .0
        .describe_scalable_targets()
        .service_namespace(aws_sdk_applicationautoscaling::types::ServiceNamespace::Ecs)
        .send()
        .await
        .expect("describe scalable targets");
    let mut services = out.services().to_vec();
    services.sort_by(|a, b| a.service_name().cmp(&b.service_name()));
    println!("  {:<14} {:>7}  {:<10} nightshift tags", "service", "desired", "capacity");
    for service in services {
        let name = service.service_name().unwrap_or_default();
        let capacity = targets
            .scalable_targets()
            .iter()
            .find(|t| t.resource_id() == format!("service/{DAGSTER}/{name}"))
            .map_or("-".to_owned(), |t| format!("{}..{}", t.min_capacity(), t.max_capacity()));
        let tags: Vec<String> = service
            .tags()
            .iter()
            .filter(|t| t.key().is_some_and(|k| k.starts_with("nightshift:") && k != "nightshift:scale-group"))
            .map(|t| {
                format!(
                    "{}={}",
                    t.key().unwrap_or_default().trim_start_matches("nightshift:"),
                    t.value().unwrap_or_default()
                )
            })
            .collect();
        let group = if service.tags().iter().any(|t| t.key() == Some("nightshift:scale-group")) {
            ""
        } else {
            " (not in the group)"
        };
        println!("  {:<14} {:>7}  {:<10} {}{group}", name, service.desired_count(), capacity, tags.join(" "));
    }
}

fn print_decision(report: &Value) {
    let reasons: Vec<&str> = report["reasons"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    println!("  decision: {} ({})", report["decision"].as_str().unwrap_or("?"), reasons.join("; "));
    for service in report["services"].as_array().into_iter().flatten() {
        let steps: Vec<String> = service["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| match s["step"].as_str().unwrap_or_default() {
                "set-desired" => format!("desired {}", s["count"]),
                "set-capacity" => format!("capacity {}..{}", s["min"], s["max"]),
                "remember-capacity" => format!("remember {}..{}", s["min"], s["max"]),
                "forget-capacity" => "forget remembered capacity".to_owned(),
                other => other.to_owned(),
            })
            .collect();
        println!(
            "    {} (wake order {}): {}",
            service["service"].as_str().unwrap_or_default(),
            service["wake_order"],
            steps.join(", ")
        );
    }
}

async fn scale(sandbox: &Sandbox) -> bool {
    heading("scale-to-zero and scale-on-ingress: Dagster sleeps when idle, wakes on ingress");
    let ecs = sandbox.ecs();
    seed_dagster(&ecs, &sandbox.scaling_counted().0).await;
    let idle_since = Utc::now() - chrono::Duration::minutes(45);
    for name in ["code-location", "daemon", "webserver"] {
        ecs.tag_resource()
            .resource_arn(format!("arn:aws:ecs:us-east-1:123456789012:service/{DAGSTER}/{name}"))
            .tags(
                aws_sdk_ecs::types::Tag::builder()
                    .key("nightshift:last-activity")
                    .value(nightshift::scale::aws::rfc3339(idle_since))
                    .build(),
            )
            .send()
            .await
            .expect("tag the group");
    }
    let run = start_run(sandbox, &ecs, "7f3a9c2e").await;
    println!(
        "Before (cluster {DAGSTER}; the last file landed 45 minutes ago; IDLE_MINUTES=30; run 7f3a9c2e is running):"
    );
    print_group(sandbox).await;

    let mut env = sandbox.function_env();
    env.extend([("CLUSTERS".to_owned(), DAGSTER.to_owned()), ("INGRESS_PREFIX".to_owned(), "landing/".to_owned())]);
    let mut sleeper = FunctionProcess::spawn(&binary("scale-to-zero"), &env);
    println!("\nscale-to-zero's 5-minute tick, while the run is in flight:");
    let Some(report) = invoke(&mut sleeper, &event("scale-to-zero.schedule.json")) else { return false };
    print_decision(&report);

    ecs.stop_task().cluster(DAGSTER).task(run).send().await.expect("stop the run");
    println!("\nThe run finishes; the next tick:");
    let Some(report) = invoke(&mut sleeper, &event("scale-to-zero.schedule.json")) else { return false };
    print_decision(&report);
    print_group(sandbox).await;
    let slept = report["decision"] == "sleep";

    let s3 = sandbox.s3();
    s3.create_bucket().bucket("dagster-ingress").send().await.expect("create the ingress bucket");
    let key = "landing/la=bristol/care leavers 2026.csv";
    s3.put_object()
        .bucket("dagster-ingress")
        .key(key)
        .body(ByteStream::from_static(b"id,year\n1,2026\n"))
        .send()
        .await
        .expect("drop a file");
    let mut notification = event("scale-on-ingress.s3-notification.json");
    let records = notification["Records"].as_array_mut().expect("records");
    records.truncate(1);
    records[0]["eventTime"] = Value::String(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    records[0]["s3"]["object"]["key"] = Value::String("landing/la%3Dbristol/care+leavers+2026.csv".into());
    println!("\nA file lands in the ingress bucket: s3://dagster-ingress/{key}");
    let mut waker = FunctionProcess::spawn(&binary("scale-on-ingress"), &env);
    let Some(report) = invoke(&mut waker, &notification) else { return false };
    print_decision(&report);
    print_group(sandbox).await;
    let woke = report["decision"] == "wake";

    println!("\nThe same notification again (S3 delivers at least once):");
    let Some(again) = invoke(&mut waker, &notification) else { return false };
    print_decision(&again);
    println!();
    slept && woke && again["decision"] == "none"
}

async fn print_dataspace(sandbox: &Sandbox) {
    let (ecs, s3) = (sandbox.ecs(), sandbox.s3());
    let manifest = mvd_manifest();
    for p in manifest["participants"].as_array().into_iter().flatten() {
        let cluster = p["cluster"].as_str().unwrap_or_default();
        let arns = ecs.list_services().cluster(cluster).send().await.expect("list services").service_arns().to_vec();
        let out =
            ecs.describe_services().cluster(cluster).set_services(Some(arns)).send().await.expect("describe services");
        let mut services: Vec<String> = out
            .services()
            .iter()
            .map(|s| {
                let td = s.task_definition().unwrap_or_default();
                format!(
                    "{} x{} ({})",
                    s.service_name().unwrap_or_default(),
                    s.desired_count(),
                    td.rsplit('/').next().unwrap_or(td)
                )
            })
            .collect();
        services.sort();
        let data_bucket = p["purge"][0]["bucket"].as_str().unwrap_or_default();
        let data = s3
            .list_object_versions()
            .bucket(data_bucket)
            .prefix("transfers/")
            .send()
            .await
            .map_or(0, |o| o.versions().len() + o.delete_markers().len());
        let did_bucket = p["did"]["bucket"].as_str().unwrap_or_default();
        let did = match s3.get_object().bucket(did_bucket).key(".well-known/did.json").send().await {
            Ok(out) => {
                let bytes = out.body.collect().await.map(|b| b.to_vec()).unwrap_or_default();
                let doc: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                if doc == p["did"]["document"] { "as declared" } else { "CHANGED" }
            }
            Err(_) => "missing",
        };
        println!("  {:<31} {}", p["name"].as_str().unwrap_or_default(), services.join(", "));
        println!("  {:<31} transfers/: {data} object versions; did.json at s3://{did_bucket}/.well-known/: {did}", "");
    }
}

fn print_reset(report: &Value) {
    for p in report["participants"].as_array().into_iter().flatten() {
        let restarted = p["services_restarted"].as_array().into_iter().flatten();
        println!(
            "  {:<31} {}: {} services restarted, {} objects purged, DID document {}, {} ms",
            p["name"].as_str().unwrap_or_default(),
            p["status"].as_str().unwrap_or_default(),
            restarted.filter(|s| s["restarted_at"].is_null()).count(),
            p["objects_purged"],
            p["did"]["outcome"].as_str().unwrap_or("?"),
            p["duration_ms"]
        );
    }
}

async fn reset_dataspace(sandbox: &Sandbox) -> bool {
    heading("reset-dataspace: the public dataspace back to its manifest at midnight");
    let (ecs, s3) = (sandbox.ecs(), sandbox.s3());
    seed_dataspace(&ecs, &s3).await;
    println!(
        "The day's drift: SELT's DPF scaled to 0, GTI's connector on revision 2, transfer data, a changed DID document."
    );
    ecs.update_service().cluster("selt").service("dpf").desired_count(0).send().await.expect("drift");
    ecs.update_service()
        .cluster("gti")
        .service("connector")
        .task_definition("gti-connector:2")
        .send()
        .await
        .expect("drift");
    for (bucket, key) in [
        ("gti-data", "transfers/2026-11-26/turbine-blades.parquet"),
        ("ias-data", "transfers/contract 7/assembly-plan.pdf"),
        ("selt-data", "transfers/laser-calibration.csv"),
    ] {
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from_static(b"exchanged during the day"))
            .send()
            .await
            .expect("drift");
    }
    s3.put_object()
        .bucket("ias-did")
        .key(".well-known/did.json")
        .body(ByteStream::from_static(br#"{"id": "did:web:ias.example.org", "service": []}"#))
        .send()
        .await
        .expect("drift");
    // The drift happened during the day, hours before midnight.
    for bucket in ["gti-data", "ias-data", "selt-data", "ias-did"] {
        sandbox.backdate(bucket, "", 0.25);
    }
    println!("\nBefore (manifest dataspace/mvd.json at s3://{MANIFEST_BUCKET}/{MANIFEST_KEY}):");
    print_dataspace(sandbox).await;

    let mut env = sandbox.function_env();
    env.push(("DATASPACE_MANIFEST".to_owned(), format!("s3://{MANIFEST_BUCKET}/{MANIFEST_KEY}")));
    env.push(("DATASPACE_NAME".to_owned(), "mvd".to_owned()));
    let mut process = FunctionProcess::spawn(&binary("reset-dataspace"), &env);
    println!("\nMidnight: reset-dataspace runs with events/reset-dataspace.midnight.json (due now) ...");
    let mut midnight = event("reset-dataspace.midnight.json");
    midnight["time"] = Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let Some(report) = invoke(&mut process, &midnight) else { return false };
    print_reset(&report);
    println!("\nAfter:");
    print_dataspace(sandbox).await;

    println!("\nThe same run again (Lambda's retry, a duplicate delivery): nothing since its start is undone");
    let Some(again) = invoke(&mut process, &midnight) else { return false };
    print_reset(&again);

    println!("\nBy hand, one participant: {{\"participants\": [\"space-enforcer-laser-tec\"]}}");
    let Some(manual) = invoke(&mut process, &event("reset-dataspace.manual.json")) else { return false };
    let p = &manual["participants"][0];
    println!(
        "  {} {}: {} objects purged, DID document {} (connectors restarted: their state is in memory)\n",
        p["name"].as_str().unwrap_or_default(),
        p["status"].as_str().unwrap_or_default(),
        p["objects_purged"],
        p["did"]["outcome"].as_str().unwrap_or("?")
    );
    report["participants"].as_array().is_some_and(|ps| ps.iter().all(|p| p["status"] == "reset"))
        && p["did"]["outcome"] == "unchanged"
        && again["participants"].as_array().into_iter().flatten().all(|p| p["objects_purged"] == 0)
}
