//! expire-logs against a local AWS: the handler in-process (with a clock the
//! test controls), and the built binary through the Lambda Runtime API.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketVersioningStatus, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleAndOperator, LifecycleRuleFilter, ObjectLockLegalHold, ObjectLockLegalHoldStatus, Tag, Transition,
    TransitionStorageClass, VersioningConfiguration,
};
use chrono::{DateTime, Utc};
use expire_logs::{ExpireConfig, ExpireError, ExpireLogs};
use lambda_runtime::{Context, LambdaEvent};
use nightshift::s3_sweep::S3Error;
use nightshift::{Clock, FixedClock};
use nightshift_tests::platform::put_many;
use nightshift_tests::runtime::{FunctionProcess, Outcome, binary};
use nightshift_tests::sandbox::Sandbox;
use nightshift_tests::wire::RequestCounter;
use nightshift_tests::{emf, event};
use serde_json::{Value, json};

const BUCKET: &str = "grafana-logs";

fn config(extra: &[(&str, &str)]) -> ExpireConfig {
    let mut vars: Vec<(String, String)> = vec![("LOG_BUCKET".into(), BUCKET.into())];
    vars.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    ExpireConfig::from_vars(&vars.into_iter().collect::<std::collections::HashMap<_, _>>()).unwrap()
}

fn function(sandbox: &Sandbox, config: ExpireConfig, clock: Arc<dyn Clock>) -> (ExpireLogs, RequestCounter) {
    let counter = RequestCounter::default();
    let sdk = sandbox.sdk_config_for("expire-logs", &[("LOG_BUCKET", &config.bucket), ("LOG_PREFIX", &config.prefix)]);
    let s3 = aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).interceptor(counter.clone()).build();
    (ExpireLogs::new(config, Client::from_conf(s3), clock), counter)
}

fn scheduled() -> LambdaEvent<Value> {
    LambdaEvent::new(event("expire-logs.schedule.json"), Context::default())
}

async fn create_bucket(s3: &Client, bucket: &str) {
    s3.create_bucket().bucket(bucket).send().await.unwrap();
}

async fn put(s3: &Client, bucket: &str, key: &str, body: &str) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.as_bytes().to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
}

/// Every (key, version) in the bucket, delete markers marked `(marker)`.
async fn versions(s3: &Client, bucket: &str) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    let (mut key_marker, mut version_marker) = (None, None);
    loop {
        let page = s3
            .list_object_versions()
            .bucket(bucket)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
            .unwrap();
        all.extend(page.versions().iter().map(|v| v.key().unwrap().to_owned()));
        all.extend(page.delete_markers().iter().map(|m| format!("{} (marker)", m.key().unwrap())));
        if page.is_truncated() != Some(true) {
            return all;
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        version_marker = page.next_version_id_marker().map(str::to_owned);
    }
}

