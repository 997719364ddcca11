//! scale-to-zero and scale-on-ingress against a local AWS: the Dagster group
//! stays up for a run, sleeps once it is idle, wakes for a window or a file,
//! and a burst of files makes one wake.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_applicationautoscaling::types::ServiceNamespace;
use aws_sdk_ecs::types::{ServiceField, Tag};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use lambda_runtime::{Context, LambdaEvent};
use nightshift::FixedClock;
use nightshift::scale::plan::Decision;
use nightshift::scale::{ScaleConfig, ScaleGroup};
use nightshift_tests::platform::{DAGSTER, seed_dagster, start_run};
use nightshift_tests::runtime::{FunctionProcess, binary};
use nightshift_tests::sandbox::Sandbox;
use nightshift_tests::wire::RequestCounter;
use nightshift_tests::{emf, event};
use scale_on_ingress::ScaleOnIngress;
use scale_to_zero::ScaleToZero;
use serde_json::{Value, json};

fn config(extra: &[(&str, &str)]) -> ScaleConfig {
    let mut vars: std::collections::HashMap<String, String> = [("CLUSTERS".to_owned(), DAGSTER.to_owned())].into();
    vars.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    ScaleConfig::from_vars(&vars).unwrap()
}

struct Group {
    sandbox: Sandbox,
    ecs: aws_sdk_ecs::Client,
    wire: RequestCounter,
}

impl Group {
    async fn seeded() -> Self {
        let sandbox = Sandbox::start();
        let ecs = sandbox.ecs();
        seed_dagster(&ecs, &sandbox.scaling_counted().0).await;
        let wire = RequestCounter::default();
        Self { sandbox, ecs, wire }
    }

    /// A function's clients, signing as it (see `Sandbox::sdk_config_for`); both functions' clients
    /// share one request counter.
    fn clients(
        &self,
        function: &str,
        config: &ScaleConfig,
    ) -> (aws_sdk_ecs::Client, aws_sdk_applicationautoscaling::Client) {
        let clusters = config.clusters.join(",");
        let settings = [
            ("CLUSTERS", clusters.as_str()),
            ("SCALE_GROUP", &config.group),
            ("INGRESS_PREFIX", &config.ingress_prefix),
        ];
        let sdk = self.sandbox.sdk_config_for(function, &settings);
        let ecs = aws_sdk_ecs::config::Builder::from(&sdk).interceptor(self.wire.clone()).build();
        let scaling =
            aws_sdk_applicationautoscaling::config::Builder::from(&sdk).interceptor(self.wire.clone()).build();
        (aws_sdk_ecs::Client::from_conf(ecs), aws_sdk_applicationautoscaling::Client::from_conf(scaling))
    }

    fn group(&self, function: &str, config: ScaleConfig, now: DateTime<Utc>) -> ScaleGroup {
        let (ecs, scaling) = self.clients(function, &config);
        ScaleGroup { config, ecs, scaling, clock: Arc::new(FixedClock(now)) }
    }

    fn scale_to_zero(&self, config: ScaleConfig, now: DateTime<Utc>) -> ScaleToZero {
        ScaleToZero::new(self.group("scale-to-zero", config, now))
    }

    fn scale_on_ingress(&self, config: ScaleConfig, now: DateTime<Utc>) -> ScaleOnIngress {
        ScaleOnIngress::new(self.group("scale-on-ingress", config, now))
    }

    /// Every service's desired count and nightshift tags.
    async fn state(&self) -> BTreeMap<String, (i32, BTreeMap<String, String>)> {
        let arns = self.ecs.list_services().cluster(DAGSTER).send().await.unwrap().service_arns().to_vec();
        let out = self
            .ecs
            .describe_services()
            .cluster(DAGSTER)
            .set_services(Some(arns))
            .include(ServiceField::Tags)
            .send()
            .await
            .unwrap();
        out.services()
            .iter()
            .map(|s| {
                let tags = s
                    .tags()
                    .iter()
                    .filter(|t| t.key().is_some_and(|k| k.ends_with("capacity") || k.ends_with("last-activity")))
                    .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
                    .collect();
                (s.service_name().unwrap().to_owned(), (s.desired_count(), tags))
            })
            .collect()
    }

