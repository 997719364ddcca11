//! `make bench`: every function's release binary measured the same way.
//!
//! Per function: binary and zipped size; init time (process start to the first
//! Runtime API poll, 20 runs); per-event time over 100 events in one warm
//! process, for a representative event and for one that needs no AWS call;
//! peak resident memory; AWS requests per event by operation, counted on the
//! wire by a recording proxy in front of the local AWS. Then the expire-logs
//! sweep of 20,000 objects (half expired) against the local S3 server's own
//! DeleteObjects capacity. Prints a table and writes `target/bench.json`.
//! Every figure is measured here, now; bounded in count and time.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use chrono::{SecondsFormat, Utc};
use nightshift_tests::platform::{MANIFEST_BUCKET, MANIFEST_KEY, put_many, seed_dagster, seed_dataspace, seed_shop};
use nightshift_tests::proxy::RecordingProxy;
use nightshift_tests::runtime::{FunctionProcess, Outcome};
use nightshift_tests::sandbox::{Sandbox, workspace_root};
use nightshift_tests::stats::{median, ms, p90};
use nightshift_tests::{event, platform};
use serde_json::{Value, json};
use tokio::task::JoinSet;

const INIT_RUNS: usize = 20;
const EVENTS: usize = 100;
const SWEEP_OBJECTS: usize = 20_000;

fn release_binary(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from);
    let path = target.join("release").join(name);
    assert!(path.is_file(), "{} is not built; run `make bench`, which builds it first", path.display());
    path
}

fn zipped_size(binary: &PathBuf) -> u64 {
    let zip = std::env::temp_dir().join(format!("nightshift-bench-{}.zip", std::process::id()));
    let script = "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED, compresslevel=9) as z:\n    z.write(sys.argv[1], 'bootstrap')";
    let status =
        Command::new("python3").args(["-c", script]).arg(binary).arg(&zip).status().expect("python3 for zipping");
    assert!(status.success(), "zipping {} failed", binary.display());
    let size = std::fs::metadata(&zip).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_file(zip);
    size
}

fn durations(samples: &[Duration]) -> Value {
    json!({
        "median_ms": median(samples).map(ms),
        "p90_ms": p90(samples).map(ms),
        "runs": samples.len(),
    })
}

