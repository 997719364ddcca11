//! reset-dataspace against a local AWS: a drifted dataspace returns to its
//! manifest, the guard keeps it to what is tagged, and one failed participant
//! does not stop the others.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use lambda_runtime::{Context, LambdaEvent};
use nightshift::{FixedClock, LambdaFailure};
use nightshift_tests::platform::{MANIFEST_BUCKET, MANIFEST_KEY, mvd_manifest, seed_dataspace};
use nightshift_tests::runtime::{FunctionProcess, Outcome, binary};
use nightshift_tests::sandbox::Sandbox;
use nightshift_tests::wire::RequestCounter;
use nightshift_tests::{emf, event};
use reset_dataspace::{DidOutcome, ResetConfig, ResetDataspace, ResetError, Status};
use serde_json::{Value, json};

struct Dataspace {
    sandbox: Sandbox,
    ecs: aws_sdk_ecs::Client,
    s3: aws_sdk_s3::Client,
    wire: RequestCounter,
}

impl Dataspace {
    async fn seeded() -> Self {
        let sandbox = Sandbox::start();
        let (ecs, s3) = (sandbox.ecs(), sandbox.s3());
        seed_dataspace(&ecs, &s3).await;
        Self { sandbox, ecs, s3, wire: RequestCounter::default() }
    }

    fn function(&self, dry_run: bool) -> ResetDataspace {
        let uri = format!("s3://{MANIFEST_BUCKET}/{MANIFEST_KEY}");
        let sdk =
            self.sandbox.sdk_config_for("reset-dataspace", &[("DATASPACE_MANIFEST", &uri), ("DATASPACE_NAME", "mvd")]);
        let ecs = aws_sdk_ecs::config::Builder::from(&sdk).interceptor(self.wire.clone()).build();
        let s3 = aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).interceptor(self.wire.clone()).build();
        let config = ResetConfig {
            manifest_uri: format!("s3://{MANIFEST_BUCKET}/{MANIFEST_KEY}"),
            manifest_bucket: MANIFEST_BUCKET.into(),
            manifest_key: MANIFEST_KEY.into(),
            dataspace: "mvd".into(),
            dry_run,
        };
        ResetDataspace::new(
            config,
            aws_sdk_ecs::Client::from_conf(ecs),
            aws_sdk_s3::Client::from_conf(s3),
            Arc::new(FixedClock(chrono::Utc::now())),
        )
    }

    async fn put(&self, bucket: &str, key: &str, body: &str) {
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body.as_bytes().to_vec()))
            .send()
            .await
            .unwrap();
    }

    async fn keys(&self, bucket: &str) -> Vec<String> {
        let out = self.s3.list_object_versions().bucket(bucket).send().await.unwrap();
        let mut keys: Vec<String> = out.versions().iter().map(|v| v.key().unwrap().to_owned()).collect();
        keys.extend(out.delete_markers().iter().map(|m| format!("{} (marker)", m.key().unwrap())));
        keys.sort();
        keys
    }

    /// (desired count, task definition as stored) of every service, by cluster/service.
    async fn services(&self) -> BTreeMap<String, (i32, String)> {
        let mut all = BTreeMap::new();
        for cluster in ["gti", "selt", "ias"] {
            let arns = self.ecs.list_services().cluster(cluster).send().await.unwrap().service_arns().to_vec();
            let out = self.ecs.describe_services().cluster(cluster).set_services(Some(arns)).send().await.unwrap();
            for s in out.services() {
                let td = s.task_definition().unwrap_or_default();
                let td = td.rsplit('/').next().unwrap_or(td).to_owned();
                all.insert(format!("{cluster}/{}", s.service_name().unwrap()), (s.desired_count(), td));
            }
        }
        all
    }

    async fn did_document(&self, bucket: &str) -> Option<Value> {
        let out = self.s3.get_object().bucket(bucket).key(".well-known/did.json").send().await.ok()?;
        serde_json::from_slice(&out.body.collect().await.unwrap().to_vec()).ok()
    }

    /// Scales a DPF down, moves a connector to another revision, writes
    /// transfer data (versioned in one bucket), and changes a DID document.
    async fn drift(&self) {
        self.ecs.update_service().cluster("selt").service("dpf").desired_count(0).send().await.unwrap();
        self.ecs
            .update_service()
            .cluster("gti")
            .service("connector")
            .task_definition("gti-connector:2")
            .send()
            .await
            .unwrap();
        self.s3
            .put_bucket_versioning()
            .bucket("ias-data")
            .versioning_configuration(
                VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build(),
            )
            .send()
            .await
            .unwrap();
        for (bucket, key) in [
            ("gti-data", "transfers/2026-11-26/asset 1.parquet"),
            ("ias-data", "transfers/contract+7/turbine-specs.pdf"),
            ("ias-data", "transfers/contract+7/turbine-specs.pdf"),
        ] {
            self.put(bucket, key, "exchanged during the day").await;
        }
        self.s3.delete_object().bucket("ias-data").key("transfers/contract+7/turbine-specs.pdf").send().await.unwrap();
        self.put("gti-data", "catalog/assets.json", "not under the purge prefix").await;
        self.put("ias-did", ".well-known/did.json", r#"{"id": "did:web:ias.example.org", "tampered": true}"#).await;
        // All of it during the day, hours before the midnight reset.
        for bucket in ["gti-data", "ias-data", "ias-did"] {
            self.sandbox.backdate(bucket, "", 0.25);
        }
    }
}

