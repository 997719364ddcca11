//! `make bench`: every function's release binary measured the same way.
//!
//! Per function: binary and zipped size, and the arm64 binary as `sam build`
//! (cargo-lambda) makes it; init time (process start to the first Runtime API
//! poll, 20 runs) and its ratio to the floor's (a bare `lambda_runtime` echo
//! built and linked as the functions are, measured in the same run);
//! per-event time over 100 events in one warm process, for a representative
//! event and for one that needs no AWS call; peak resident memory; AWS
//! requests per event by operation, counted on the wire by a recording proxy.
//! The local AWS is reached over TLS (`sandbox/tls_front.py`), with a
//! realistic root store, as AWS's endpoints are. Then the cold start of a
//! 128 MB function against a boto3 function making the same calls; the
//! overhead of verify-rollout's checks over a bare request; deploy-on-push's
//! requests per push; the expire-logs sweep of 20,000 objects (half expired)
//! against the local S3 server's own DeleteObjects capacity. Prints a table
//! and writes `target/bench.json`. Every figure is measured here, now; bounded
//! in count and time.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use chrono::{SecondsFormat, Utc};
use nightshift_tests::canary::CanaryApp;
use nightshift_tests::platform::{
    MANIFEST_BUCKET, MANIFEST_KEY, SCHEDULE_GROUP, end_stage_rollout, pushed_digest, put_many, schedule_role,
    seed_dagster, seed_dataspace, seed_shop, seed_stages,
};
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
/// Cold starts of each function and of its boto3 peer (the median is reported).
const COLD_RUNS: usize = 5;
const FUNCTIONS: [&str; 7] = [
    "expire-logs",
    "deploy-on-push",
    "scale-to-zero",
    "scale-on-ingress",
    "reset-dataspace",
    "watch-rollouts",
    "verify-rollout",
];
/// The functions whose cold start is compared with boto3's (the targets name these two).
const COLD_FUNCTIONS: [&str; 2] = ["deploy-on-push", "expire-logs"];

/// The targets (issue 25), printed beside each figure.
const INIT_RATIO_MAX: f64 = 1.5;
const ARM64_MAX_BYTES: u64 = 4_000_000;
const X86_MAX_BYTES: u64 = 5_500_000;
const RSS_MAX_BYTES: u64 = 8_000_000;
const COLD_RATIO_MIN: f64 = 25.0;
const CHECK_OVERHEAD_MAX_MS: f64 = 1.0;

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

fn release_binary(name: &str) -> PathBuf {
    let path = target_dir().join("release").join(name);
    assert!(path.is_file(), "{} is not built; run `make bench`, which builds it first", path.display());
    path
}

/// The arm64 binary `cargo lambda build --release --arm64 --bin <name>` made
/// (as `sam build` runs it for the template's functions); `make bench` builds them.
fn arm64_binary(name: &str) -> Option<PathBuf> {
    let path = target_dir().join("lambda").join(name).join("bootstrap");
    path.is_file().then_some(path)
}

/// TLS in front of the local AWS (`sandbox/tls_front.py`): AWS's endpoints
/// are HTTPS only, so a function's first requests each start with a handshake,
/// verified against a realistic root store: a nightshift function's built-in
/// Mozilla roots and the front's root (`root`, its `SSL_CERT_FILE`), and for
/// boto3 certifi's Mozilla roots and the front's root (`bundle`, its `AWS_CA_BUNDLE`).
struct TlsFront {
    child: Child,
    port: u16,
    root: PathBuf,
    bundle: PathBuf,
    _dir: PathBuf,
}

impl TlsFront {
    fn start(upstream: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("nightshift-bench-tls-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).expect("a directory for the TLS front's certificates");
        let mut child = Command::new("python3")
            .arg(workspace_root().join("sandbox/tls_front.py"))
            .arg(upstream)
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 for the TLS front");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("the TLS front's stdout");
        std::io::BufReader::new(stdout).read_line(&mut line).expect("the TLS front's first line");
        let started: Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("the TLS front did not start (it said {line:?}); is `make setup` done?"));
        Self {
            child,
            port: u16::try_from(started["port"].as_u64().unwrap_or(0)).unwrap_or(0),
            root: PathBuf::from(started["root"].as_str().unwrap_or_default()),
            bundle: PathBuf::from(started["bundle"].as_str().unwrap_or_default()),
            _dir: dir,
        }
    }

    fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// What a function reaches the local AWS through: TLS, then the recording proxy.
struct Wire {
    proxy: RecordingProxy,
    tls: TlsFront,
}

impl Wire {
    fn to(sandbox: &Sandbox) -> Self {
        let upstream = sandbox.endpoint().trim_start_matches("http://").to_owned();
        let proxy = RecordingProxy::start(&upstream);
        let tls = TlsFront::start(proxy.endpoint().trim_start_matches("http://"));
        Self { proxy, tls }
    }
}

/// A CPU share as Lambda gives a 128 MB function (128/1769 of a vCPU), by a
/// cgroup's CPU quota: a process moved into it runs at that share.
struct CpuShare {
    dir: PathBuf,
    procs: PathBuf,
}

/// The quota's period: 20 ms, the throttling interval observed on Lambda
/// (a function that uses its share of a 20 ms slice early pauses until the
/// slice ends: pwrdrvr/lambda-dispatch#246), not the kernel's default 100 ms,
/// under which a first invocation needing less than 7.2 ms of CPU would never
/// be throttled. The share is then even over a cold start's few hundred
/// milliseconds (the kernel's floor for the quota is 1 ms).
const SHARE_PERIOD_US: u64 = 20_000;

impl CpuShare {
    fn for_memory(mb: u64) -> Result<Self, String> {
        let quota = SHARE_PERIOD_US * mb / 1769;
        let name = format!("nightshift-bench-{}-{mb}", std::process::id());
        let v1 = Path::new("/sys/fs/cgroup/cpu");
        let v2 = Path::new("/sys/fs/cgroup");
        let why = |e: std::io::Error| {
            format!(
                "the 128 MB cold start needs a cgroup CPU quota, and {e}: run `make bench` as root on Linux \
                 with the cgroup cpu controller"
            )
        };
        if v1.join("cpu.cfs_quota_us").is_file() {
            let dir = v1.join(name);
            std::fs::create_dir_all(&dir).map_err(why)?;
            std::fs::write(dir.join("cpu.cfs_period_us"), SHARE_PERIOD_US.to_string()).map_err(why)?;
            std::fs::write(dir.join("cpu.cfs_quota_us"), quota.to_string()).map_err(why)?;
            Ok(Self { procs: dir.join("cgroup.procs"), dir })
        } else if std::fs::read_to_string(v2.join("cgroup.controllers")).is_ok_and(|c| c.contains("cpu")) {
            let _ = std::fs::write(v2.join("cgroup.subtree_control"), "+cpu");
            let dir = v2.join(name);
            std::fs::create_dir_all(&dir).map_err(why)?;
            std::fs::write(dir.join("cpu.max"), format!("{quota} {SHARE_PERIOD_US}")).map_err(why)?;
            Ok(Self { procs: dir.join("cgroup.procs"), dir })
        } else {
            Err(why(std::io::Error::other("no cgroup cpu controller is mounted")))
        }
    }