/// A function to measure: its variables, and its two events.
struct Subject {
    env: Vec<(String, String)>,
    representative: Value,
    no_aws: Option<(Value, &'static str)>,
}

async fn subject(name: &'static str, sandbox: &Sandbox) -> Subject {
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let vars = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    match name {
        "expire-logs" => {
            let s3 = sandbox.s3();
            s3.create_bucket().bucket("grafana-logs").send().await.unwrap();
            let keys: Vec<String> = (0..200).map(|n| format!("loki/chunks/{n:04}.gz")).collect();
            put_many(&s3, "grafana-logs", keys, &[b'x'; 512]).await;
            sandbox.backdate("grafana-logs", "loki/chunks/00", 40.0);
            Subject {
                env: vars(&[("LOG_BUCKET", "grafana-logs"), ("LOG_PREFIX", "loki/")]),
                representative: event("expire-logs.schedule.json"),
                no_aws: None,
            }
        }
        "deploy-on-push" => {
            seed_shop(&sandbox.ecs(), &sandbox.ecr(), &sandbox.codedeploy()).await;
            let mut ignored = event("deploy-on-push.ecr-push.json");
            ignored["detail"]["action-type"] = json!("DELETE");
            Subject {
                env: vars(&[("CLUSTERS", platform::CLUSTER)]),
                representative: event("deploy-on-push.ecr-push.json"),
                no_aws: Some((ignored, "an ECR DELETE action (ignored)")),
            }
        }
        "scale-to-zero" => {
            seed_dagster(&sandbox.ecs(), &sandbox.scaling_counted().0).await;
            Subject {
                env: vars(&[("CLUSTERS", platform::DAGSTER)]),
                representative: event("scale-to-zero.schedule.json"),
                no_aws: None,
            }
        }
        "scale-on-ingress" => {
            seed_dagster(&sandbox.ecs(), &sandbox.scaling_counted().0).await;
            let mut notification = event("scale-on-ingress.s3-notification.json");
            for record in notification["Records"].as_array_mut().unwrap() {
                record["eventTime"] = json!(now);
            }
            Subject {
                env: vars(&[("CLUSTERS", platform::DAGSTER), ("INGRESS_PREFIX", "landing/")]),
                representative: notification,
                no_aws: Some((event("scale-on-ingress.s3-test-event.json"), "s3:TestEvent (ignored)")),
            }
        }
        "reset-dataspace" => {
            seed_dataspace(&sandbox.ecs(), &sandbox.s3()).await;
            Subject {
                env: vars(&[
                    ("DATASPACE_MANIFEST", &format!("s3://{MANIFEST_BUCKET}/{MANIFEST_KEY}")),
                    ("DATASPACE_NAME", "mvd"),
                ]),
                // A run due now: the first event resets, the repeats are the same run (a retry) and restart nothing.
                representative: {
                    let mut midnight = event("reset-dataspace.midnight.json");
                    midnight["time"] = json!(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true));
                    midnight
                },
                no_aws: Some((json!({"participants": "not-a-list"}), "a malformed manual event (rejected)")),
            }
        }
        "watch-rollouts" => {
            // api rolls out a new revision and ECS completes it: the first event tells (nobody: no
            // channels here) and records; the repeats are duplicates, decided and told already.
            let ecs = sandbox.ecs();
            let running = seed_shop(&ecs, &sandbox.ecr(), &sandbox.codedeploy()).await;
            let td = &running.iter().find(|(name, _)| name == "api").expect("api").1;
            ecs.update_service()
                .cluster(platform::CLUSTER)
                .service("api")
                .task_definition(td)
                .force_new_deployment(true)
                .send()
                .await
                .unwrap();
            sandbox.end_rollout(platform::CLUSTER, "api", "COMPLETED");
            let described = ecs.describe_services().cluster(platform::CLUSTER).services("api").send().await.unwrap();
            let id = described.services()[0].deployments()[0].id().unwrap_or_default().to_owned();
            let mut completed = event("watch-rollouts.ecs-deployment-completed.json");
            completed["detail"]["deploymentId"] = json!(id);
            let mut ignored = completed.clone();
            ignored["detail"]["eventName"] = json!("SERVICE_TASK_PLACEMENT_FAILURE");
            Subject {
                env: vars(&[]),
                representative: completed,
                no_aws: Some((ignored, "a service action event (ignored)")),
            }
        }
        other => panic!("no function {other}"),
    }
}

fn env_through(proxy: &RecordingProxy, sandbox: &Sandbox, extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> =
        sandbox.function_env().into_iter().filter(|(k, _)| k != "AWS_ENDPOINT_URL").collect();
    env.push(("AWS_ENDPOINT_URL".into(), proxy.endpoint()));
    env.push(("RUST_LOG".into(), "warn".into()));
    env.extend(extra.iter().cloned());
    env
}

fn per_event(counts: &BTreeMap<String, u64>, events: usize) -> Value {
    let mut out = serde_json::Map::new();
    for (op, n) in counts {
        out.insert(op.clone(), json!((*n as f64 / events as f64 * 100.0).round() / 100.0));
    }
    Value::Object(out)
}