    async fn desired(&self) -> Vec<(String, i32)> {
        self.state().await.into_iter().map(|(name, (desired, _))| (name, desired)).collect()
    }

    async fn code_location_capacity(&self) -> (i32, i32) {
        let scaling = self.sandbox.scaling_counted().0;
        let out = scaling
            .describe_scalable_targets()
            .service_namespace(ServiceNamespace::Ecs)
            .resource_ids(format!("service/{DAGSTER}/code-location"))
            .send()
            .await
            .unwrap();
        let target = &out.scalable_targets()[0];
        (target.min_capacity(), target.max_capacity())
    }

    async fn record_activity(&self, at: DateTime<Utc>) {
        for name in ["code-location", "daemon", "webserver"] {
            let arn = format!("arn:aws:ecs:us-east-1:123456789012:service/{DAGSTER}/{name}");
            self.ecs
                .tag_resource()
                .resource_arn(arn)
                .tags(
                    Tag::builder()
                        .key("nightshift:last-activity")
                        .value(at.to_rfc3339_opts(SecondsFormat::Secs, true))
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
    }
}

fn scheduled() -> LambdaEvent<Value> {
    LambdaEvent::new(event("scale-to-zero.schedule.json"), Context::default())
}

fn s3_notification_at(at: DateTime<Utc>) -> LambdaEvent<Value> {
    let mut payload = event("scale-on-ingress.s3-notification.json");
    for record in payload["Records"].as_array_mut().unwrap() {
        record["eventTime"] = json!(at.to_rfc3339_opts(SecondsFormat::Millis, true));
    }
    LambdaEvent::new(payload, Context::default())
}

fn awake() -> Vec<(String, i32)> {
    [("code-location", 1), ("daemon", 1), ("metabase", 1), ("webserver", 1)].map(|(n, d)| (n.to_owned(), d)).to_vec()
}

fn asleep() -> Vec<(String, i32)> {
    [("code-location", 0), ("daemon", 0), ("metabase", 1), ("webserver", 0)].map(|(n, d)| (n.to_owned(), d)).to_vec()
}

fn order(services: &[nightshift::scale::aws::ServiceReport]) -> Vec<&str> {
    services.iter().map(|s| s.service.as_str()).collect()
}

#[tokio::test]
async fn the_group_stays_up_for_a_run_and_sleeps_once_it_stops_and_the_idle_time_has_passed() {
    // Given the Dagster group awake, its last ingress 45 minutes ago, and a run in flight
    let group = Group::seeded().await;
    let now = Utc::now();
    group.record_activity(now - Duration::minutes(45)).await;
    let run = start_run(&group.sandbox, &group.ecs, "7f3a9c2e").await;

    // When scale-to-zero runs, then the group stays up because of the run
    let report = group.scale_to_zero(config(&[]), now).handle(scheduled()).await.unwrap();
    assert_eq!(report.decision, Decision::None);
    assert!(report.needed);
    assert_eq!(report.reasons, ["idle 45 min >= 30", "run 7f3a9c2e in flight"]);
    assert_eq!(group.desired().await, awake());

    // When the run stops, then the group sleeps, in reverse wake order, its capacity remembered
    group.ecs.stop_task().cluster(DAGSTER).task(run).send().await.unwrap();
    let report = group.scale_to_zero(config(&[]), now).handle(scheduled()).await.unwrap();
    assert_eq!(report.decision, Decision::Sleep);
    assert_eq!(report.reasons, ["idle 45 min >= 30", "no run in flight"]);
    assert_eq!(order(&report.services), ["webserver", "daemon", "code-location"]);
    assert_eq!(group.desired().await, asleep(), "metabase is outside the group");
    assert_eq!(group.code_location_capacity().await, (0, 0));
    let state = group.state().await;
    assert_eq!(state["code-location"].1.get("nightshift:min-capacity").map(String::as_str), Some("1"));
    assert_eq!(state["code-location"].1.get("nightshift:max-capacity").map(String::as_str), Some("4"));

    // And the next run changes nothing
    group.wire.reset();
    let report = group.scale_to_zero(config(&[]), now + Duration::minutes(5)).handle(scheduled()).await.unwrap();
    assert_eq!(report.decision, Decision::None);
    let writes: Vec<String> =
        group.wire.all().into_keys().filter(|op| !op.starts_with("Describe") && !op.starts_with("List")).collect();
    assert!(writes.is_empty(), "{writes:?}");
}

#[tokio::test]
async fn an_awake_window_wakes_the_group_in_wake_order_and_restores_its_capacity() {
    // Given the group asleep
    let group = Group::seeded().await;
    let now = Utc::now();
    let report = group.scale_to_zero(config(&[]), now).handle(scheduled()).await.unwrap();
    assert_eq!(report.decision, Decision::Sleep);

    // When a window that contains now is configured
    let window = "daily 00:00-24:00";
    let report = group
        .scale_to_zero(config(&[("AWAKE_SCHEDULE", window), ("TIMEZONE", "Europe/London")]), now)
        .handle(scheduled())
        .await
        .unwrap();

    // Then the group wakes, code location first, with its capacity back and its memory gone
    assert_eq!(report.decision, Decision::Wake);
    assert_eq!(report.reasons[0], "inside daily 00:00-24:00 Europe/London");
    assert_eq!(order(&report.services), ["code-location", "daemon", "webserver"]);
    assert_eq!(group.desired().await, awake());
    assert_eq!(group.code_location_capacity().await, (1, 4));
    assert!(group.state().await["code-location"].1.is_empty());
}

#[tokio::test]
async fn a_burst_of_files_for_a_sleeping_group_makes_one_wake() {
    // Given the group asleep
    let group = Group::seeded().await;
    let now = Utc::now();
    group.scale_to_zero(config(&[]), now).handle(scheduled()).await.unwrap();
    group.wire.reset();

    // When fifty notifications arrive within a minute (S3 delivers at least once)
    let function = group.scale_on_ingress(config(&[("INGRESS_PREFIX", "landing/")]), now);
    for n in 0..50 {
        let report =
            function.handle(s3_notification_at(now - Duration::seconds(59) + Duration::seconds(n))).await.unwrap();
        if n == 0 {
            assert_eq!(report.decision, Some(Decision::Wake));
            assert_eq!(report.keys, ["landing/file one.csv", "landing/la=bristol/care leavers 2026.csv"]);
            assert_eq!(report.reasons[0], "ingress 0 min ago < 30");
        } else {
            assert_eq!(report.decision, Some(Decision::None), "event {n}");
        }
    }

    // Then the group woke once: one update per service, one capacity restore, and one activity tag per service
    assert_eq!(group.desired().await, awake());
    assert_eq!(group.wire.count("UpdateService"), 3);
    assert_eq!(group.wire.count("RegisterScalableTarget"), 1);
    assert_eq!(group.wire.count("TagResource"), 3);
    assert_eq!(group.wire.count("UntagResource"), 1);
    let state = group.state().await;
    let recorded = state["daemon"].1["nightshift:last-activity"].clone();
    assert_eq!(recorded, (now - Duration::seconds(59)).to_rfc3339_opts(SecondsFormat::Secs, true));
    assert!(!state["metabase"].1.contains_key("nightshift:last-activity"));

    // And an older event does not move the activity back
    function.handle(s3_notification_at(now - Duration::hours(3))).await.unwrap();
    assert_eq!(group.state().await["daemon"].1["nightshift:last-activity"], recorded);
}

#[tokio::test]
async fn events_with_nothing_to_act_on_read_and_write_nothing() {
    let group = Group::seeded().await;
    let function = group.scale_on_ingress(config(&[("INGRESS_PREFIX", "landing/")]), Utc::now());
    let test_event = function
        .handle(LambdaEvent::new(event("scale-on-ingress.s3-test-event.json"), Context::default()))
        .await
        .unwrap();
    assert!(test_event.ignored.unwrap().starts_with("s3:TestEvent"));
    let mut elsewhere = event("scale-on-ingress.eventbridge-object-created.json");
    elsewhere["detail"]["object"]["key"] = json!("tmp/scratch.csv");
    let outside = function.handle(LambdaEvent::new(elsewhere, Context::default())).await.unwrap();
    assert_eq!(outside.ignored.as_deref(), Some("no created key under \"landing/\""));
    let err = function
        .handle(LambdaEvent::new(json!({"Records": [{"eventName": 7}]}), Context::default()))
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("invalid event: not an S3 notification"), "{err}");
    assert_eq!(group.wire.total(), 0);
}

#[tokio::test]
async fn an_eventbridge_object_created_event_wakes_the_group_too() {
    let group = Group::seeded().await;
    let now = Utc::now();
    group.scale_to_zero(config(&[]), now).handle(scheduled()).await.unwrap();
    let mut created = event("scale-on-ingress.eventbridge-object-created.json");
    created["time"] = json!(now.to_rfc3339_opts(SecondsFormat::Secs, true));
    let report = group
        .scale_on_ingress(config(&[("INGRESS_PREFIX", "landing/")]), now)
        .handle(LambdaEvent::new(created, Context::default()))
        .await
        .unwrap();
    assert_eq!(report.decision, Some(Decision::Wake));
    assert_eq!(group.desired().await, awake());
}

#[tokio::test]
async fn scale_to_zero_does_not_scale_down_when_a_read_fails() {
    // Given an idle group, and a cluster in the configuration that cannot be read
    let group = Group::seeded().await;
    let err =
        group.scale_to_zero(config(&[("CLUSTERS", "dagster,gone")]), Utc::now()).handle(scheduled()).await.unwrap_err();
    assert!(err.to_string().contains("on gone failed"), "{err}");
    assert_eq!(group.desired().await, awake());
    assert_eq!(group.code_location_capacity().await, (1, 4));
}

#[tokio::test]
async fn dry_run_decides_and_changes_nothing() {
    let group = Group::seeded().await;
    let report = group.scale_to_zero(config(&[("DRY_RUN", "true")]), Utc::now()).handle(scheduled()).await.unwrap();
    assert_eq!(report.decision, Decision::Sleep);
    assert_eq!(report.services.len(), 3);
    assert_eq!(group.desired().await, awake());
    assert_eq!(group.code_location_capacity().await, (1, 4));
    assert!(group.state().await.values().all(|(_, tags)| tags.is_empty()));
}

#[tokio::test]
async fn the_built_binaries_sleep_and_wake_the_group() {
    let group = Group::seeded().await;
    group.sandbox.channel("slack/data-team", "slack").await;
    let mut env = group.sandbox.function_env();
    env.extend([("CLUSTERS".to_owned(), DAGSTER.to_owned()), ("INGRESS_PREFIX".to_owned(), "landing/".to_owned())]);
    // At NOTIFY_LEVEL=all the channels hear of each sleep and wake.
    env.extend([
        ("NOTIFY_CHANNELS".to_owned(), "slack/data-team".to_owned()),
        ("NOTIFY_LEVEL".to_owned(), "all".to_owned()),
    ]);

    let mut sleeper = FunctionProcess::spawn(&binary("scale-to-zero"), &env);
    let report = sleeper.invoke(&event("scale-to-zero.schedule.json")).response();
    assert_eq!(report["decision"], "sleep");
    assert_eq!(group.desired().await, asleep());

    let mut waker = FunctionProcess::spawn(&binary("scale-on-ingress"), &env);
    let mut notification = event("scale-on-ingress.s3-notification.json");
    notification["Records"][0]["eventTime"] = json!(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true));
    let report = waker.invoke(&notification).response();
    assert_eq!(report["decision"], "wake");
    assert_eq!(group.desired().await, awake());
    let again = waker.invoke(&notification).response();
    assert_eq!(again["decision"], "none");
    assert_eq!(again["activity_recorded"], json!([]));

