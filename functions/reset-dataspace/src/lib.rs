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
pub mod plan;

use std::time::Instant;

use aws_sdk_ecs::types::Service;
use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use lambda_runtime::{Diagnostic, LambdaEvent};
use nightshift::config::{self, ConfigError, Vars};
use nightshift::s3_sweep::{Deadline, S3Error, Sweep};
use nightshift::{Clock, LambdaFailure, Trigger};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use tracing::{info, warn};

pub use calls::DATASPACE_TAG;
use manifest::{Manifest, Participant};
use plan::{ParticipantPlan, guard, plan_participant, run_start, selection};

pub const FUNCTION: &str = "reset-dataspace";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetConfig {
    /// `DATASPACE_MANIFEST`, as given.
    pub manifest_uri: String,
    pub manifest_bucket: String,
    pub manifest_key: String,
    /// `DATASPACE_NAME`: the stack's dataspace (its `DataspaceName`), which the
    /// manifest must name: the function may restart only services tagged
    /// `nightshift:dataspace=<it>`, so the manifest alone cannot point it elsewhere.
    pub dataspace: String,
    /// `DRY_RUN`.
    pub dry_run: bool,
}

impl ResetConfig {
    pub fn from_vars(vars: &impl Vars) -> Result<Self, ConfigError> {
        let expected = "an S3 URI of the manifest, s3://bucket/key";
        let uri = config::required(vars, "DATASPACE_MANIFEST", expected)?;
        let (bucket, key) =
            manifest::parse_s3_uri(&uri).ok_or_else(|| ConfigError::new("DATASPACE_MANIFEST", Some(&uri), expected))?;
        let named =
            "the dataspace this stack resets (the template's DataspaceName), as nightshift:dataspace tags name it";
        let dataspace = config::required(vars, "DATASPACE_NAME", named)?;
        if nightshift::ecs::tag_problem(DATASPACE_TAG, &dataspace).is_some() {
            return Err(ConfigError::new("DATASPACE_NAME", Some(&dataspace), named));
        }
        Ok(Self {
            manifest_uri: uri,
            manifest_bucket: bucket,
            manifest_key: key,
            dataspace,
            dry_run: config::dry_run(vars)?,
        })
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
    /// Who asked, for a reset by hand (`nightshift reset` puts the caller in `"by"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
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
        let mut dry = None;
        let this = config::dry_if_asked(self, self.config.dry_run, &event.payload, &mut dry, Self::dry_twin);
        nightshift::conclude(FUNCTION, this.run(event).await)
    }

    /// This function as with `DRY_RUN`, for one run asked to change nothing (`"dryRun": true`).
    fn dry_twin(&self) -> Self {
        let config = ResetConfig { dry_run: true, ..self.config.clone() };
        Self { config, ecs: self.ecs.clone(), s3: self.s3.clone(), clock: self.clock.clone() }
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
        // Before anything is read of a participant: the manifest names this stack's dataspace, the only one
        // whose services it may restart, so a guard that lets a participant through also lets its restart.
        if manifest.dataspace != self.config.dataspace {
            let message = format!(
                "it names the dataspace {:?}, and this stack resets {:?} (DATASPACE_NAME); nothing was touched",
                manifest.dataspace, self.config.dataspace
            );
            return Err(ResetError::ManifestInvalid { uri, message });
        }
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
            by: event.payload.get("by").and_then(Value::as_str).map(str::to_owned),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_location_must_be_an_s3_uri() {
        let c =
            ResetConfig::from_vars(&[("DATASPACE_MANIFEST", "s3://mvd-config/mvd.json"), ("DATASPACE_NAME", "mvd")])
                .unwrap();
        assert_eq!(
            (c.manifest_bucket.as_str(), c.manifest_key.as_str(), c.dataspace.as_str()),
            ("mvd-config", "mvd.json", "mvd")
        );
        let nameless = ResetConfig::from_vars(&[("DATASPACE_MANIFEST", "s3://mvd-config/mvd.json")]).unwrap_err();
        assert!(nameless.to_string().starts_with("DATASPACE_NAME is not set"), "{nameless}");
        let odd = ResetConfig::from_vars(&[("DATASPACE_MANIFEST", "s3://mvd-config/k"), ("DATASPACE_NAME", "a|b")])
            .unwrap_err();
        assert!(odd.to_string().starts_with("DATASPACE_NAME is \"a|b\""), "{odd}");
        let err = ResetConfig::from_vars(&[("DATASPACE_MANIFEST", "mvd.json")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "DATASPACE_MANIFEST is \"mvd.json\"; expected an S3 URI of the manifest, s3://bucket/key"
        );
        assert!(ResetConfig::from_vars(&[("OTHER", "x")]).is_err());
    }
}