async fn measure(name: &'static str) -> Value {
    let binary = release_binary(name);
    let size = std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0);
    let zipped = zipped_size(&binary);

    let sandbox = Sandbox::start();
    let subject = subject(name, &sandbox).await;
    let upstream = sandbox.endpoint().trim_start_matches("http://").to_owned();
    let proxy = RecordingProxy::start(&upstream);
    let env = env_through(&proxy, &sandbox, &subject.env);

    let mut inits = Vec::new();
    for _ in 0..INIT_RUNS {
        let process = FunctionProcess::spawn(&binary, &env);
        inits.push(process.init_time(Duration::from_secs(10)).expect("the function polls within 10 s"));
    }

    let mut process = FunctionProcess::spawn(&binary, &env);
    proxy.take();
    let (first, first_took) = process.invoke_timed(&subject.representative);
    assert!(matches!(first, Outcome::Response(_)), "{name}: {first:?}\n{}", process.output());
    let first_ops = proxy.take();
    let mut times = vec![first_took];
    for _ in 1..EVENTS {
        let (outcome, took) = process.invoke_timed(&subject.representative);
        assert!(matches!(outcome, Outcome::Response(_)), "{name}: {outcome:?}");
        times.push(took);
    }
    let steady_ops = proxy.take();

    let no_aws = match &subject.no_aws {
        Some((payload, what)) => {
            let mut times = Vec::new();
            for _ in 0..EVENTS {
                times.push(process.invoke_timed(payload).1);
            }
            let calls = proxy.take();
            json!({"event": what, "time": durations(&times), "aws_requests": calls.values().sum::<u64>()})
        }
        None => json!({"event": null, "note": "every event of this function reads AWS"}),
    };
    let peak_rss_kib = process.peak_rss_kib();
    json!({
        "function": name,
        "binary_bytes": size,
        "zipped_bytes": zipped,
        "init": durations(&inits),
        "event": {"time": durations(&times), "first_requests": first_ops, "requests_per_event_after_the_first": per_event(&steady_ops, EVENTS - 1)},
        "no_aws_event": no_aws,
        "peak_rss_kib": peak_rss_kib,
    })
}

/// deploy-on-push's request counts for a push that concerns no service and one
/// that concerns one: first in a shop it has never seen (each follower's
/// revision is read once and recorded on the service), then in a cold process,
/// as most pushes find the function.
async fn deploy_costs() -> Value {
    let binary = release_binary("deploy-on-push");
    let sandbox = Sandbox::start();
    seed_shop(&sandbox.ecs(), &sandbox.ecr(), &sandbox.codedeploy()).await;
    let upstream = sandbox.endpoint().trim_start_matches("http://").to_owned();
    let proxy = RecordingProxy::start(&upstream);
    let env = env_through(&proxy, &sandbox, &[("CLUSTERS".into(), platform::CLUSTER.into())]);
    let ecr = sandbox.ecr();
    let mut pushed = Vec::new();
    for (repository, tag) in
        [("nobody/uses-this", "nightly-2026-11-26"), ("nobody/uses-this", "nightly-2026-11-27"), ("shop/api", "1.4.0")]
    {
        let digest = platform::push_image(&ecr, repository, tag, &format!("{repository} {tag}")).await;
        let mut push = event("deploy-on-push.ecr-push.json");
        push["detail"]["repository-name"] = json!(repository);
        push["detail"]["image-tag"] = json!(tag);
        push["detail"]["image-digest"] = json!(digest);
        pushed.push(push);
    }
    let [nobody_1, nobody_2, api_1_4_0] = <[Value; 3]>::try_from(pushed).expect("three pushes");
    let mut costs = serde_json::Map::new();
    for (when, [nobody, one]) in [
        ("first_sight", [nobody_1, event("deploy-on-push.ecr-push.json")]),
        ("cold_process_after", [nobody_2, api_1_4_0]),
    ] {
        let mut process = FunctionProcess::spawn(&binary, &env);
        process.invoke(&nobody).response();
        let none = proxy.take();
        let report = process.invoke(&one).response();
        let deployed = report["deployed"].as_array().map_or(0, Vec::len);
        // The blue/green service's canary ends, as CodeDeploy's would before the next push.
        for id in report["deployed"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["codedeploy"]["deployment_id"].as_str())
        {
            sandbox.end_deployment(id, "Succeeded");
        }
        costs.insert(
            when.into(),
            json!({"push_for_no_service": none, "push_for_one_service": proxy.take(), "deployed": deployed}),
        );
    }
    costs.insert("services".into(), json!(platform::SHOP.len()));
    Value::Object(costs)
}