    let report = sleeper.invoke(&event("scale-to-zero.schedule.json")).response();
    assert_eq!(report["decision"], "none", "the file just landed: {report}");
    let told: Vec<Value> =
        group.sandbox.webhooks("slack").iter().map(|m| m["blocks"][0]["text"]["text"].clone()).collect();
    assert_eq!(
        told,
        [json!("Scale group dagster put to sleep"), json!("Scale group dagster woken")],
        "runs that changed nothing tell nothing"
    );

    // And every run logged its metrics in valid EMF
    let names = ["ServicesSlept", "ServicesWoken", "GroupAwake", "RunFailed"];
    let slept = sleeper.report_lines(2);
    assert_eq!(emf::metric_values(&slept[0], &names), [3.0, 0.0, 0.0, 0.0]);
    assert_eq!(emf::metric_values(&slept[1], &names), [0.0, 0.0, 1.0, 0.0]);
    let woke = waker.report_lines(2);
    assert_eq!(emf::metric_values(&woke[0], &names), [0.0, 3.0, 1.0, 0.0]);
    assert_eq!(emf::metric_values(&woke[1], &names), [0.0, 0.0, 1.0, 0.0]);
}

/// One interleaving: scale-to-zero puts the idle group to sleep with every
/// UpdateService answered slowly, and a file lands `offset_ms` after it began.
async fn sleep_crossed_by_ingress(offset_ms: u64) -> (Vec<(String, i32)>, (i32, i32), usize, Decision) {
    let group = Group::seeded().await;
    let now = Utc::now();
    group.record_activity(now - Duration::hours(2)).await;
    group.sandbox.slow("UpdateService", 0.4);
    let sleeper = group.scale_to_zero(config(&[]), now);
    let waker = group.scale_on_ingress(config(&[("INGRESS_PREFIX", "landing/")]), now);
    let ingress = async {
        tokio::time::sleep(std::time::Duration::from_millis(offset_ms)).await;
        waker.handle(s3_notification_at(now - Duration::seconds(30))).await
    };
    let (slept, woke) = tokio::join!(sleeper.handle(scheduled()), ingress);
    let (slept, woke) = (slept.unwrap(), woke.unwrap());
    assert!(woke.problems.is_empty() && slept.problems.is_empty(), "offset {offset_ms} ms: {woke:#?}");
    group.sandbox.slow("UpdateService", 0.0);
    let memory =
        group.state().await.values().map(|(_, tags)| tags.keys().filter(|k| k.ends_with("capacity")).count()).sum();
    (group.desired().await, group.code_location_capacity().await, memory, slept.decision)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whatever_the_interleaving_a_sleep_crossed_by_ingress_ends_with_the_group_awake() {
    // Given an idle group going to sleep, each UpdateService taking 0.4 s (the sleep takes about 1.5 s),
    // when a file lands before, during (after each of its steps) and after the sleep
    let offsets = [0, 150, 450, 850, 1250, 1700, 2600];
    let ends = run_all_at_once(offsets.iter().map(|&ms| sleep_crossed_by_ingress(ms))).await;

    // Then once both have run the group is fully awake: every service at its count, the capacity restored, no memory left
    // (a file that lands first may keep the sleep from starting at all; the later ones land on a sleep under way)
    assert!(ends.iter().filter(|end| end.3 == Decision::Sleep).count() >= offsets.len() - 2);
    for (offset, (desired, capacity, memory, _)) in offsets.iter().zip(ends) {
        assert_eq!(desired, awake(), "file landed {offset} ms into the sleep");
        assert_eq!(capacity, (1, 4), "file landed {offset} ms into the sleep");
        assert_eq!(memory, 0, "file landed {offset} ms into the sleep");
    }
}

/// Runs the futures concurrently (each interleaving has its own sandbox).
async fn run_all_at_once<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.expect("an interleaving panicked"));
    }
    out
}

#[tokio::test]
async fn a_wake_that_finds_a_target_at_zero_with_nothing_remembered_reports_it() {
    // Given the group asleep, and someone removing the remembered capacity by hand
    let group = Group::seeded().await;
    let now = Utc::now();
    group.scale_to_zero(config(&[]), now).handle(scheduled()).await.unwrap();
    group
        .ecs
        .untag_resource()
        .resource_arn(format!("arn:aws:ecs:us-east-1:123456789012:service/{DAGSTER}/code-location"))
        .tag_keys("nightshift:min-capacity")
        .tag_keys("nightshift:max-capacity")
        .send()
        .await
        .unwrap();

    // When a file lands
    let report =
        group.scale_on_ingress(config(&[]), now).handle(s3_notification_at(now - Duration::seconds(5))).await.unwrap();

    // Then the group wakes, and the report says what it could not bring back
    assert_eq!(group.desired().await, awake());
    assert_eq!(
        report.problems,
        [format!(
            "{DAGSTER}/code-location: its scalable target is at 0..0 and no capacity is remembered \
             (nightshift:min-capacity, nightshift:max-capacity); set its capacity by hand"
        )]
    );
}
