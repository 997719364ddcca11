//! `reset-dataspace`: returns the public dataspace to the initial setup its
//! manifest declares, every midnight or on demand.
//!
//! Parse (which participants, and when the run began) -> read and validate
//! the whole manifest -> per participant, concurrently: observe (the guard's
//! tags, the services' deployments, the DID document) -> plan
//! (`plan_participant`: the guard, the DID document, the restarts) -> apply
//! (purge, DID document, restart) -> report.
//!
//! A run has a start: the schedule's `time`, or for a manual event its own
//! `time` if it has one, else when the invocation began. The same run again
//! (Lambda's retry, a duplicate delivery) undoes nothing that happened after
//! that start: it purges only versions last modified before it, leaves a DID
//! document written since, and restarts no service whose current deployment
//! began since, at the declared count and revision.

pub mod calls;
pub mod manifest;

use std::time::Instant;

use aws_sdk_ecs::types::Service;
use chrono::{DateTime, Timelike, Utc};
use futures_util::future::join_all;
use lambda_runtime::{Diagnostic, LambdaEvent};
use nightshift::config::{self, ConfigError, Vars};
use nightshift::s3_sweep::{Deadline, S3Error, Sweep};
use nightshift::{Clock, LambdaFailure, Trigger};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use tracing::{info, warn};

use calls::DATASPACE_TAG;
use manifest::{Manifest, Participant};

pub const FUNCTION: &str = "reset-dataspace";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetConfig {
    /// `DATASPACE_MANIFEST`, as given.
    pub manifest_uri: String,
    pub manifest_bucket: String,
    pub manifest_key: String,
    /// `DRY_RUN`.
    pub dry_run: bool,
}

impl ResetConfig {
    pub fn from_vars(vars: &impl Vars) -> Result<Self, ConfigError> {
        let expected = "an S3 URI of the manifest, s3://bucket/key";
        let uri = config::required(vars, "DATASPACE_MANIFEST", expected)?;
        let (bucket, key) =
            manifest::parse_s3_uri(&uri).ok_or_else(|| ConfigError::new("DATASPACE_MANIFEST", Some(&uri), expected))?;
        Ok(Self { manifest_uri: uri, manifest_bucket: bucket, manifest_key: key, dry_run: config::dry_run(vars)? })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    #[error("manifest {uri} cannot be read: {message}")]
    ManifestUnreadable { uri: String, message: String },
    #[error("manifest {uri} is invalid: {message}")]
    ManifestInvalid { uri: String, message: String },
    /// Some participants failed; the others were reset.
    #[error("{} of {total} participants failed: {}", failures.len(), failures.join("; "))]
    ResetFailed { total: usize, failures: Vec<String> },
}

impl LambdaFailure for ResetError {
    fn error_type(&self) -> &'static str {
        match self {
            Self::InvalidEvent(_) => "InvalidEvent",
            Self::ManifestUnreadable { .. } => "ManifestUnreadable",
            Self::ManifestInvalid { .. } => "ManifestInvalid",
            Self::ResetFailed { .. } => "ResetFailed",
        }
    }
}

impl From<ResetError> for Diagnostic {
    fn from(err: ResetError) -> Self {
        err.diagnostic()
    }
}

/// `{"participants": [...]}` resets those; any other event resets all.
pub fn selection(payload: &Value) -> Result<Option<Vec<String>>, String> {
    let Some(list) = payload.get("participants") else {
        return Ok(None);
    };
    let names = list.as_array().ok_or("participants: must be a list of participant names")?;
    names
        .iter()
        .enumerate()
        .map(|(i, n)| n.as_str().map(str::to_owned).ok_or_else(|| format!("participants[{i}]: must be a name")))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// When the run began: the schedule's time, a manual event's `time`, else `now`.
pub fn run_start(trigger: &Trigger, payload: &Value, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    match trigger {
        Trigger::Scheduled { time, .. } => Ok(*time),
        Trigger::Manual => match payload.get("time") {
            None => Ok(now),
            Some(Value::String(text)) => DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| format!("time: {text:?} is not an RFC 3339 time ({e})")),
            Some(other) => Err(format!("time: must be an RFC 3339 time, not {other}")),
        },
    }
}

