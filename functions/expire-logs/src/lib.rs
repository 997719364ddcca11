//! `expire-logs`: keeps Grafana/Loki logs in S3 for `RETENTION_DAYS` and no longer.
//!
//! Parse (any invocation means "run now") -> observe (lifecycle, listing) ->
//! plan (rule merge, expiry, batches) -> apply (put, DeleteObjects) -> report.

pub mod config;
pub mod error;
pub mod plan;
pub mod s3;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use nightshift::{Clock, Trigger};
use serde::Serialize;
use serde_json::Value;
use tracing::info;

pub use config::ExpireConfig;
pub use error::ExpireError;
use nightshift::s3_sweep::{Deadline, KeyError, Sweep, SweepTally};
use plan::LifecycleOutcome;

pub const FUNCTION: &str = "expire-logs";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExpireReport {
    pub function: &'static str,
    pub dry_run: bool,
    pub trigger: Trigger,
    pub bucket: String,
    pub prefix: String,
    pub retention_days: u32,
    /// Versions last modified before this expire.
    pub cutoff: DateTime<Utc>,
    pub lifecycle: LifecycleOutcome,
    pub sweep_enabled: bool,
    /// Versions and delete markers listed under the prefix.
    pub objects_scanned: u64,
    /// Deleted (with `DRY_RUN`, would be deleted).
    pub objects_expired: u64,
    pub bytes_freed: u64,
    /// All the versions that could not be deleted; the first 100 are in `errors`.
    pub errors_total: u64,
    pub errors: Vec<KeyError>,
    /// True when the sweep covered the whole prefix in this run; false when
    /// it stopped at the deadline, and the next run goes on from there.
    pub complete: bool,
    /// How far the sweep is through the prefix (not with `SWEEP=false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
}

impl nightshift::notify::Notable for ExpireReport {
    fn notable(&self) -> Option<nightshift::notify::Notice> {
        if self.dry_run || self.objects_expired == 0 {
            return None;
        }
        let mb = self.bytes_freed as f64 / 1_000_000.0;
        Some(nightshift::notify::Notice {
            tone: nightshift::notify::Tone::Info,
            title: format!("Logs expired: {}/{}", self.bucket, self.prefix),
            summary: format!(
                "{} objects ({mb:.1} MB) older than {} days were deleted.",
                self.objects_expired, self.retention_days
            ),
            facts: vec![
                ("Bucket".into(), self.bucket.clone()),
                (
                    "Prefix".into(),
                    if self.prefix.is_empty() { "(the whole bucket)".into() } else { self.prefix.clone() },
                ),
                ("Older than".into(), self.cutoff.to_rfc3339()),
                ("Sweep".into(), if self.complete { "complete".into() } else { "continues next run".into() }),
            ],
            link: None,
        })
    }
}

impl nightshift::Measured for ExpireReport {
    fn metrics(&self) -> Vec<nightshift::Metric> {
        use nightshift::report::{Metric, Unit};
        vec![
            Metric { name: "ObjectsExpired", value: self.objects_expired as f64, unit: Unit::Count },
            Metric { name: "BytesFreed", value: self.bytes_freed as f64, unit: Unit::Bytes },
            Metric::flag("SweepComplete", self.complete),
        ]
    }
}

/// Where the sweep began and stopped, across runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    /// The key this run listed after (the last run's checkpoint); `None`: from the start of the prefix.
    pub resumed_after: Option<String>,
    /// The key the next run lists after; `None`: the next run starts at the beginning.
    pub next_after: Option<String>,
    /// This run reached the end of the prefix and went on from its start.
    pub wrapped: bool,
    /// When the pass under way began (a pass covers the whole prefix once).
    pub pass_started: Option<DateTime<Utc>>,
    /// The checkpoint's key in the bucket.
    pub checkpoint: String,
}

/// The function: its configuration, its client, its clock.
pub struct ExpireLogs {
    config: ExpireConfig,
    s3: aws_sdk_s3::Client,
    clock: Arc<dyn Clock>,
}

impl ExpireLogs {
    pub fn new(config: ExpireConfig, s3: aws_sdk_s3::Client, clock: Arc<dyn Clock>) -> Self {
        Self { config, s3, clock }
    }

    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<ExpireReport, ExpireError> {
        nightshift::conclude(FUNCTION, self.run(event).await)
    }