async fn sweep() -> Value {
    let binary = release_binary("expire-logs");
    let sandbox = Sandbox::start();
    let s3 = sandbox.s3();
    s3.create_bucket().bucket("grafana-logs").send().await.unwrap();
    let half = SWEEP_OBJECTS / 2;
    let seeding = Instant::now();
    put_many(&s3, "grafana-logs", (0..half).map(|n| format!("loki/old/{n:06}.gz")).collect(), &[b'x'; 256]).await;
    sandbox.backdate("grafana-logs", "loki/old/", 40.0);
    put_many(&s3, "grafana-logs", (0..half).map(|n| format!("loki/new/{n:06}.gz")).collect(), &[b'x'; 256]).await;
    eprintln!("  seeded {SWEEP_OBJECTS} objects in {:.1} s", seeding.elapsed().as_secs_f64());

    // The server's own time to list the same bucket, page by page, as the sweep must.
    let listing = Instant::now();
    let (mut pages, mut key_marker, mut version_id_marker) = (0, None::<String>, None::<String>);
    loop {
        let page = s3
            .list_object_versions()
            .bucket("grafana-logs")
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_id_marker.take())
            .send()
            .await
            .expect("ListObjectVersions");
        pages += 1;
        if page.is_truncated() != Some(true) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        version_id_marker = page.next_version_id_marker().map(str::to_owned);
    }
    let server_listing = listing.elapsed();
    eprintln!("  the server lists them in {pages} pages, {:.1} s", server_listing.as_secs_f64());

    let upstream = sandbox.endpoint().trim_start_matches("http://").to_owned();
    let proxy = RecordingProxy::start(&upstream);
    let env = env_through(&proxy, &sandbox, &[("LOG_BUCKET".into(), "grafana-logs".into())]);
    let mut process = FunctionProcess::spawn(&binary, &env);
    let (outcome, took) = process.invoke_timed_within(&event("expire-logs.schedule.json"), Duration::from_secs(900));
    let report = match outcome {
        Outcome::Response(report) => report,
        other => panic!("the sweep failed: {other:?}"),
    };
    let requests = proxy.take();
    let failed = proxy.take_failed();
    let listed = report["objects_scanned"].as_u64().unwrap_or(0);
    let expired = report["objects_expired"].as_u64().unwrap_or(0);
    let budget = listed.div_ceil(1000) + expired.div_ceil(1000) + 2;

    // The server's own DeleteObjects capacity for as many keys: no listing, the same batches.
    let capacity = |in_flight: usize| {
        let s3 = s3.clone();
        async move {
            let keys: Vec<String> = (0..half).map(|n| format!("capacity/{in_flight}/{n:06}")).collect();
            put_many(&s3, "grafana-logs", keys.clone(), &[b'x'; 256]).await;
            let started = Instant::now();
            let mut deletes = JoinSet::new();
            for batch in keys.chunks(1000) {
                if deletes.len() >= in_flight {
                    deletes.join_next().await;
                }
                let objects = batch.iter().map(|k| ObjectIdentifier::builder().key(k).build().unwrap()).collect();
                let request = s3
                    .delete_objects()
                    .bucket("grafana-logs")
                    .delete(Delete::builder().set_objects(Some(objects)).quiet(true).build().unwrap());
                deletes.spawn(async move { request.send().await.map(drop) });
            }
            while deletes.join_next().await.is_some() {}
            started.elapsed()
        }
    };
    let sequential = capacity(1).await;
    let parallel = capacity(4).await;
    let best = sequential.min(parallel);
    json!({
        "objects": SWEEP_OBJECTS,
        "objects_scanned": listed,
        "objects_expired": expired,
        "complete": report["complete"],
        "wall_ms": ms(took),
        "objects_per_second": (listed as f64 / took.as_secs_f64()).round(),
        "requests": requests,
        "failed_requests": failed,
        "request_budget": budget,
        "server_delete_capacity_ms": {"sequential": ms(sequential), "four_in_flight": ms(parallel)},
        "ratio_to_capacity": ratio(took, best),
        // The server's listing alone, then listing and deleting back to back: what the sweep cannot go under here.
        "server_listing": {"pages": pages, "ms": ms(server_listing)},
        "ratio_to_listing_plus_capacity": ratio(took, server_listing + best),
    })
}

