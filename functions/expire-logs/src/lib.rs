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
    /// False when the sweep stopped at the deadline; the next run carries on.
    pub complete: bool,
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
        let trigger = Trigger::parse(&event.payload);
        let now = self.clock.now();
        let cutoff = plan::cutoff(now, self.config.retention_days);
        let deadline = Deadline::new(event.context.deadline, now);
        info!(?trigger, bucket = %self.config.bucket, prefix = %self.config.prefix, %cutoff, deadline_ms = event.context.deadline, dry_run = self.config.dry_run, "expire-logs run");

        let lifecycle = if self.config.lifecycle { self.ensure_lifecycle().await? } else { LifecycleOutcome::Disabled };
        let tally = if self.config.sweep {
            let sweep = Sweep {
                s3: self.s3.clone(),
                bucket: self.config.bucket.clone(),
                prefix: self.config.prefix.clone(),
                dry_run: self.config.dry_run,
            };
            sweep.run(self.clock.as_ref(), deadline, |listed| plan::is_expired(listed.last_modified, cutoff)).await?
        } else {
            SweepTally { complete: true, ..SweepTally::default() }
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
        };
        nightshift::emit(FUNCTION, &report);
        Ok(report)
    }

    async fn ensure_lifecycle(&self) -> Result<LifecycleOutcome, ExpireError> {
        let bucket = &self.config.bucket;
        let current = s3::get_lifecycle(&self.s3, bucket).await?;
        let desired = plan::desired_rules(&self.config.prefix, self.config.retention_days);
        let planned = plan::plan_lifecycle(current.rules.as_deref(), desired);
        info!(outcome = ?planned.outcome, rules = planned.rules.len(), "lifecycle plan");
        if planned.outcome != LifecycleOutcome::Unchanged && !self.config.dry_run {
            s3::put_lifecycle(&self.s3, bucket, planned.rules, current.transition_default_minimum_object_size).await?;
        }
        Ok(planned.outcome)
    }
}