    async fn run(&self, event: LambdaEvent<Value>) -> nightshift::Ran<ExpireReport, ExpireError> {
        let trigger = Trigger::parse(&event.payload).map_err(ExpireError::InvalidEvent)?;
        let now = self.clock.now();
        let cutoff = plan::cutoff(now, self.config.retention_days);
        let deadline = Deadline::new(event.context.deadline, now);
        info!(?trigger, bucket = %self.config.bucket, prefix = %self.config.prefix, %cutoff, deadline_ms = event.context.deadline, dry_run = self.config.dry_run, "expire-logs run");

        let lifecycle = if self.config.lifecycle { self.ensure_lifecycle().await? } else { LifecycleOutcome::Disabled };
        let (tally, progress) = if self.config.sweep {
            let (tally, progress) = self.sweep(cutoff, deadline, now).await?;
            (tally, Some(progress))
        } else {
            (SweepTally { complete: true, ..SweepTally::default() }, None)
        };

        let report = ExpireReport {
            function: FUNCTION,
            dry_run: self.config.dry_run,
            trigger,
            bucket: self.config.bucket.clone(),
            prefix: self.config.prefix.clone(),
            retention_days: self.config.retention_days,
            cutoff,
            lifecycle,
            sweep_enabled: self.config.sweep,
            objects_scanned: tally.scanned,
            objects_expired: tally.deleted,
            bytes_freed: tally.bytes,
            errors_total: tally.errors_total,
            errors: tally.errors,
            complete: tally.complete,
            progress,
        };
        Ok((report, None))
    }

    /// The sweep, from where the last run stopped (its checkpoint in the
    /// bucket) and round to it again, as far as the deadline allows; then the
    /// checkpoint for the next run. A bucket of tens of millions of objects
    /// is covered over several runs; lifecycle rules do the rest.
    async fn sweep(
        &self,
        cutoff: DateTime<Utc>,
        deadline: Deadline,
        now: DateTime<Utc>,
    ) -> Result<(SweepTally, Progress), ExpireError> {
        let (bucket, prefix) = (&self.config.bucket, &self.config.prefix);
        let key = plan::checkpoint_key(prefix);
        let previous = s3::get_checkpoint(&self.s3, bucket, &key).await?;
        let (checkpoint, version) = previous.map_or((None, None), |(c, v)| (Some(c), v));
        let sweep =
            Sweep { s3: self.s3.clone(), bucket: bucket.clone(), prefix: prefix.clone(), dry_run: self.config.dry_run };
        let resume_from = checkpoint.as_ref().map(|c| c.resume_after.clone());
        let run = sweep
            .run(self.clock.as_ref(), deadline, resume_from, |listed| {
                plan::is_sweepable(&listed.key) && plan::is_expired(listed.last_modified, cutoff)
            })
            .await?;
        let next = plan::next_checkpoint(checkpoint.as_ref(), run.resume_at, run.wrapped, now);
        if !self.config.dry_run && next != checkpoint {
            match &next {
                Some(next) => s3::put_checkpoint(&self.s3, bucket, &key, next, version.as_deref()).await?,
                None => s3::delete_checkpoint(&self.s3, bucket, &key, version.as_deref()).await?,
            }
        }
        let progress = Progress {
            resumed_after: checkpoint.map(|c| c.resume_after.key),
            next_after: next.as_ref().map(|c| c.resume_after.key.clone()),
            wrapped: run.wrapped,
            pass_started: next.map(|c| c.pass_started),
            checkpoint: key,
        };
        Ok((run.tally, progress))
    }

    async fn ensure_lifecycle(&self) -> Result<LifecycleOutcome, ExpireError> {
        let bucket = &self.config.bucket;
        let current = s3::get_lifecycle(&self.s3, bucket).await?;
        let desired = plan::desired_rules(&self.config.prefix, self.config.retention_days);
        let planned = plan::plan_lifecycle(current.rules.as_deref(), &self.config.prefix, desired);
        info!(outcome = ?planned.outcome, rules = planned.rules.len(), "lifecycle plan");
        if planned.outcome != LifecycleOutcome::Unchanged && !self.config.dry_run {
            s3::put_lifecycle(&self.s3, bucket, planned.rules, current.transition_default_minimum_object_size).await?;
        }
        Ok(planned.outcome)
    }
}