    /// Moves the process (all its threads) into the share.
    fn admit(&self, pid: u32) {
        std::fs::write(&self.procs, pid.to_string())
            .unwrap_or_else(|e| panic!("cannot move process {pid} into {}: {e}", self.procs.display()));
    }
}

impl Drop for CpuShare {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
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
    /// What must live as long as the function is measured (verify-rollout's app under check).
    _app: Option<CanaryApp>,
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
                _app: None,
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
                _app: None,
            }
        }
        "scale-to-zero" => {
            seed_dagster(&sandbox.ecs(), &sandbox.scaling_counted().0).await;
            Subject {
                env: vars(&[("CLUSTERS", platform::DAGSTER)]),
                representative: event("scale-to-zero.schedule.json"),
                no_aws: None,
                _app: None,
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
                _app: None,
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
                _app: None,
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
                _app: None,
            }
        }
        "verify-rollout" => {
            // Staging rolled out the pushed 1.3.0 and ECS completed it: the first event checks the new
            // revision (two requests, two samples a second apart) and records the verdict; the repeats
            // find it passed already.
            let app = CanaryApp::start();
            app.serve(&pushed_digest());
            seed_stages(&sandbox.ecs(), &sandbox.ecr(), &sandbox.scheduler(), &sandbox.codedeploy(), false).await;
            let suite = json!({
                "target": app.url(), "samples": 2, "interval_seconds": 1,
                "requests": [
                    {"name": "health", "path": "/health", "status": 200, "max_ms": 2000},
                    {"name": "version", "path": "/version", "json": {"/image": "${digest}"}}
                ]
            });
            sandbox
                .ssm()
                .put_parameter()
                .name("/nightshift/checks/staging/shop")
                .value(suite.to_string())
                .r#type(aws_sdk_ssm::types::ParameterType::String)
                .send()
                .await
                .unwrap();
            end_stage_rollout(sandbox, "staging", "COMPLETED");
            let stages: Vec<(String, String)> =
                vars(&[("SCHEDULE_GROUP", SCHEDULE_GROUP), ("SCHEDULE_ROLE_ARN", &schedule_role())]);
            let mut push_env = sandbox.function_env();
            push_env.extend(stages.iter().cloned());
            let pushed = FunctionProcess::spawn(&release_binary("deploy-on-push"), &push_env)
                .invoke(&event("deploy-on-push.ecr-push.json"))
                .response();
            assert_eq!(pushed["deployed"][0]["cluster"], "staging", "{pushed:#}");
            let completed = end_stage_rollout(sandbox, "staging", "COMPLETED").remove(0);
            let mut ignored = completed.clone();
            ignored["detail"]["eventName"] = json!("SERVICE_TASK_PLACEMENT_FAILURE");
            Subject {
                env: stages,
                representative: completed,
                no_aws: Some((ignored, "a service action event (ignored)")),
                _app: Some(app),
            }
        }
        other => panic!("no function {other}"),
    }
}

/// A function's variables, its endpoint the TLS front (its root trusted
/// through `SSL_CERT_FILE`, beside the roots built into the function).
fn env_through(wire: &Wire, sandbox: &Sandbox, extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> =
        sandbox.function_env().into_iter().filter(|(k, _)| k != "AWS_ENDPOINT_URL").collect();
    env.push(("AWS_ENDPOINT_URL".into(), wire.tls.endpoint()));
    env.push(("SSL_CERT_FILE".into(), wire.tls.root.display().to_string()));
    env.push(("RUST_LOG".into(), "warn".into()));
    env.extend(extra.iter().cloned());
    env
}

/// A freshly seeded local AWS for a function (its subject), reached through
/// TLS and the recording proxy, and the function's variables for it.
struct Seeded {
    subject: Subject,
    env: Vec<(String, String)>,
    wire: Wire,
    sandbox: Sandbox,
}

async fn seeded(name: &'static str) -> Seeded {
    let sandbox = Sandbox::start();
    let subject = subject(name, &sandbox).await;
    let wire = Wire::to(&sandbox);
    let env = env_through(&wire, &sandbox, &subject.env);
    Seeded { subject, env, wire, sandbox }
}

fn per_event(counts: &BTreeMap<String, u64>, events: usize) -> Value {
    let mut out = serde_json::Map::new();
    for (op, n) in counts {
        out.insert(op.clone(), json!((*n as f64 / events as f64 * 100.0).round() / 100.0));
    }
    Value::Object(out)
}

/// Init times of `binary` (process start to its first poll), `INIT_RUNS` runs.
fn inits(binary: &Path, env: &[(String, String)]) -> Vec<Duration> {
    (0..INIT_RUNS)
        .map(|_| FunctionProcess::spawn(binary, env).init_time(Duration::from_secs(10)).expect("it polls within 10 s"))
        .collect()
}