/// When the service's current deployment began, if it began at or after
/// `start` and the service is at the declared count and revision: this run
/// (or another since it began) restarted it already.
pub fn restarted_since(
    service: &Service,
    desired_count: i64,
    task_definition: Option<&str>,
    start: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let primary = service.deployments().iter().find(|d| d.status() == Some("PRIMARY"))?;
    let at = primary.created_at()?;
    let at = DateTime::<Utc>::from_timestamp(at.secs(), at.subsec_nanos())?;
    let revision = nightshift::ecs::revision_of;
    let same_revision =
        task_definition.is_none_or(|want| service.task_definition().is_some_and(|td| revision(td) == revision(want)));
    (at >= start && i64::from(service.desired_count()) == desired_count && same_revision).then_some(at)
}

/// The guard: every service and bucket of the participant exists and carries
/// `nightshift:dataspace=<dataspace>`. `Err` says the first one that does not.
pub fn guard(
    dataspace: &str,
    participant: &Participant,
    services: &[Service],
    buckets: &[(String, Result<Option<String>, S3Error>)],
) -> Result<(), String> {
    for spec in &participant.services {
        let found =
            services.iter().find(|s| s.service_name() == Some(spec.service.as_str()) && s.status() != Some("INACTIVE"));
        let Some(service) = found else {
            return Err(format!("service {:?} not found in cluster {:?}", spec.service, participant.cluster));
        };
        let tag = nightshift::ecs::tag_value(service.tags(), DATASPACE_TAG);
        if tag != Some(dataspace) {
            return Err(match tag {
                None => format!("service {}/{} is not tagged {DATASPACE_TAG}", participant.cluster, spec.service),
                Some(other) => format!(
                    "service {}/{} is tagged {DATASPACE_TAG}={other}, not {dataspace}",
                    participant.cluster, spec.service
                ),
            });
        }
    }
    for (bucket, tag) in buckets {
        match tag {
            Err(err) => return Err(err.to_string()),
            Ok(None) => return Err(format!("bucket {bucket:?} is not tagged {DATASPACE_TAG}")),
            Ok(Some(other)) if other != dataspace => {
                return Err(format!("bucket {bucket:?} is tagged {DATASPACE_TAG}={other}, not {dataspace}"));
            }
            Ok(Some(_)) => {}
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceReset {
    pub service: String,
    pub desired_count: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_definition: Option<String>,
    /// Not restarted again: its current deployment began then, after this run's start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restarted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DidOutcome {
    Published,
    Unchanged,
    /// Another document was written after this run began; it is left as it is.
    Kept,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DidReport {
    pub bucket: String,
    pub key: String,
    pub outcome: DidOutcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Reset,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParticipantReport {
    pub name: String,
    pub status: Status,
    /// Restarted (with `DRY_RUN`, would be), with their counts.
    pub services_restarted: Vec<ServiceReset>,
    pub objects_purged: u64,
    pub did: Option<DidReport>,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResetReport {
    pub function: &'static str,
    pub dry_run: bool,
    pub trigger: Trigger,
    /// When this run began: nothing written or restarted since is undone.
    pub started: DateTime<Utc>,
    pub manifest: String,
    pub dataspace: String,
    pub participants: Vec<ParticipantReport>,
}

impl nightshift::notify::Notable for ResetReport {
    fn notable(&self) -> Option<nightshift::notify::Notice> {
        let reset: Vec<&str> =
            self.participants.iter().filter(|p| p.status == Status::Reset).map(|p| p.name.as_str()).collect();
        if self.dry_run || reset.is_empty() {
            return None;
        }
        let purged: u64 = self.participants.iter().map(|p| p.objects_purged).sum();
        let restarted: usize = self.participants.iter().map(|p| p.services_restarted.len()).sum();
        Some(nightshift::notify::Notice {
            tone: nightshift::notify::Tone::Info,
            title: format!("Dataspace reset: {}", self.dataspace),
            summary: format!(
                "{} of {} participants are back to their initial setup.",
                reset.len(),
                self.participants.len()
            ),
            facts: vec![
                ("Participants".into(), reset.join(", ")),
                ("Services restarted".into(), restarted.to_string()),
                ("Objects purged".into(), purged.to_string()),
            ],
            link: None,
        })
    }
}

impl nightshift::Measured for ResetReport {
    fn metrics(&self) -> Vec<nightshift::Metric> {
        use nightshift::Metric;
        let count = |status: Status| self.participants.iter().filter(|p| p.status == status).count();
        let purged: u64 = self.participants.iter().map(|p| p.objects_purged).sum();
        vec![
            Metric::count("ParticipantsReset", count(Status::Reset)),
            Metric::count("ParticipantsFailed", count(Status::Failed)),
            Metric { name: "ObjectsPurged", value: purged as f64, unit: nightshift::report::Unit::Count },
        ]
    }
}

pub struct ResetDataspace {
    config: ResetConfig,
    ecs: aws_sdk_ecs::Client,
    s3: aws_sdk_s3::Client,
    clock: Arc<dyn Clock>,
}

impl ResetDataspace {
    pub fn new(config: ResetConfig, ecs: aws_sdk_ecs::Client, s3: aws_sdk_s3::Client, clock: Arc<dyn Clock>) -> Self {
        Self { config, ecs, s3, clock }
    }

    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<ResetReport, ResetError> {
        nightshift::conclude(FUNCTION, self.run(event).await)
    }

    async fn run(&self, event: LambdaEvent<Value>) -> nightshift::Ran<ResetReport, ResetError> {
        let only = selection(&event.payload).map_err(ResetError::InvalidEvent)?;
        let trigger = Trigger::parse(&event.payload).map_err(ResetError::InvalidEvent)?;
        let started = run_start(&trigger, &event.payload, self.clock.now()).map_err(ResetError::InvalidEvent)?;
        let uri = self.config.manifest_uri.clone();
        let text = calls::get_object(&self.s3, &self.config.manifest_bucket, &self.config.manifest_key)
            .await
            .map_err(|message| ResetError::ManifestUnreadable { uri: uri.clone(), message })?;
        let manifest =
            Manifest::parse(&text).map_err(|message| ResetError::ManifestInvalid { uri: uri.clone(), message })?;
        let chosen = manifest.select(only.as_deref()).map_err(ResetError::InvalidEvent)?;
        info!(dataspace = %manifest.dataspace, participants = chosen.len(), %started, dry_run = self.config.dry_run, "reset");

        let deadline = Deadline::new(event.context.deadline, self.clock.now());
        let participants =
            join_all(chosen.iter().map(|p| self.reset_participant(&manifest.dataspace, p, started, deadline))).await;
        let failures: Vec<String> =
            participants.iter().filter_map(|p| p.error.as_ref().map(|e| format!("{}: {e}", p.name))).collect();
        let report = ResetReport {
            function: FUNCTION,
            dry_run: self.config.dry_run,
            trigger,
            started,
            manifest: uri,
            dataspace: manifest.dataspace.clone(),
            participants,
        };
        let error =
            (!failures.is_empty()).then_some(ResetError::ResetFailed { total: report.participants.len(), failures });
        Ok((report, error))
    }

    async fn reset_participant(
        &self,
        dataspace: &str,
        p: &Participant,
        started: DateTime<Utc>,
        deadline: Deadline,
    ) -> ParticipantReport {
        let timer = Instant::now();
        let mut report = ParticipantReport {
            name: p.name.clone(),
            status: Status::Reset,
            services_restarted: Vec::new(),
            objects_purged: 0,
            did: None,
            duration_ms: 0,
            error: None,
        };
        if let Err(err) = self.reset_steps(dataspace, p, started, deadline, &mut report).await {
            warn!(participant = %p.name, error = %err, "participant failed");
            report.status = Status::Failed;
            report.error = Some(err);
        }
        report.duration_ms = u64::try_from(timer.elapsed().as_millis()).unwrap_or(u64::MAX);
        report
    }

    /// Observe, plan (the guard first), then apply: purge, DID document, and
    /// restart, in that order so the connectors come back to clean data and a
    /// published identity.
    async fn reset_steps(
        &self,
        dataspace: &str,
        p: &Participant,
        started: DateTime<Utc>,
        deadline: Deadline,
        report: &mut ParticipantReport,
    ) -> Result<(), String> {
        let (services, buckets) = self.observe_guarded(p).await?;
        // Nothing of a participant the guard refuses is read further or touched.
        guard(dataspace, p, &services, &buckets).map_err(|why| format!("{why}; nothing of {} was touched", p.name))?;
        let key = Manifest::did_key(p);
        let document = calls::current_document(&self.s3, &p.did.bucket, &key).await.map_err(|e| e.to_string())?;
        let plan = plan_participant(p, &services, document, started);
        self.apply(p, &plan, deadline, report).await?;
        info!(participant = %p.name, purged = report.objects_purged, did = ?report.did, restarted = report.services_restarted.len(), "participant reset");
        Ok(())
    }

    /// What the guard reads: the participant's services, and each bucket's `nightshift:dataspace` tag.
    async fn observe_guarded(
        &self,
        p: &Participant,
    ) -> Result<(Vec<Service>, Vec<(String, Result<Option<String>, S3Error>)>), String> {
        let names: Vec<String> = p.services.iter().map(|s| s.service.clone()).collect();
        let services =
            nightshift::ecs::describe_services(&self.ecs, &p.cluster, &names).await.map_err(|e| e.to_string())?;
        let mut buckets: Vec<(String, Result<Option<String>, S3Error>)> = Vec::new();
        for bucket in std::iter::once(&p.did.bucket).chain(p.purge.iter().map(|x| &x.bucket)) {
            if !buckets.iter().any(|(b, _)| b == bucket) {
                buckets.push((bucket.clone(), calls::bucket_dataspace(&self.s3, bucket).await));
            }
        }
        Ok((services, buckets))
    }

    /// Carries the plan out; with `DRY_RUN`, counts what the purge would
    /// delete and writes nothing.
    async fn apply(
        &self,
        p: &Participant,
        plan: &ParticipantPlan,
        deadline: Deadline,
        report: &mut ParticipantReport,
    ) -> Result<(), String> {
        for purge in &p.purge {
            let sweep = Sweep {
                s3: self.s3.clone(),
                bucket: purge.bucket.clone(),
                prefix: purge.prefix.clone(),
                dry_run: self.config.dry_run,
            };
            // Only what was there when the run began: a retry keeps what was written since.
            let tally = sweep
                .run(self.clock.as_ref(), deadline, None, |listed| listed.last_modified < plan.purge_before)
                .await
                .map_err(|e| e.to_string())?
                .tally;
            report.objects_purged += tally.deleted;
            if let Some(first) = tally.errors.first() {
                return Err(format!(
                    "{} objects in s3://{}/{} could not be deleted (first: {}: {})",
                    tally.errors_total, purge.bucket, purge.prefix, first.key, first.message
                ));
            }
            if !tally.complete {
                return Err(format!("the purge of s3://{}/{} stopped at the deadline", purge.bucket, purge.prefix));
            }
        }
        if plan.did.outcome == DidOutcome::Published && !self.config.dry_run {
            calls::put_document(&self.s3, &plan.did.bucket, &plan.did.key, &p.did.document)
                .await
                .map_err(|e| e.to_string())?;
        }
        report.did = Some(plan.did.clone());
        for restart in &plan.restarts {
            if restart.restarted_at.is_none() && !self.config.dry_run {
                let desired = i32::try_from(restart.desired_count).unwrap_or(i32::MAX);
                let td = restart.task_definition.as_deref();
                calls::restart_service(&self.ecs, &p.cluster, &restart.service, desired, td).await?;
            }
            report.services_restarted.push(restart.clone());
        }
        Ok(())
    }
}

/// One participant's reset, decided before anything changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantPlan {
    /// The purges delete what was last modified before this (the run's start, to the second).
    pub purge_before: DateTime<Utc>,
    pub did: DidReport,
    /// Each declared service: restarted, unless `restarted_at` says it was since the run began.
    pub restarts: Vec<ServiceReset>,
}

/// Decides the reset of a participant the guard let through, from its
/// services and its DID document (with when it was written) now.
pub fn plan_participant(
    p: &Participant,
    services: &[Service],
    document: Option<(Value, DateTime<Utc>)>,
    started: DateTime<Utc>,
) -> ParticipantPlan {
    // S3 gives times to the second: what was written in the second the run began counts as after it.
    let purge_before = started.with_nanosecond(0).unwrap_or(started);
    let key = Manifest::did_key(p);
    // A document the purge deletes (under a purged prefix, written before the run) is not there to keep.
    let purged = p.purge.iter().any(|x| x.bucket == p.did.bucket && key.starts_with(&x.prefix));
    let current = document.as_ref().filter(|(_, written)| !(purged && *written < purge_before));
    let did = DidReport {
        bucket: p.did.bucket.clone(),
        key,
        outcome: did_outcome(current.map(|(d, w)| (d, *w)), &p.did.document, purge_before),
    };
    let restarts = p
        .services
        .iter()
        .map(|spec| {
            let service = services.iter().find(|s| s.service_name() == Some(spec.service.as_str()));
            ServiceReset {
                service: spec.service.clone(),
                desired_count: spec.desired_count,
                task_definition: spec.task_definition.clone(),
                restarted_at: service
                    .and_then(|s| restarted_since(s, spec.desired_count, spec.task_definition.as_deref(), started)),
            }
        })
        .collect();
    ParticipantPlan { purge_before, did, restarts }
}

/// The DID document's fate: unchanged when it is the declared one, kept when
/// another was written since the run began, else published.
pub fn did_outcome(current: Option<(&Value, DateTime<Utc>)>, declared: &Value, since: DateTime<Utc>) -> DidOutcome {
    match current {
        Some((document, _)) if document == declared => DidOutcome::Unchanged,
        Some((_, written)) if written >= since => DidOutcome::Kept,
        _ => DidOutcome::Published,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::Tag;
    use serde_json::json;

    fn participant() -> Participant {
        let m = Manifest::parse(include_bytes!("../../../dataspace/mvd.json")).unwrap();
        m.participants[1].clone()
    }

    fn service(name: &str, tag: Option<&str>) -> Service {
        let mut b = Service::builder().service_name(name).status("ACTIVE");
        if let Some(tag) = tag {
            b = b.tags(Tag::builder().key(DATASPACE_TAG).value(tag).build());
        }
        b.build()
    }

    fn tagged(p: &Participant, tag: Option<&str>) -> Vec<Service> {
        p.services.iter().map(|s| service(&s.service, tag)).collect()
    }

    fn buckets(p: &Participant, tag: Option<&str>) -> Vec<(String, Result<Option<String>, S3Error>)> {
        std::iter::once(&p.did.bucket)
            .chain(p.purge.iter().map(|x| &x.bucket))
            .map(|b| (b.clone(), Ok(tag.map(str::to_owned))))
            .collect()
    }

    #[test]
    fn the_guard_lets_through_only_what_is_tagged_with_the_dataspace() {
        let p = participant();
        assert_eq!(guard("mvd", &p, &tagged(&p, Some("mvd")), &buckets(&p, Some("mvd"))), Ok(()));
        let table = [
            (tagged(&p, None), buckets(&p, Some("mvd")), "service selt/connector is not tagged nightshift:dataspace"),
            (
                tagged(&p, Some("prod")),
                buckets(&p, Some("mvd")),
                "service selt/connector is tagged nightshift:dataspace=prod, not mvd",
            ),
            (
                tagged(&p, Some("mvd"))[1..].to_vec(),
                buckets(&p, Some("mvd")),
                "service \"connector\" not found in cluster \"selt\"",
            ),
            (tagged(&p, Some("mvd")), buckets(&p, None), "bucket \"selt-did\" is not tagged nightshift:dataspace"),
            (
                tagged(&p, Some("mvd")),
                buckets(&p, Some("other")),
                "bucket \"selt-did\" is tagged nightshift:dataspace=other, not mvd",
            ),
        ];
        for (services, buckets, want) in table {
            assert_eq!(guard("mvd", &p, &services, &buckets), Err(want.to_owned()));
        }
    }

    #[test]
    fn the_event_selects_participants_or_all() {
        assert_eq!(selection(&json!({})), Ok(None));
        assert_eq!(selection(&json!({"version": "0", "detail-type": "Scheduled Event"})), Ok(None));
        assert_eq!(selection(&json!({"participants": ["a", "b"]})), Ok(Some(vec!["a".into(), "b".into()])));
        assert!(selection(&json!({"participants": "a"})).unwrap_err().contains("must be a list"));
        assert!(selection(&json!({"participants": ["a", 3]})).unwrap_err().starts_with("participants[1]"));
    }

    #[test]
    fn a_run_starts_at_its_schedule_or_when_it_began() {
        let now: DateTime<Utc> = "2026-11-27T00:00:03Z".parse().unwrap();
        let due: DateTime<Utc> = "2026-11-27T00:00:00Z".parse().unwrap();
        let scheduled = Trigger::Scheduled { id: "x".into(), time: due };
        assert_eq!(run_start(&scheduled, &json!({}), now), Ok(due));
        assert_eq!(run_start(&Trigger::Manual, &json!({"participants": ["a"]}), now), Ok(now));
        assert_eq!(run_start(&Trigger::Manual, &json!({"time": "2026-11-27T00:00:00Z"}), now), Ok(due));
        assert!(run_start(&Trigger::Manual, &json!({"time": "midnight"}), now).unwrap_err().starts_with("time: "));
        assert!(run_start(&Trigger::Manual, &json!({"time": 0}), now).unwrap_err().starts_with("time: must be"));
    }

    #[test]
    fn a_service_counts_as_restarted_when_its_deployment_began_since_and_it_is_as_declared() {
        use aws_sdk_ecs::primitives::DateTime as AwsTime;
        use aws_sdk_ecs::types::Deployment;
        let start: DateTime<Utc> = "2026-11-27T00:00:00Z".parse().unwrap();
        let service = |created: i64, count: i32, td: &str| {
            Service::builder()
                .desired_count(count)
                .task_definition(format!("arn:aws:ecs:us-east-1:123456789012:task-definition/{td}"))
                .deployments(
                    Deployment::builder().status("ACTIVE").created_at(AwsTime::from_secs(created + 99)).build(),
                )
                .deployments(Deployment::builder().status("PRIMARY").created_at(AwsTime::from_secs(created)).build())
                .build()
        };
        let at = start.timestamp();
        // (deployment began, count, revision, declared count, declared revision, counts as restarted)
        let table = [
            (at + 5, 1, "gti-connector:1", 1, Some("gti-connector:1"), true),
            (at + 5, 1, "gti-connector:1", 1, None, true),
            (at, 1, "gti-connector:1", 1, None, true),
            (at - 5, 1, "gti-connector:1", 1, None, false),
            (at + 5, 2, "gti-connector:1", 1, None, false),
            (at + 5, 1, "gti-connector:2", 1, Some("gti-connector:1"), false),
        ];
        for (created, count, td, declared, declared_td, restarted) in table {
            let found = restarted_since(&service(created, count, td), declared, declared_td, start);
            assert_eq!(found.is_some(), restarted, "{created} {count} {td} {declared} {declared_td:?}");
        }
    }

    #[test]
    fn the_did_document_is_published_unless_it_is_the_declared_one_or_written_since_the_run_began() {
        let start: DateTime<Utc> = "2026-11-27T00:00:00Z".parse().unwrap();
        let (declared, other) = (json!({"id": "did:web:a"}), json!({"id": "did:web:b"}));
        let before = start - chrono::Duration::seconds(1);
        let table = [
            (None, DidOutcome::Published),
            (Some((&declared, before)), DidOutcome::Unchanged),
            (Some((&declared, start)), DidOutcome::Unchanged),
            (Some((&other, before)), DidOutcome::Published),
            (Some((&other, start)), DidOutcome::Kept),
        ];
        for (current, want) in table {
            assert_eq!(did_outcome(current, &declared, start), want, "{current:?}");
        }
    }

    #[test]
    fn the_plan_restarts_each_declared_service_unless_restarted_since_and_purges_to_the_second() {
        use aws_sdk_ecs::primitives::DateTime as AwsTime;
        use aws_sdk_ecs::types::Deployment;
        // Given a run that began mid-second, one service restarted since and one not
        let p = participant();
        let start: DateTime<Utc> = "2026-11-27T00:00:00.600Z".parse().unwrap();
        let since = AwsTime::from_secs(start.timestamp() + 5);
        let services: Vec<Service> = p
            .services
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let created = if i == 0 { since } else { AwsTime::from_secs(start.timestamp() - 60) };
                Service::builder()
                    .service_name(&spec.service)
                    .desired_count(i32::try_from(spec.desired_count).unwrap())
                    .set_task_definition(spec.task_definition.clone())
                    .deployments(Deployment::builder().status("PRIMARY").created_at(created).build())
                    .build()
            })
            .collect();
        // When the participant is planned with its declared document in place
        let written = start - chrono::Duration::hours(1);
        let plan = plan_participant(&p, &services, Some((p.did.document.clone(), written)), start);
        // Then only the service not restarted since is restarted, the document is left, and the purge cuts at the second
        let restarted: Vec<bool> = plan.restarts.iter().map(|r| r.restarted_at.is_some()).collect();
        assert_eq!(restarted.len(), p.services.len());
        assert!(restarted[0] && restarted[1..].iter().all(|r| !r));
        assert_eq!(plan.did.outcome, DidOutcome::Unchanged);
        assert_eq!(plan.purge_before, "2026-11-27T00:00:00Z".parse::<DateTime<Utc>>().unwrap());
    }

    #[test]
    fn the_manifest_location_must_be_an_s3_uri() {
        let c = ResetConfig::from_vars(&[("DATASPACE_MANIFEST", "s3://mvd-config/mvd.json")]).unwrap();
        assert_eq!((c.manifest_bucket.as_str(), c.manifest_key.as_str()), ("mvd-config", "mvd.json"));
        let err = ResetConfig::from_vars(&[("DATASPACE_MANIFEST", "mvd.json")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "DATASPACE_MANIFEST is \"mvd.json\"; expected an S3 URI of the manifest, s3://bucket/key"
        );
        assert!(ResetConfig::from_vars(&[("OTHER", "x")]).is_err());
    }
}