fn ratio(a: Duration, b: Duration) -> f64 {
    ((a.as_secs_f64() / b.as_secs_f64()) * 100.0).round() / 100.0
}

fn kib(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1_000_000.0)
}

/// `bench [functions] [deploy] [sweep]`: the parts to measure, all when none is named.
#[tokio::main]
async fn main() {
    let parts: Vec<String> = std::env::args().skip(1).collect();
    if let Some(unknown) = parts.iter().find(|p| !["functions", "deploy", "sweep"].contains(&p.as_str())) {
        eprintln!("bench: unknown part {unknown:?}; the parts are functions, deploy and sweep");
        std::process::exit(2);
    }
    let wants = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    let functions =
        ["expire-logs", "deploy-on-push", "scale-to-zero", "scale-on-ingress", "reset-dataspace", "watch-rollouts"];
    let mut results = Vec::new();
    if wants("functions") {
        for name in functions {
            eprintln!("measuring {name} ...");
            results.push(measure(name).await);
        }
    }
    let mut deploy = Value::Null;
    if wants("deploy") {
        eprintln!("measuring deploy-on-push's request costs ...");
        deploy = deploy_costs().await;
    }
    let mut sweep = Value::Null;
    if wants("sweep") {
        eprintln!("measuring the expire-logs sweep of {SWEEP_OBJECTS} objects ...");
        sweep = self::sweep().await;
    }

    println!(
        "\n{:<17} {:>9} {:>9} {:>10} {:>10} {:>11} {:>11} {:>11} {:>8}",
        "function", "binary", "zipped", "init med", "init p90", "event med", "event p90", "no-AWS med", "peak RSS"
    );
    for r in &results {
        let f = |v: &Value| v.as_f64().map_or("-".to_owned(), |x| format!("{x:.3} ms"));
        println!(
            "{:<17} {:>9} {:>9} {:>10} {:>10} {:>11} {:>11} {:>11} {:>8}",
            r["function"].as_str().unwrap_or_default(),
            kib(r["binary_bytes"].as_u64().unwrap_or(0)),
            kib(r["zipped_bytes"].as_u64().unwrap_or(0)),
            f(&r["init"]["median_ms"]),
            f(&r["init"]["p90_ms"]),
            f(&r["event"]["time"]["median_ms"]),
            f(&r["event"]["time"]["p90_ms"]),
            f(&r["no_aws_event"]["time"]["median_ms"]),
            r["peak_rss_kib"].as_u64().map_or("-".to_owned(), |k| format!("{:.1} MB", k as f64 / 1024.0)),
        );
    }
    println!("\nAWS requests of the first event, by operation:");
    for r in &results {
        println!("  {:<17} {}", r["function"].as_str().unwrap_or_default(), r["event"]["first_requests"]);
    }
    println!("\ndeploy-on-push: {deploy}");
    println!("\nexpire-logs sweep: {sweep}");

    let all =
        json!({"measured_at": Utc::now().to_rfc3339(), "functions": results, "deploy_on_push": deploy, "sweep": sweep});
    let out = workspace_root().join("target/bench.json");
    std::fs::write(&out, serde_json::to_string_pretty(&all).unwrap()).expect("write target/bench.json");
    println!("\nwritten to {}", out.display());
}
