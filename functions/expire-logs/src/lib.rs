//! `expire-logs`: keeps Grafana/Loki logs in S3 for `RETENTION_DAYS` and no longer.
//!
//! Parse (any invocation means "run now") -> observe (lifecycle, listing) ->
//! plan (rule merge, expiry, batches) -> apply (put, DeleteObjects) -> report.

pub mod config;
pub mod error;
pub mod plan;
pub mod s3;

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use nightshift::{Clock, Trigger};
use serde::Serialize;
use serde_json::Value;
use tokio::task::JoinSet;
use tracing::{info, warn};

pub use config::ExpireConfig;
pub use error::ExpireError;
use plan::{Batcher, Deadline, LifecycleOutcome, Listed};
use s3::KeyError;

pub const FUNCTION: &str = "expire-logs";
/// DeleteObjects requests in flight at once while the listing goes on.
const DELETES_IN_FLIGHT: usize = 4;
/// Per-key errors listed in the report; the rest are counted.
const ERRORS_REPORTED: usize = 100;

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

#[derive(Debug, Default)]
struct Tally {
    scanned: u64,
    expired: u64,
    bytes: u64,
    errors_total: u64,
    errors: Vec<KeyError>,
    complete: bool,
}

impl Tally {
    /// Counts a batch as expired, less the versions S3 refused. A refusal that
    /// names no version (as some S3 implementations send) refuses the key.
    fn settle(&mut self, batch: &[Listed], refused: Vec<KeyError>) {
        let refused_versions: HashSet<(&str, Option<&str>)> =
            refused.iter().map(|e| (e.key.as_str(), e.version_id.as_deref())).collect();
        let refused_keys: HashSet<&str> =
            refused.iter().filter(|e| e.version_id.is_none()).map(|e| e.key.as_str()).collect();
        for listed in batch {
            let is_refused = refused_keys.contains(listed.key.as_str())
                || refused_versions.contains(&(listed.key.as_str(), listed.version_id.as_deref()));
            if !is_refused {
                self.expired += 1;
                self.bytes += listed.size;
            }
        }
        for error in refused {
            warn!(key = %error.key, version_id = ?error.version_id, code = %error.code, message = %error.message, "could not delete");
            self.errors_total += 1;
            if self.errors.len() < ERRORS_REPORTED {
                self.errors.push(error);
            }
        }
    }
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

        let lifecycle = if self.config.lifecycle {
            self.ensure_lifecycle().await?
        } else {
            LifecycleOutcome::Disabled
        };
        let tally = if self.config.sweep {
            self.sweep(cutoff, deadline).await?
        } else {
            Tally {
                complete: true,
                ..Tally::default()
            }
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
            objects_expired: tally.expired,
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
            s3::put_lifecycle(&self.s3, bucket, planned.rules, current.transition_default_minimum_object_size)
                .await?;
        }
        Ok(planned.outcome)
    }

    /// Lists every version under the prefix and deletes the expired ones in
    /// batches, deletes running while the listing goes on.
    async fn sweep(&self, cutoff: DateTime<Utc>, deadline: Deadline) -> Result<Tally, ExpireError> {
        let (bucket, prefix) = (&self.config.bucket, &self.config.prefix);
        let mut tally = Tally::default();
        let mut batcher = Batcher::default();
        let mut in_flight: JoinSet<(Vec<Listed>, Vec<KeyError>)> = JoinSet::new();
        let mut from: Option<s3::Marker> = None;
        // The expired entry the next listing resumes from is deleted only once
        // that listing is back: moto cannot resume from a marker that is gone.
        let mut held: Option<Listed> = None;

        let listing: Result<bool, ExpireError> = loop {
            if deadline.reached(self.clock.now()) {
                break Ok(false);
            }
            let page = match s3::list_versions(&self.s3, bucket, prefix, from.as_ref()).await {
                Ok(page) => page,
                Err(err) => break Err(err),
            };
            tally.scanned += page.entries.len() as u64;
            if let Some(listed) = held.take() {
                self.enqueue(listed, &mut batcher, &mut in_flight, &mut tally).await;
            }
            for listed in page.entries {
                if !plan::is_expired(listed.last_modified, cutoff) {
                    continue;
                }
                let is_marker = page
                    .next
                    .as_ref()
                    .is_some_and(|m| listed.is_at(&m.key, m.version_id.as_deref()));
                if is_marker {
                    held = Some(listed);
                } else {
                    self.enqueue(listed, &mut batcher, &mut in_flight, &mut tally).await;
                }
            }
            match page.next {
                Some(next) => from = Some(next),
                None => break Ok(true),
            }
        };
        if let Some(listed) = held.take() {
            self.enqueue(listed, &mut batcher, &mut in_flight, &mut tally).await;
        }
        if let Some(batch) = batcher.finish() {
            self.dispatch(batch, &mut in_flight, &mut tally).await;
        }
        while let Some(done) = in_flight.join_next().await {
            Self::settle_joined(done, &mut tally);
        }
        tally.complete = listing?;
        info!(scanned = tally.scanned, expired = tally.expired, errors = tally.errors_total, complete = tally.complete, "sweep done");
        Ok(tally)
    }

    async fn enqueue(
        &self,
        listed: Listed,
        batcher: &mut Batcher,
        in_flight: &mut JoinSet<(Vec<Listed>, Vec<KeyError>)>,
        tally: &mut Tally,
    ) {
        if let Some(batch) = batcher.push(listed) {
            self.dispatch(batch, in_flight, tally).await;
        }
    }

    /// Starts a DeleteObjects for the batch, waiting first for a slot when
    /// enough are in flight. With `DRY_RUN` the batch is only counted.
    async fn dispatch(
        &self,
        batch: Vec<Listed>,
        in_flight: &mut JoinSet<(Vec<Listed>, Vec<KeyError>)>,
        tally: &mut Tally,
    ) {
        if self.config.dry_run {
            tally.settle(&batch, Vec::new());
            return;
        }
        while in_flight.len() >= DELETES_IN_FLIGHT {
            if let Some(done) = in_flight.join_next().await {
                Self::settle_joined(done, tally);
            }
        }
        let (s3, bucket) = (self.s3.clone(), self.config.bucket.clone());
        in_flight.spawn(async move {
            let refused = s3::delete_batch(&s3, &bucket, &batch).await;
            (batch, refused)
        });
    }

    fn settle_joined(
        done: Result<(Vec<Listed>, Vec<KeyError>), tokio::task::JoinError>,
        tally: &mut Tally,
    ) {
        match done {
            Ok((batch, refused)) => tally.settle(&batch, refused),
            // Only a panic in the SDK could get here; the keys stay and the next run retries them.
            Err(err) => warn!(error = %err, "a delete batch did not finish"),
        }
    }
}