/// The floor: a bare `lambda_runtime` echo (tests/floor), its init measured as the functions' are.
fn floor() -> Value {
    let binary = release_binary("floor");
    let sandbox = Sandbox::start();
    let wire = Wire::to(&sandbox);
    let env = env_through(&wire, &sandbox, &[]);
    let times = inits(&binary, &env);
    let mut process = FunctionProcess::spawn(&binary, &env);
    let echoed = process.invoke(&json!({"echo": true})).response();
    assert_eq!(echoed, json!({"echo": true}), "the floor echoes");
    json!({"binary_bytes": size_of(&binary), "init": durations(&times), "peak_rss_kib": process.peak_rss_kib()})
}

fn size_of(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

async fn measure(name: &'static str) -> Value {
    let binary = release_binary(name);
    let size = size_of(&binary);
    let zipped = zipped_size(&binary);
    let arm64 = arm64_binary(name).map(|p| size_of(&p));

    let Seeded { subject, env, wire, sandbox: _sandbox } = seeded(name).await;
    let proxy = &wire.proxy;

    let inits = inits(&binary, &env);

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
    proxy.take_requests();
    json!({
        "function": name,
        "binary_bytes": size,
        "zipped_bytes": zipped,
        "arm64_binary_bytes": arm64,
        "init": durations(&inits),
        "event": {"time": durations(&times), "first_requests": first_ops, "requests_per_event_after_the_first": per_event(&steady_ops, EVENTS - 1)},
        "no_aws_event": no_aws,
        "peak_rss_kib": peak_rss_kib,
    })
}

/// The CPU time a process's threads have had so far (`/proc/<pid>/task/*/schedstat`, nanoseconds).
fn cpu_time(pid: u32) -> Duration {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten();
    let nanos: u64 = tasks
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()))
        .sum();
    Duration::from_nanos(nanos)
}

/// One cold start, as [`cold_start`] measures it.
struct Cold {
    init: Duration,
    first: Duration,
    /// The CPU time the first invocation took (at the share).
    first_cpu: Duration,
}