fn declared() -> BTreeMap<String, (i32, String)> {
    let mut all = BTreeMap::new();
    for p in mvd_manifest()["participants"].as_array().unwrap() {
        let cluster = p["cluster"].as_str().unwrap();
        for s in p["services"].as_array().unwrap() {
            let service = s["service"].as_str().unwrap();
            let td = s["task_definition"].as_str().map_or(format!("{cluster}-{service}:1"), str::to_owned);
            all.insert(
                format!("{cluster}/{service}"),
                (i32::try_from(s["desired_count"].as_i64().unwrap()).unwrap(), td),
            );
        }
    }
    all
}

/// The scheduled event of a run due now (after the day's drift).
fn midnight() -> LambdaEvent<Value> {
    LambdaEvent::new(midnight_at(chrono::Utc::now()), Context::default())
}

fn midnight_at(at: chrono::DateTime<chrono::Utc>) -> Value {
    let mut payload = event("reset-dataspace.midnight.json");
    payload["time"] = json!(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    payload
}

fn did_of(participant: usize) -> Value {
    mvd_manifest()["participants"][participant]["did"]["document"].clone()
}

#[tokio::test]
async fn a_drifted_dataspace_returns_to_its_manifest_and_a_second_run_writes_only_restarts() {
    // Given the dataspace drifted during the day
    let ds = Dataspace::seeded().await;
    ds.drift().await;
    assert_ne!(ds.services().await, declared());

    // When the midnight reset runs
    let report = ds.function(false).handle(midnight()).await.unwrap();

    // Then every service is back at its declared count and revision
    assert_eq!(ds.services().await, declared());
    // And the transfer data is gone, every version of it, and nothing else
    assert_eq!(ds.keys("gti-data").await, ["catalog/assets.json"]);
    assert!(ds.keys("ias-data").await.is_empty());
    // And each DID document is where did:web resolution finds it
    for (i, bucket) in ["gti-did", "selt-did", "ias-did"].into_iter().enumerate() {
        assert_eq!(ds.did_document(bucket).await, Some(did_of(i)), "{bucket}");
    }
    let by_name: BTreeMap<&str, _> = report.participants.iter().map(|p| (p.name.as_str(), p)).collect();
    assert_eq!(by_name.len(), 3);
    assert!(report.participants.iter().all(|p| p.status == Status::Reset));
    assert_eq!(by_name["interstellar-assembly-services"].objects_purged, 3, "two versions and a delete marker");
    assert_eq!(by_name["galactic-turbine-industries"].services_restarted.len(), 4);
    assert_eq!(by_name["space-enforcer-laser-tec"].services_restarted[1].desired_count, 1);

    // And the same run again (a duplicate delivery) writes nothing, restarts nothing
    ds.wire.reset();
    let same = LambdaEvent::new(report_event(&report), Context::default());
    let again = ds.function(false).handle(same).await.unwrap();
    assert!(again.participants.iter().all(|p| p.objects_purged == 0));
    assert!(again.participants.iter().all(|p| p.did.as_ref().unwrap().outcome == DidOutcome::Unchanged));
    assert!(again.participants.iter().flat_map(|p| &p.services_restarted).all(|s| s.restarted_at.is_some()));
    assert_eq!((ds.wire.count("PutObject"), ds.wire.count("DeleteObjects"), ds.wire.count("UpdateService")), (0, 0, 0));

    // And the next night's run restarts the connectors again (their state is in memory) and writes nothing else
    ds.wire.reset();
    let next_night = ds.function(false).handle(midnight()).await.unwrap();
    assert!(next_night.participants.iter().all(|p| p.objects_purged == 0));
    assert_eq!((ds.wire.count("PutObject"), ds.wire.count("DeleteObjects")), (0, 0));
    assert_eq!(ds.wire.count("UpdateService"), 10);
}

/// The event of the run a report is of.
fn report_event(report: &reset_dataspace::ResetReport) -> Value {
    midnight_at(report.started)
}

#[tokio::test]
async fn a_retried_reset_keeps_what_happened_after_it_began() {
    // Given a reset that failed for one participant (its bucket lost the dataspace tag)
    let ds = Dataspace::seeded().await;
    ds.drift().await;
    ds.s3.delete_bucket_tagging().bucket("selt-data").send().await.unwrap();
    let run = midnight_at(chrono::Utc::now());
    let err = ds.function(false).handle(LambdaEvent::new(run.clone(), Context::default())).await.unwrap_err();
    assert_eq!(err.error_type(), "ResetFailed");

    // And, after it began, new transfer data, and a connector scaled up by its team
    ds.put("gti-data", "transfers/2026-11-27/asset 2.parquet", "exchanged after the reset").await;
    ds.ecs.update_service().cluster("ias").service("connector").desired_count(2).send().await.unwrap();
    let tagging = aws_sdk_s3::types::Tagging::builder()
        .tag_set(aws_sdk_s3::types::Tag::builder().key("nightshift:dataspace").value("mvd").build().unwrap())
        .build()
        .unwrap();
    ds.s3.put_bucket_tagging().bucket("selt-data").tagging(tagging).send().await.unwrap();

    // When Lambda retries the same run
    ds.wire.reset();
    let report = ds.function(false).handle(LambdaEvent::new(run, Context::default())).await.unwrap();

    // Then the failed participant is reset now, and the data written after the run began survives
    assert!(report.participants.iter().all(|p| p.status == Status::Reset));
    assert_eq!(ds.keys("gti-data").await, ["catalog/assets.json", "transfers/2026-11-27/asset 2.parquet"]);
    assert_eq!(ds.services().await["selt/dpf"].0, 1);
    // And only SELT's services and the scaled-up connector (no longer as declared) were restarted
    let mut restarted: Vec<String> = report
        .participants
        .iter()
        .flat_map(|p| {
            p.services_restarted
                .iter()
                .filter(|s| s.restarted_at.is_none())
                .map(move |s| format!("{}/{}", p.name, s.service))
        })
        .collect();
    restarted.sort();
    assert_eq!(
        restarted,
        [
            "interstellar-assembly-services/connector",
            "space-enforcer-laser-tec/connector",
            "space-enforcer-laser-tec/connector-ui",
            "space-enforcer-laser-tec/dpf"
        ]
    );
    assert_eq!(ds.wire.count("UpdateService"), 4);
}

#[tokio::test]
async fn a_scheduled_event_without_a_time_is_refused() {
    let ds = Dataspace::seeded().await;
    let mut untimed = event("reset-dataspace.midnight.json");
    untimed.as_object_mut().unwrap().remove("time");
    ds.wire.reset();
    let err = ds.function(false).handle(LambdaEvent::new(untimed, Context::default())).await.unwrap_err();
    assert_eq!(err.error_type(), "InvalidEvent");
    assert_eq!(err.to_string(), "invalid event: the EventBridge event has no `time`, so when it was due is unknown");
    assert_eq!(ds.wire.total(), 0);
}

#[tokio::test]
async fn an_untagged_resource_fails_its_participant_untouched_and_the_others_are_reset() {
    // Given the SELT data bucket without the dataspace tag, and drift everywhere
    let ds = Dataspace::seeded().await;
    ds.drift().await;
    ds.s3.delete_bucket_tagging().bucket("selt-data").send().await.unwrap();

    // When the reset runs
    let err = ds.function(false).handle(midnight()).await.unwrap_err();

    // Then it fails, naming the participant and the reason
    assert_eq!(err.error_type(), "ResetFailed");
    assert_eq!(
        err.to_string(),
        "1 of 3 participants failed: space-enforcer-laser-tec: bucket \"selt-data\" is not tagged nightshift:dataspace; nothing of space-enforcer-laser-tec was touched"
    );
    // And nothing of SELT was touched, while the others were reset
    let services = ds.services().await;
    assert_eq!(services["selt/dpf"].0, 0, "still drifted");
    assert_eq!(ds.did_document("selt-did").await, None);
    assert_eq!(services["gti/connector"], (1, "gti-connector:1".into()));
    assert_eq!(ds.did_document("ias-did").await, Some(did_of(2)));
}

#[tokio::test]
async fn a_manual_reset_touches_only_the_participants_it_names() {
    let ds = Dataspace::seeded().await;
    ds.drift().await;
    let report = ds
        .function(false)
        .handle(LambdaEvent::new(event("reset-dataspace.manual.json"), Context::default()))
        .await
        .unwrap();
    assert_eq!(report.participants.len(), 1);
    assert_eq!(report.trigger, nightshift::Trigger::Manual);
    let services = ds.services().await;
    assert_eq!(services["selt/dpf"].0, 1);
    assert_eq!(services["gti/connector"].1, "gti-connector:2", "GTI was not named");
    assert_eq!(ds.keys("gti-data").await.len(), 2);

    let unknown = LambdaEvent::new(json!({"participants": ["acme-corp"]}), Context::default());
    let err = ds.function(false).handle(unknown).await.unwrap_err();
    assert_eq!(err.error_type(), "InvalidEvent");
    assert!(err.to_string().contains("no participant \"acme-corp\""), "{err}");
}

#[tokio::test]
async fn a_manifest_that_cannot_be_read_or_is_invalid_touches_nothing() {
    let ds = Dataspace::seeded().await;
    ds.drift().await;
    let before = ds.services().await;

    let mut manifest = mvd_manifest();
    manifest["participants"][2]["services"][1]["desired_count"] = json!(-3);
    ds.put(MANIFEST_BUCKET, MANIFEST_KEY, &manifest.to_string()).await;
    ds.wire.reset();
    let err = ds.function(false).handle(midnight()).await.unwrap_err();
    assert!(matches!(err, ResetError::ManifestInvalid { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "manifest s3://{MANIFEST_BUCKET}/{MANIFEST_KEY} is invalid: participants[2].services[1].desired_count: -3 is not a count from 0 to 10000"
        )
    );
    assert_eq!(ds.wire.all().into_keys().collect::<Vec<_>>(), ["GetObject"]);

    ds.s3.delete_object().bucket(MANIFEST_BUCKET).key(MANIFEST_KEY).send().await.unwrap();
    let err = ds.function(false).handle(midnight()).await.unwrap_err();
    assert_eq!(err.error_type(), "ManifestUnreadable");
    assert!(
        err.to_string().starts_with(&format!("manifest s3://{MANIFEST_BUCKET}/{MANIFEST_KEY} cannot be read")),
        "{err}"
    );
    assert_eq!(ds.services().await, before);
}

#[tokio::test]
async fn a_manifest_naming_another_dataspace_touches_nothing_even_where_that_dataspace_is_tagged() {
    // Given the whole dataspace tagged nightshift:dataspace=other (as another stack's would be), and a manifest
    // edited to name that dataspace, while this stack resets mvd (DATASPACE_NAME)
    let ds = Dataspace::seeded().await;
    ds.drift().await;
    let other = |key: &str| aws_sdk_ecs::types::Tag::builder().key(key).value("other").build();
    for p in mvd_manifest()["participants"].as_array().unwrap() {
        let cluster = p["cluster"].as_str().unwrap();
        let names: Vec<String> =
            p["services"].as_array().unwrap().iter().map(|s| s["service"].as_str().unwrap().to_owned()).collect();
        let described = ds.ecs.describe_services().cluster(cluster).set_services(Some(names)).send().await.unwrap();
        for service in described.services() {
            let arn = service.service_arn().unwrap();
            ds.ecs.tag_resource().resource_arn(arn).tags(other("nightshift:dataspace")).send().await.unwrap();
        }
        let buckets =
            std::iter::once(&p["did"]["bucket"]).chain(p["purge"].as_array().unwrap().iter().map(|x| &x["bucket"]));
        for bucket in buckets {
            let tag = aws_sdk_s3::types::Tag::builder().key("nightshift:dataspace").value("other").build().unwrap();
            let tagging = aws_sdk_s3::types::Tagging::builder().tag_set(tag).build().unwrap();
            ds.s3.put_bucket_tagging().bucket(bucket.as_str().unwrap()).tagging(tagging).send().await.unwrap();
        }
    }
    let mut manifest = mvd_manifest();
    manifest["dataspace"] = json!("other");
    ds.put(MANIFEST_BUCKET, MANIFEST_KEY, &manifest.to_string()).await;
    let (services, data) = (ds.services().await, ds.keys("gti-data").await);
    ds.wire.reset();

    // When midnight comes
    let err = ds.function(false).handle(midnight()).await.unwrap_err();

    // Then the run is refused with both names, having read the manifest and nothing else
    assert_eq!(err.error_type(), "ManifestInvalid");
    assert_eq!(
        err.to_string(),
        format!(
            "manifest s3://{MANIFEST_BUCKET}/{MANIFEST_KEY} is invalid: it names the dataspace \"other\", and this stack \
             resets \"mvd\" (DATASPACE_NAME); nothing was touched"
        )
    );
    assert_eq!(ds.wire.all().into_keys().collect::<Vec<_>>(), ["GetObject"]);
    assert_eq!((ds.services().await, ds.keys("gti-data").await), (services, data));
}

#[tokio::test]
async fn dry_run_reports_the_reset_and_changes_nothing() {
    let ds = Dataspace::seeded().await;
    ds.drift().await;
    let before = ds.services().await;
    let report = ds.function(true).handle(midnight()).await.unwrap();
    assert!(report.dry_run);
    assert!(report.participants.iter().all(|p| p.did.as_ref().unwrap().outcome == DidOutcome::Published));
    assert_eq!(report.participants[0].objects_purged, 1);
    assert_eq!(ds.services().await, before);
    assert_eq!(ds.keys("gti-data").await.len(), 2);
    assert_eq!(ds.did_document("gti-did").await, None);
}

#[tokio::test]
async fn the_built_binary_resets_the_dataspace() {
    let ds = Dataspace::seeded().await;
    ds.drift().await;
    let mut env = ds.sandbox.function_env();
    env.push(("DATASPACE_MANIFEST".into(), format!("s3://{MANIFEST_BUCKET}/{MANIFEST_KEY}")));
    env.push(("DATASPACE_NAME".into(), "mvd".into()));
    let mut process = FunctionProcess::spawn(&binary("reset-dataspace"), &env);
    let report = process.invoke(&midnight_at(chrono::Utc::now())).response();
    assert_eq!(report["dataspace"], "mvd");
    assert_eq!(report["trigger"]["kind"], "scheduled");
    assert!(report["participants"].as_array().unwrap().iter().all(|p| p["status"] == "reset"));
    assert_eq!(ds.services().await, declared());
    let lines = process.report_lines(1);
    let names = ["ParticipantsReset", "ParticipantsFailed", "ObjectsPurged", "RunFailed"];
    assert_eq!(emf::metric_values(&lines[0], &names), [3.0, 0.0, 4.0, 0.0]);

    let bad = FunctionProcess::spawn(&binary("reset-dataspace"), &ds.sandbox.function_env());
    match bad.wait_for_exit(std::time::Duration::from_secs(20)) {
        Outcome::Exited { status, output } => {
            assert_ne!(status, Some(0));
            assert!(output.contains("DATASPACE_MANIFEST is not set"), "{output}");
        }
        other => panic!("{other:?}"),
    }
}