async fn lifecycle_rules(s3: &Client, bucket: &str) -> Option<Vec<LifecycleRule>> {
    match s3.get_bucket_lifecycle_configuration().bucket(bucket).send().await {
        Ok(out) => Some(out.rules().to_vec()),
        Err(_) => None,
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

const SPECIAL_KEYS: [&str; 4] = [
    "loki/old/chunk 1.gz",
    "loki/old/ünïcødé+plus%percent&amp<lt>.gz",
    "loki/old/a+b=c?d#e.gz",
    "loki/old/tenant%2Ffake/ctl.gz",
];

/// Old and new logs under `loki/`, and old objects outside it.
async fn seed_logs(sandbox: &Sandbox, s3: &Client) {
    create_bucket(s3, BUCKET).await;
    for key in SPECIAL_KEYS {
        put(s3, BUCKET, key, "forty days old").await;
    }
    put(s3, BUCKET, "other/old/dashboards.json", "also old, but outside the prefix").await;
    put(s3, BUCKET, "loki-archive/old.gz", "shares the prefix's letters, not the prefix").await;
    assert_eq!(sandbox.backdate(BUCKET, "loki/old/", 40.0), 4);
    assert_eq!(sandbox.backdate(BUCKET, "other/", 40.0), 1);
    assert_eq!(sandbox.backdate(BUCKET, "loki-archive/", 40.0), 1);
    put(s3, BUCKET, "loki/new/chunk.gz", "fresh").await;
    put(s3, BUCKET, "loki/almost/chunk.gz", "29 days old").await;
    sandbox.backdate(BUCKET, "loki/almost/", 29.0);
}

#[tokio::test]
async fn the_sweep_deletes_old_objects_under_the_prefix_and_nothing_else() {
    // Given old and new logs, special keys among them, and old objects outside the prefix
    let sandbox = Sandbox::start();
    let s3 = sandbox.s3();
    seed_logs(&sandbox, &s3).await;
    let (function, wire) = function(&sandbox, config(&[("LOG_PREFIX", "loki/")]), Arc::new(FixedClock(Utc::now())));

    // When it runs
    let report = function.handle(scheduled()).await.unwrap();

    // Then exactly the old objects under the prefix are gone
    assert_eq!(
        versions(&s3, BUCKET).await,
        set(&["loki/new/chunk.gz", "loki/almost/chunk.gz", "other/old/dashboards.json", "loki-archive/old.gz"])
    );
    assert_eq!((report.objects_scanned, report.objects_expired), (6, 4));
    assert_eq!(report.bytes_freed, 4 * "forty days old".len() as u64);
    assert!(report.complete && report.errors.is_empty());
    assert_eq!(wire.count("DeleteObjects"), 1);

    // And a second run deletes nothing and writes nothing
    wire.reset();
    let again = function.handle(scheduled()).await.unwrap();
    assert_eq!((again.objects_scanned, again.objects_expired), (2, 0));
    assert_eq!(again.lifecycle, expire_logs::plan::LifecycleOutcome::Unchanged);
    // The one GetObject is the sweep's checkpoint, which a complete sweep has none of
    assert_eq!(
        wire.all().into_keys().collect::<Vec<_>>(),
        ["GetBucketLifecycleConfiguration", "GetObject", "ListObjectVersions"]
    );
}

#[tokio::test]
async fn lifecycle_rules_are_merged_and_the_users_own_rules_survive_exactly() {
    // Given a bucket with a user's rules, one of them intricate
    let sandbox = Sandbox::start();
    let s3 = sandbox.s3();
    create_bucket(&s3, BUCKET).await;
    let users = vec![
        LifecycleRule::builder()
            .id("archive-dashboards")
            .filter(
                LifecycleRuleFilter::builder()
                    .and(
                        LifecycleRuleAndOperator::builder()
                            .prefix("dashboards/")
                            .tags(Tag::builder().key("keep").value("yes").build().unwrap())
                            .build(),
                    )
                    .build(),
            )
            .status(ExpirationStatus::Enabled)
            .transitions(Transition::builder().days(90).storage_class(TransitionStorageClass::Glacier).build())
            .build()
            .unwrap(),
        LifecycleRule::builder()
            .id("tmp-after-a-day")
            .filter(LifecycleRuleFilter::builder().prefix("tmp/").build())
            .status(ExpirationStatus::Disabled)
            .expiration(LifecycleExpiration::builder().days(1).build())
            .build()
            .unwrap(),
    ];
    s3.put_bucket_lifecycle_configuration()
        .bucket(BUCKET)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder().set_rules(Some(users.clone())).build().unwrap(),
        )
        .send()
        .await
        .unwrap();
    let stored_before = lifecycle_rules(&s3, BUCKET).await.unwrap();
    let (function, wire) =
        function(&sandbox, config(&[("LOG_PREFIX", "loki/"), ("SWEEP", "false")]), Arc::new(FixedClock(Utc::now())));

    // When it runs
    let report = function.handle(scheduled()).await.unwrap();

    // Then nightshift's rules are added and the user's are as they were
    assert_eq!(report.lifecycle, expire_logs::plan::LifecycleOutcome::Updated);
    let stored = lifecycle_rules(&s3, BUCKET).await.unwrap();
    assert_eq!(stored[..2], stored_before[..]);
    let ids: Vec<_> = stored.iter().filter_map(|r| r.id()).collect();
    let [expire_id, markers_id] = expire_logs::plan::rule_ids("loki/");
    assert_eq!(ids, ["archive-dashboards", "tmp-after-a-day", expire_id.as_str(), markers_id.as_str()]);
    let expire = &stored[2];
    assert_eq!(expire.filter().and_then(|f| f.prefix()), Some("loki/"));
    assert_eq!(expire.expiration().and_then(|e| e.days()), Some(30));
    assert_eq!(expire.noncurrent_version_expiration().and_then(|n| n.noncurrent_days()), Some(30));
    assert_eq!(expire.abort_incomplete_multipart_upload().and_then(|a| a.days_after_initiation()), Some(7));
    assert_eq!(stored[3].expiration().and_then(|e| e.expired_object_delete_marker()), Some(true));
    assert_eq!(wire.count("PutBucketLifecycleConfiguration"), 1);

    // And an identical configuration is not rewritten
    wire.reset();
    let again = function.handle(scheduled()).await.unwrap();
    assert_eq!(again.lifecycle, expire_logs::plan::LifecycleOutcome::Unchanged);
    assert_eq!(wire.count("PutBucketLifecycleConfiguration"), 0);

    // And a new retention replaces only nightshift's rules
    let (function, _) = self::function(
        &sandbox,
        config(&[("LOG_PREFIX", "loki/"), ("SWEEP", "false"), ("RETENTION_DAYS", "14")]),
        Arc::new(FixedClock(Utc::now())),
    );
    let changed = function.handle(scheduled()).await.unwrap();
    assert_eq!(changed.lifecycle, expire_logs::plan::LifecycleOutcome::Updated);
    let stored = lifecycle_rules(&s3, BUCKET).await.unwrap();
    assert_eq!(stored[..2], stored_before[..]);
    assert_eq!(stored[2].expiration().and_then(|e| e.days()), Some(14));
    assert_eq!(stored.len(), 4);
}

#[tokio::test]
async fn two_deployments_on_two_prefixes_of_one_bucket_keep_each_others_rules_day_after_day() {
    // Given one logs bucket, and two deployments of expire-logs on two of its prefixes
    let sandbox = Sandbox::start();
    let s3 = sandbox.s3();
    create_bucket(&s3, BUCKET).await;
    let deployment = |prefix: &str, days: &str| {
        let settings = config(&[("LOG_PREFIX", prefix), ("RETENTION_DAYS", days), ("SWEEP", "false")]);
        function(&sandbox, settings, Arc::new(FixedClock(Utc::now())))
    };
    let (loki, loki_wire) = deployment("loki/", "30");
    let (grafana, grafana_wire) = deployment("grafana/", "14");

    // When each runs on its first day, then each adds its rules and leaves the other's
    loki.handle(scheduled()).await.unwrap();
    grafana.handle(scheduled()).await.unwrap();
    let rules = lifecycle_rules(&s3, BUCKET).await.unwrap();
    let days = |prefix: &str| {
        let [expire_id, _] = expire_logs::plan::rule_ids(prefix);
        rules.iter().find(|r| r.id() == Some(expire_id.as_str())).and_then(|r| r.expiration()).and_then(|e| e.days())
    };
    assert_eq!((rules.len(), days("loki/"), days("grafana/")), (4, Some(30), Some(14)), "{rules:#?}");

    // And on every day after, neither rewrites the configuration
    loki_wire.reset();
    grafana_wire.reset();
    for _ in 0..3 {
        assert_eq!(loki.handle(scheduled()).await.unwrap().lifecycle, expire_logs::plan::LifecycleOutcome::Unchanged);
        let other = grafana.handle(scheduled()).await.unwrap();
        assert_eq!(other.lifecycle, expire_logs::plan::LifecycleOutcome::Unchanged);
    }
    assert_eq!(
        loki_wire.count("PutBucketLifecycleConfiguration") + grafana_wire.count("PutBucketLifecycleConfiguration"),
        0
    );
    assert_eq!(lifecycle_rules(&s3, BUCKET).await.unwrap(), rules);
}

#[tokio::test]
async fn in_a_versioned_bucket_old_versions_and_delete_markers_go_and_new_ones_stay() {
    // Given a versioned bucket with old versions, an old delete marker and a new version
    let sandbox = Sandbox::start();
    let s3 = sandbox.s3();
    create_bucket(&s3, BUCKET).await;
    s3.put_bucket_versioning()
        .bucket(BUCKET)
        .versioning_configuration(VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build())
        .send()
        .await
        .unwrap();
    put(&s3, BUCKET, "logs/a", "a1").await;
    put(&s3, BUCKET, "logs/b", "b1").await;
    s3.delete_object().bucket(BUCKET).key("logs/b").send().await.unwrap();
    sandbox.backdate(BUCKET, "logs/", 45.0);
    put(&s3, BUCKET, "logs/a", "a2, written today").await;
    assert_eq!(versions(&s3, BUCKET).await, set(&["logs/a", "logs/b", "logs/b (marker)"]));
    let (function, _) = function(&sandbox, config(&[("LOG_PREFIX", "logs/")]), Arc::new(FixedClock(Utc::now())));

    // When it runs
    let report = function.handle(scheduled()).await.unwrap();

    // Then only today's version of logs/a is left
    assert_eq!((report.objects_scanned, report.objects_expired), (4, 3));
    let left = s3.list_object_versions().bucket(BUCKET).send().await.unwrap();
    assert!(left.delete_markers().is_empty());
    let left: Vec<_> = left.versions().iter().map(|v| (v.key().unwrap(), v.size().unwrap())).collect();
    assert_eq!(left, [("logs/a", "a2, written today".len() as i64)]);
}

#[tokio::test]
async fn dry_run_reports_what_it_would_do_and_changes_nothing() {
    // Given old and new logs and no lifecycle configuration
    let sandbox = Sandbox::start();
    let s3 = sandbox.s3();
    seed_logs(&sandbox, &s3).await;
    let before = versions(&s3, BUCKET).await;
    let (function, wire) =
        function(&sandbox, config(&[("LOG_PREFIX", "loki/"), ("DRY_RUN", "true")]), Arc::new(FixedClock(Utc::now())));

    // When it runs with DRY_RUN=true
    let report = function.handle(scheduled()).await.unwrap();

    // Then the report says what it would do
    assert!(report.dry_run);
    assert_eq!(report.lifecycle, expire_logs::plan::LifecycleOutcome::Created);
    assert_eq!(report.objects_expired, 4);
    // And nothing was written
    assert_eq!(versions(&s3, BUCKET).await, before);
    assert_eq!(lifecycle_rules(&s3, BUCKET).await, None);
    // The one GetObject is the sweep's checkpoint, which a complete sweep has none of
    assert_eq!(
        wire.all().into_keys().collect::<Vec<_>>(),
        ["GetBucketLifecycleConfiguration", "GetObject", "ListObjectVersions"]
    );
}

async fn seed_many(sandbox: &Sandbox, s3: &Client, old: usize, new: usize) {
    create_bucket(s3, BUCKET).await;
    put_many(s3, BUCKET, (0..old).map(|n| format!("old/{n:05}")).collect(), b"log line").await;
    sandbox.backdate(BUCKET, "old/", 31.0);
    put_many(s3, BUCKET, (0..new).map(|n| format!("new/{n:05}")).collect(), b"log line").await;
}

#[tokio::test]
async fn many_expired_objects_go_in_batches_of_a_thousand() {
    // Given 1,200 old and 300 new objects
    let sandbox = Sandbox::start();
    let s3 = sandbox.s3();
    seed_many(&sandbox, &s3, 1200, 300).await;
    let (function, wire) = function(&sandbox, config(&[("LIFECYCLE", "false")]), Arc::new(FixedClock(Utc::now())));

    // When it runs
    let report = function.handle(scheduled()).await.unwrap();

    // Then all the old ones are gone, in two listings and two DeleteObjects
    assert_eq!((report.objects_scanned, report.objects_expired, report.complete), (1500, 1200, true));
    assert_eq!(versions(&s3, BUCKET).await.len(), 300);
    assert_eq!(wire.count("ListObjectVersions"), 2);
    assert_eq!(wire.count("DeleteObjects"), 2);
}

/// A clock that moves a minute on every reading.
struct SteppingClock(Mutex<DateTime<Utc>>);

impl Clock for SteppingClock {
    fn now(&self) -> DateTime<Utc> {
        let mut now = self.0.lock().unwrap();
        *now += chrono::Duration::minutes(1);
        *now
    }
}

#[tokio::test]
async fn the_sweep_stops_before_the_deadline_and_the_next_run_carries_on() {
    // Given 1,200 old objects and an invocation whose deadline comes after one listing
    let sandbox = Sandbox::start();
    let s3 = sandbox.s3();
    seed_many(&sandbox, &s3, 1200, 0).await;
    let start = Utc::now();
    let clock = Arc::new(SteppingClock(Mutex::new(start)));
    let (function, wire) = function(&sandbox, config(&[("LIFECYCLE", "false")]), clock);
    let mut context = Context::default();
    context.deadline = u64::try_from((start + chrono::Duration::seconds(130)).timestamp_millis()).unwrap();

    // When it runs
    let report = function.handle(LambdaEvent::new(json!({}), context)).await.unwrap();

    // Then it stopped cleanly after the first page, and says so, and where the next run goes on
    assert!(!report.complete);
    assert_eq!((report.objects_scanned, report.objects_expired), (1000, 1000));
    assert_eq!(wire.count("ListObjectVersions"), 1);
    assert_eq!(versions(&s3, BUCKET).await.len(), 200 + 1, "200 old objects, and the checkpoint");
    let progress = report.progress.clone().unwrap();
    assert_eq!((progress.resumed_after, progress.next_after.as_deref()), (None, Some("old/00998")));
    assert_eq!(progress.checkpoint, "nightshift/expire-logs/checkpoint.json");

    // And the next run goes on from there, and round to the start, and the whole prefix is done
    put_many(&s3, BUCKET, (0..5).map(|n| format!("early/{n}")).collect(), b"log line").await;
    sandbox.backdate(BUCKET, "early/", 31.0);
    let (function, wire) =
        self::function(&sandbox, config(&[("LIFECYCLE", "false")]), Arc::new(FixedClock(Utc::now())));
    let report = function.handle(scheduled()).await.unwrap();
    assert!(report.complete);
    assert_eq!(report.objects_expired, 200 + 5, "the rest, then the keys before where it resumed");
    let progress = report.progress.unwrap();
    assert_eq!(
        (progress.resumed_after.as_deref(), progress.next_after, progress.wrapped),
        (Some("old/00998"), None, true)
    );
    assert!(versions(&s3, BUCKET).await.is_empty(), "the checkpoint goes with a whole pass");
    assert_eq!(wire.count("DeleteObject"), 1, "the checkpoint");

    // And a run after a whole pass starts at the beginning and writes nothing
    let (function, wire) =
        self::function(&sandbox, config(&[("LIFECYCLE", "false")]), Arc::new(FixedClock(Utc::now())));
    let report = function.handle(scheduled()).await.unwrap();
    assert!(report.complete && report.objects_expired == 0 && report.progress.unwrap().resumed_after.is_none());
    assert_eq!(wire.all().into_keys().collect::<Vec<_>>(), ["GetObject", "ListObjectVersions"]);
}

#[tokio::test]
async fn in_a_versioned_bucket_the_checkpoint_leaves_no_old_versions_behind() {
    // Given a versioned bucket of 2,500 old logs, and runs whose deadline comes after one listing
    let sandbox = Sandbox::start();
    let s3 = sandbox.s3();
    create_bucket(&s3, BUCKET).await;
    s3.put_bucket_versioning()
        .bucket(BUCKET)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    put_many(&s3, BUCKET, (0..2500).map(|n| format!("loki/{n:05}")).collect(), b"chunk").await;
    sandbox.backdate(BUCKET, "loki/", 31.0);

    // When three runs each get one page
    let mut stopped_at = Vec::new();
    for _ in 0..3 {
        let start = Utc::now();
        let clock = Arc::new(SteppingClock(Mutex::new(start)));
        let (function, _) = function(&sandbox, config(&[("LIFECYCLE", "false"), ("LOG_PREFIX", "loki/")]), clock);
        let mut context = Context::default();
        context.deadline = u64::try_from((start + chrono::Duration::seconds(130)).timestamp_millis()).unwrap();
        let report = function.handle(LambdaEvent::new(json!({}), context)).await.unwrap();
        stopped_at.push((report.complete, report.progress.unwrap().next_after));
    }

    // Then each resumed where the last stopped; the last reached the end, and its deadline came before it
    // could go round to the start, so the next run starts there; and no old checkpoint version was kept
    assert_eq!(
        stopped_at,
        [(false, Some("loki/00998".to_owned())), (false, Some("loki/01998".to_owned())), (false, None)]
    );
    assert!(versions(&s3, BUCKET).await.is_empty(), "{:?}", versions(&s3, BUCKET).await);
}

#[tokio::test]
async fn a_key_that_cannot_be_deleted_is_reported_and_the_sweep_goes_on() {
    // Given an object-lock bucket where one old log is under legal hold
    let sandbox = Sandbox::start();
    let s3 = sandbox.s3();
    s3.create_bucket().bucket(BUCKET).object_lock_enabled_for_bucket(true).send().await.unwrap();
    for key in ["logs/held.gz", "logs/free-1.gz", "logs/free-2.gz"] {
        put(&s3, BUCKET, key, "old").await;
    }
    s3.put_object_legal_hold()
        .bucket(BUCKET)
        .key("logs/held.gz")
        .legal_hold(ObjectLockLegalHold::builder().status(ObjectLockLegalHoldStatus::On).build())
        .send()
        .await
        .unwrap();
    sandbox.backdate(BUCKET, "logs/", 40.0);
    let (function, _) = function(&sandbox, config(&[("LIFECYCLE", "false")]), Arc::new(FixedClock(Utc::now())));

    // When it runs
    let report = function.handle(scheduled()).await.unwrap();

    // Then the held key is reported with its reason, and the others are gone
    assert_eq!(versions(&s3, BUCKET).await, set(&["logs/held.gz"]));
    assert_eq!((report.objects_expired, report.errors_total), (2, 1));
    assert_eq!(report.errors[0].key, "logs/held.gz");
    assert_eq!(report.errors[0].code, "AccessDenied");
    assert!(report.complete);
}

#[tokio::test]
async fn a_bucket_that_does_not_exist_is_an_error_that_names_it() {
    let sandbox = Sandbox::start();
    for lifecycle in ["true", "false"] {
        let (function, wire) =
            function(&sandbox, config(&[("LIFECYCLE", lifecycle)]), Arc::new(FixedClock(Utc::now())));
        let err = function.handle(scheduled()).await.unwrap_err();
        assert!(
            matches!(err, ExpireError::S3(S3Error::BucketNotFound { ref bucket, .. }) if bucket == BUCKET),
            "{err:?}"
        );
        assert!(err.to_string().contains("\"grafana-logs\""), "{err}");
        assert_eq!(wire.total(), 1, "LIFECYCLE={lifecycle}: stops at the first call");
    }
}

// The built binary, driven through the Lambda Runtime API.

fn binary_env(sandbox: &Sandbox, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = sandbox.function_env();
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    env
}

#[tokio::test]
async fn the_built_binary_keeps_and_deletes_exactly_what_it_should() {
    // Given old and new logs, and a user's lifecycle rule
    let sandbox = Sandbox::start();
    let s3 = sandbox.s3();
    seed_logs(&sandbox, &s3).await;
    let users_rule = LifecycleRule::builder()
        .id("tmp-after-a-day")
        .filter(LifecycleRuleFilter::builder().prefix("tmp/").build())
        .status(ExpirationStatus::Enabled)
        .expiration(LifecycleExpiration::builder().days(1).build())
        .build()
        .unwrap();
    s3.put_bucket_lifecycle_configuration()
        .bucket(BUCKET)
        .lifecycle_configuration(BucketLifecycleConfiguration::builder().rules(users_rule.clone()).build().unwrap())
        .send()
        .await
        .unwrap();
    sandbox.channel("teams/ops", "teams").await;
    let env = binary_env(
        &sandbox,
        &[
            ("LOG_BUCKET", BUCKET),
            ("LOG_PREFIX", "loki/"),
            ("RETENTION_DAYS", "30"),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("NOTIFY_CHANNELS", "teams/ops"),
            ("NOTIFY_LEVEL", "all"),
        ],
    );
    let mut process = FunctionProcess::spawn(&binary("expire-logs"), &env);

    // When the scheduled event arrives
    let report = process.invoke(&event("expire-logs.schedule.json")).response();

    // Then it reports and did exactly what the report says, and told the channel (NOTIFY_LEVEL=all)
    let told = sandbox.webhooks("teams");
    assert_eq!(told.len(), 1);
    assert_eq!(told[0]["attachments"][0]["content"]["body"][0]["text"], format!("Logs expired: {BUCKET}/loki/"));
    assert_eq!(report["function"], "expire-logs");
    assert_eq!(report["trigger"]["kind"], "scheduled");
    assert_eq!(report["lifecycle"], "updated");
    assert_eq!(report["objects_expired"], 4);
    assert_eq!(report["complete"], true);
    assert_eq!(
        versions(&s3, BUCKET).await,
        set(&["loki/new/chunk.gz", "loki/almost/chunk.gz", "other/old/dashboards.json", "loki-archive/old.gz"])
    );
    let rules = lifecycle_rules(&s3, BUCKET).await.unwrap();
    assert_eq!(rules[0], users_rule);
    assert_eq!(rules.len(), 3);

    // And the same event again changes nothing
    let again = process.invoke(&event("expire-logs.schedule.json")).response();
    assert_eq!((again["lifecycle"].as_str(), again["objects_expired"].as_u64()), (Some("unchanged"), Some(0)));
    // And each run logged one report line: the report as it was returned, and its metrics in valid EMF
    let lines = process.report_lines(2);
    let logged: Vec<&Value> = lines.iter().map(|line| &line["report"]).collect();
    assert_eq!(logged, [&report, &again]);
    let names = ["ObjectsExpired", "BytesFreed", "SweepComplete", "RunFailed"];
    assert_eq!(emf::metric_values(&lines[0], &names), [4.0, report["bytes_freed"].as_f64().unwrap(), 1.0, 0.0]);
    assert_eq!(emf::metric_values(&lines[1], &names), [0.0, 0.0, 1.0, 0.0]);
    assert_eq!(lines[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"], "nightshift");
    assert_eq!(lines[0]["Function"], "expire-logs");
}

#[tokio::test]
async fn the_built_binary_refuses_to_start_on_bad_configuration() {
    let sandbox = Sandbox::start();
    let table: [(&[(&str, &str)], &str); 3] = [
        (&[], "LOG_BUCKET is not set"),
        (
            &[("LOG_BUCKET", BUCKET), ("RETENTION_DAYS", "0")],
            "RETENTION_DAYS is \"0\"; expected a whole number from 1 to 3650",
        ),
        (&[("LOG_BUCKET", BUCKET), ("DRY_RUN", "yes")], "DRY_RUN is \"yes\"; expected true or false"),
    ];
    for (vars, message) in table {
        let process = FunctionProcess::spawn(&binary("expire-logs"), &binary_env(&sandbox, vars));
        match process.wait_for_exit(Duration::from_secs(20)) {
            Outcome::Exited { status, output } => {
                assert_ne!(status, Some(0), "{vars:?}");
                assert!(output.contains(message), "{vars:?}: {output}");
            }
            other => panic!("{vars:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_built_binary_fails_the_invocation_when_the_bucket_is_missing() {
    let sandbox = Sandbox::start();
    let env = binary_env(&sandbox, &[("LOG_BUCKET", "no-such-bucket")]);
    let mut process = FunctionProcess::spawn(&binary("expire-logs"), &env);
    match process.invoke(&event("expire-logs.schedule.json")) {
        Outcome::Error { error_type, error_message } => {
            assert_eq!(error_type, "BucketNotFound");
            assert!(error_message.contains("\"no-such-bucket\""), "{error_message}");
        }
        other => panic!("{other:?}"),
    }
    // A run that fails before it has a report still logs its line, with the error and RunFailed
    let lines = process.report_lines(1);
    assert_eq!(emf::metric_values(&lines[0], &["RunFailed"]), [1.0]);
    assert_eq!(lines[0]["error"]["errorType"], "BucketNotFound");
}