/// One cold start as a 128 MB function has it: init at full speed (Lambda
/// runs init unthrottled), then the first invocation at the 128 MB CPU share.
/// The times, the requests it sent (in order), and its answer.
/// `share` `None`: the first invocation at full speed too (for the time it spends waiting).
fn cold_start(
    process: &mut FunctionProcess,
    share: Option<&CpuShare>,
    wire: &Wire,
    event: &Value,
) -> (Cold, Vec<Value>, Value) {
    let Some(init) = process.init_time(Duration::from_secs(30)) else {
        panic!("the process did not poll within 30 s:\n{}", process.output());
    };
    if let Some(share) = share {
        share.admit(process.pid());
    }
    wire.proxy.take_requests();
    let before = cpu_time(process.pid());
    // `BENCH_PROFILE_FIRST=<prefix>`: a perf profile of each first invocation, in `<prefix>.<pid>`.
    let profiler = std::env::var("BENCH_PROFILE_FIRST").ok().map(|out| {
        let child = Command::new("perf")
            .args([
                "record",
                "-F",
                "20000",
                "-g",
                "-o",
                &format!("{out}.{}", process.pid()),
                "-p",
                &process.pid().to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("perf, for BENCH_PROFILE_FIRST");
        std::thread::sleep(Duration::from_millis(500));
        child
    });
    let (outcome, first) = process.invoke_timed_within(event, Duration::from_secs(120));
    if let Some(child) = profiler {
        let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
        let _ = child.wait_with_output();
    }
    let first_cpu = cpu_time(process.pid()).saturating_sub(before);
    let answer = match outcome {
        Outcome::Response(answer) => answer,
        other => panic!("the cold start failed: {other:?}\n{}", process.output()),
    };
    (Cold { init, first, first_cpu }, wire.proxy.take_requests(), answer)
}

/// `name`'s cold start at 128 MB beside a boto3 function making the same
/// calls (tests/bench/boto3_peer.py), each from a freshly seeded local AWS,
/// `COLD_RUNS` times, alternating; medians of init + first invocation.
async fn cold_against_boto3(name: &'static str, share: &CpuShare) -> Value {
    let binary = release_binary(name);
    let python = python_executable();
    let peer = workspace_root().join("tests/bench/boto3_peer.py");
    let calls_file = std::env::temp_dir().join(format!("nightshift-bench-calls-{}-{name}.json", std::process::id()));
    let (mut rust, mut boto3) = (Vec::new(), Vec::new());
    let (mut rust_ops, mut peer_ops, mut peer_errors) = (Vec::new(), Vec::new(), Value::Null);
    let mut waiting: Option<Duration> = None;
    // How long the local AWS took to answer the Rust function's requests (run 0), as the proxy saw it.
    let mut upstream_ms = 0.0_f64;
    for run in 0..COLD_RUNS {
        let rust_run = seeded(name).await;
        let mut process = FunctionProcess::spawn(&binary, &rust_run.env);
        let (cold, requests, _) =
            cold_start(&mut process, Some(share), &rust_run.wire, &rust_run.subject.representative);
        rust.push(cold);
        drop(process);
        if run == 0 {
            // The same first invocation at full speed: what of it is waiting (for the local AWS, the
            // relays, the Runtime API), which no CPU saved in the function can shorten.
            let full_run = seeded(name).await;
            let mut process = FunctionProcess::spawn(&binary, &full_run.env);
            let (full_speed, _, _) = cold_start(&mut process, None, &full_run.wire, &full_run.subject.representative);
            waiting = Some(full_speed.first.saturating_sub(full_speed.first_cpu));
            rust_ops = requests.iter().map(|r| r["operation"].clone()).collect();
            upstream_ms = requests.iter().filter_map(|r| r["upstream_ms"].as_f64()).sum::<f64>();
            let recorded =
                std::env::temp_dir().join(format!("nightshift-bench-recorded-{}-{name}.json", std::process::id()));
            std::fs::write(&recorded, serde_json::to_string(&requests).unwrap()).expect("write the recorded requests");
            let status = Command::new(&python).arg(&peer).arg("--translate").arg(&recorded).arg(&calls_file).status();
            assert!(status.is_ok_and(|s| s.success()), "translating {name}'s requests for the boto3 peer failed");
            let _ = std::fs::remove_file(recorded);
        }

        let Seeded { subject: peer_subject, mut env, wire, sandbox: _sandbox } = seeded(name).await;
        env.push(("AWS_CA_BUNDLE".into(), wire.tls.bundle.display().to_string()));
        // Lambda sets both; botocore reads the second.
        if let Some(region) = env.iter().find(|(k, _)| k == "AWS_REGION").map(|(_, v)| v.clone()) {
            env.push(("AWS_DEFAULT_REGION".into(), region));
        }
        env.push(("PEER_CALLS".into(), calls_file.display().to_string()));
        let mut process = FunctionProcess::spawn_program(&python, &[peer.display().to_string()], name, &env);
        let (cold, requests, answer) = cold_start(&mut process, Some(share), &wire, &peer_subject.representative);
        boto3.push(cold);
        if run == 0 {
            peer_ops = requests.iter().map(|r| r["operation"].clone()).collect();
            peer_errors = answer["errors"].clone();
        }
    }
    let _ = std::fs::remove_file(&calls_file);
    let summary = |runs: &[Cold]| {
        let of = |f: fn(&Cold) -> Duration| median(&runs.iter().map(f).collect::<Vec<_>>()).map(ms);
        json!({
            "init_ms": of(|c| c.init),
            "first_invocation_ms": of(|c| c.first),
            "first_invocation_cpu_ms": of(|c| c.first_cpu),
            "total_ms": of(|c| c.init + c.first),
            "runs": runs.len(),
        })
    };
    let total = |runs: &[Cold]| median(&runs.iter().map(|c| c.init + c.first).collect::<Vec<_>>());
    let ratio = match (total(&boto3), total(&rust)) {
        (Some(b), Some(r)) => json!(self::ratio(b, r)),
        _ => Value::Null,
    };
    // The ratio if the function's first invocation took no CPU at all: its init and its waiting only.
    let rust_init = median(&rust.iter().map(|c| c.init).collect::<Vec<_>>());
    let ceiling = match (total(&boto3), rust_init, waiting) {
        (Some(b), Some(i), Some(w)) => json!(self::ratio(b, i + w)),
        _ => Value::Null,
    };
    json!({
        "function": name,
        "rust": summary(&rust),
        "boto3": summary(&boto3),
        "ratio": ratio,
        "waiting_ms": waiting.map(ms),
        "local_aws_answering_ms": (upstream_ms * 100.0).round() / 100.0,
        "ceiling_ratio": ceiling,
        "calls": rust_ops,
        "same_calls": rust_ops == peer_ops,
        "boto3_calls": peer_ops,
        "boto3_errors": peer_errors,
    })
}

/// The interpreter `python3` is (its real path: the function processes start with a bare environment).
fn python_executable() -> PathBuf {
    let out = Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output().expect("python3");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// verify-rollout's checks against a bare request to the same loopback server
/// (functions/verify-rollout/examples/probe_overhead.rs, built in release).
fn check_overhead() -> Value {
    let example = target_dir().join("release/examples/probe_overhead");
    assert!(example.is_file(), "{} is not built; run `make bench`, which builds it first", example.display());
    let out = Command::new(&example).output().expect("run probe_overhead");
    assert!(out.status.success(), "probe_overhead failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("probe_overhead prints JSON")
}

/// deploy-on-push's request counts for a push that concerns no service and one
/// that concerns one: first in a shop it has never seen (each follower's
/// revision is read once and recorded on the service), then in a cold process,
/// as most pushes find the function.
async fn deploy_costs() -> Value {
    let binary = release_binary("deploy-on-push");
    let sandbox = Sandbox::start();
    seed_shop(&sandbox.ecs(), &sandbox.ecr(), &sandbox.codedeploy()).await;
    let wire = Wire::to(&sandbox);
    let proxy = &wire.proxy;
    let env = env_through(&wire, &sandbox, &[("CLUSTERS".into(), platform::CLUSTER.into())]);
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

    let wire = Wire::to(&sandbox);
    let proxy = &wire.proxy;
    let env = env_through(&wire, &sandbox, &[("LOG_BUCKET".into(), "grafana-logs".into())]);
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

fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1_000_000.0)
}

/// `ok` or `MISSED`, for a target held or not.
fn verdict(held: bool) -> &'static str {
    if held { "ok" } else { "MISSED" }
}

const PARTS: [&str; 5] = ["functions", "cold", "checks", "deploy", "sweep"];

/// `bench [functions] [cold] [checks] [deploy] [sweep]`: the parts to measure, all when none is named.
#[tokio::main]
async fn main() {
    let parts: Vec<String> = std::env::args().skip(1).collect();
    if let Some(unknown) = parts.iter().find(|p| !PARTS.contains(&p.as_str())) {
        eprintln!("bench: unknown part {unknown:?}; the parts are functions, cold, checks, deploy and sweep");
        std::process::exit(2);
    }
    let wants = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    // Checked first: the cold start cannot run without it, and the parts before it take minutes.
    let share = wants("cold").then(|| {
        CpuShare::for_memory(128).unwrap_or_else(|why| {
            eprintln!("bench: {why}");
            std::process::exit(1);
        })
    });
    let mut results = Vec::new();
    let mut floor = Value::Null;
    if wants("functions") {
        eprintln!("measuring the floor (a bare lambda_runtime echo) ...");
        floor = self::floor();
        for name in FUNCTIONS {
            eprintln!("measuring {name} ...");
            results.push(measure(name).await);
        }
    }
    let mut cold = Vec::new();
    if let Some(share) = &share {
        for name in COLD_FUNCTIONS {
            eprintln!("measuring {name}'s cold start at 128 MB against boto3's ({COLD_RUNS} runs each) ...");
            cold.push(cold_against_boto3(name, share).await);
        }
    }
    let mut checks = Value::Null;
    if wants("checks") {
        eprintln!("measuring verify-rollout's checks against bare requests ...");
        checks = check_overhead();
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

    let f = |v: &Value| v.as_f64().map_or("-".to_owned(), |x| format!("{x:.2} ms"));
    if !results.is_empty() {
        let floor_init = floor["init"]["median_ms"].as_f64();
        println!(
            "\nfloor (bare lambda_runtime echo): binary {}, init median {} (p90 {}), peak RSS {:.1} MB",
            mb(floor["binary_bytes"].as_u64().unwrap_or(0)),
            f(&floor["init"]["median_ms"]),
            f(&floor["init"]["p90_ms"]),
            floor["peak_rss_kib"].as_f64().unwrap_or(0.0) / 1000.0,
        );
        println!(
            "\n{:<17} {:>9} {:>9} {:>9} {:>10} {:>10} {:>7} {:>11} {:>11} {:>8}",
            "function",
            "x86_64",
            "arm64",
            "zipped",
            "init med",
            "init p90",
            "/floor",
            "event med",
            "no-AWS med",
            "peak RSS"
        );
        for r in results.iter_mut() {
            let init = r["init"]["median_ms"].as_f64();
            let init_ratio = init.zip(floor_init).map(|(i, fl)| (i / fl * 100.0).round() / 100.0);
            r["init_ratio_to_floor"] = json!(init_ratio);
            let arm64 = r["arm64_binary_bytes"].as_u64();
            r["targets"] = json!({
                "init_ratio_at_most_1_5": init_ratio.is_some_and(|x| x <= INIT_RATIO_MAX),
                "arm64_under_4_mb": arm64.is_some_and(|b| b < ARM64_MAX_BYTES),
                "x86_64_under_5_5_mb": r["binary_bytes"].as_u64().is_some_and(|b| b < X86_MAX_BYTES),
                "peak_rss_under_8_mb": r["peak_rss_kib"].as_u64().is_some_and(|k| k * 1024 < RSS_MAX_BYTES),
            });
            println!(
                "{:<17} {:>9} {:>9} {:>9} {:>10} {:>10} {:>7} {:>11} {:>11} {:>8}",
                r["function"].as_str().unwrap_or_default(),
                mb(r["binary_bytes"].as_u64().unwrap_or(0)),
                arm64.map_or("not built".to_owned(), mb),
                mb(r["zipped_bytes"].as_u64().unwrap_or(0)),
                f(&r["init"]["median_ms"]),
                f(&r["init"]["p90_ms"]),
                init_ratio.map_or("-".to_owned(), |x| format!("{x:.2}x")),
                f(&r["event"]["time"]["median_ms"]),
                f(&r["no_aws_event"]["time"]["median_ms"]),
                r["peak_rss_kib"].as_u64().map_or("-".to_owned(), |k| format!("{:.1} MB", k as f64 * 1024.0 / 1e6)),
            );
        }
        println!("\nAWS requests of the first event, by operation:");
        for r in &results {
            println!("  {:<17} {}", r["function"].as_str().unwrap_or_default(), r["event"]["first_requests"]);
        }
    }
    if !cold.is_empty() {
        println!(
            "\ncold start at 128 MB (init at full speed, first invocation at 128/1769 of a CPU), medians of {COLD_RUNS}:"
        );
        println!(
            "{:<17} {:>10} {:>12} {:>10} {:>11} {:>13} {:>11} {:>7} {:>10}",
            "function",
            "Rust init",
            "Rust first",
            "Rust total",
            "boto3 init",
            "boto3 first",
            "boto3 total",
            "ratio",
            "same calls"
        );
        for c in &cold {
            println!(
                "{:<17} {:>10} {:>12} {:>10} {:>11} {:>13} {:>11} {:>7} {:>10}",
                c["function"].as_str().unwrap_or_default(),
                f(&c["rust"]["init_ms"]),
                f(&c["rust"]["first_invocation_ms"]),
                f(&c["rust"]["total_ms"]),
                f(&c["boto3"]["init_ms"]),
                f(&c["boto3"]["first_invocation_ms"]),
                f(&c["boto3"]["total_ms"]),
                c["ratio"].as_f64().map_or("-".to_owned(), |x| format!("{x:.1}x")),
                if c["same_calls"] == true { "yes" } else { "NO" },
            );
            println!(
                "  CPU in the first invocation: Rust {}, boto3 {}; the Rust invocation waits {} (at full speed), \
                 of which the local AWS takes {} to answer: at no CPU cost at all, the ratio would be {}x",
                f(&c["rust"]["first_invocation_cpu_ms"]),
                f(&c["boto3"]["first_invocation_cpu_ms"]),
                f(&c["waiting_ms"]),
                f(&c["local_aws_answering_ms"]),
                c["ceiling_ratio"],
            );
            println!("  calls ({}): {}", c["calls"].as_array().map_or(0, Vec::len), c["calls"]);
        }
    }
    if !checks.is_null() {
        println!(
            "\nverify-rollout's checks: {} per request over a bare request to the same loopback server \
             (check {} vs bare {}, medians of {}); a round of {} checks against a server answering in {} ms \
             had at most {} in flight (the pool: {}) and took {}",
            f(&checks["overhead_ms"]),
            f(&checks["check_ms"]),
            f(&checks["bare_ms"]),
            checks["requests"],
            checks["round"]["checks"],
            checks["round"]["server_delay_ms"],
            checks["round"]["most_in_flight"],
            checks["round"]["pool"],
            f(&checks["round"]["took_ms"]),
        );
    }
    if !deploy.is_null() {
        println!("\ndeploy-on-push: {deploy}");
    }
    if !sweep.is_null() {
        println!("\nexpire-logs sweep: {sweep}");
    }

    // The targets (issue 25), each held or missed, in one place.
    let mut missed = 0;
    let mut target = |what: String, held: bool| {
        missed += usize::from(!held);
        println!("  {:<6} {what}", verdict(held));
    };
    println!("\ntargets:");
    for r in &results {
        let name = r["function"].as_str().unwrap_or_default();
        let t = &r["targets"];
        target(
            format!("{name}: init <= {INIT_RATIO_MAX}x the floor's ({})", r["init_ratio_to_floor"]),
            t["init_ratio_at_most_1_5"] == true,
        );
        target(
            format!(
                "{name}: arm64 binary < 4.0 MB ({})",
                r["arm64_binary_bytes"].as_u64().map_or("not built".into(), mb)
            ),
            t["arm64_under_4_mb"] == true,
        );
        target(
            format!("{name}: x86_64 binary < 5.5 MB ({})", mb(r["binary_bytes"].as_u64().unwrap_or(0))),
            t["x86_64_under_5_5_mb"] == true,
        );
        target(format!("{name}: peak RSS < 8 MB ({} KiB)", r["peak_rss_kib"]), t["peak_rss_under_8_mb"] == true);
    }
    for c in &cold {
        let name = c["function"].as_str().unwrap_or_default();
        let ratio = c["ratio"].as_f64();
        target(
            format!("{name}: cold start at 128 MB >= {COLD_RATIO_MIN}x faster than boto3's ({})", c["ratio"]),
            ratio.is_some_and(|r| r >= COLD_RATIO_MIN) && c["same_calls"] == true,
        );
    }
    if !checks.is_null() {
        let overhead = checks["overhead_ms"].as_f64();
        target(
            format!(
                "verify-rollout: checks add <= {CHECK_OVERHEAD_MAX_MS} ms per request ({})",
                f(&checks["overhead_ms"])
            ),
            overhead.is_some_and(|o| o <= CHECK_OVERHEAD_MAX_MS),
        );
        target(
            format!(
                "verify-rollout: a round runs within its pool ({} in flight at most, pool {})",
                checks["round"]["most_in_flight"], checks["round"]["pool"]
            ),
            checks["round"]["most_in_flight"]
                .as_u64()
                .zip(checks["round"]["pool"].as_u64())
                .is_some_and(|(m, p)| m > 1 && m <= p),
        );
    }
    println!("  {missed} missed");

    let all = json!({
        "measured_at": Utc::now().to_rfc3339(),
        "floor": floor,
        "functions": results,
        "cold_start_128mb": cold,
        "checks": checks,
        "deploy_on_push": deploy,
        "sweep": sweep,
    });
    let out = target_dir().join("bench.json");
    std::fs::write(&out, serde_json::to_string_pretty(&all).unwrap()).expect("write target/bench.json");
    println!("\nwritten to {}", out.display());
}
