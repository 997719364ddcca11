//! Sweeping S3: listing every version and delete marker under a prefix and
//! deleting those a caller picks, in DeleteObjects batches, listing and
//! deleting overlapped, stopping cleanly before a deadline.

use std::collections::HashSet;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::{Clock, LambdaFailure};

/// DeleteObjects takes at most this many keys.
pub const DELETE_BATCH: usize = 1000;
/// DeleteObjects requests in flight at once while the listing goes on.
const DELETES_IN_FLIGHT: usize = 4;
/// Per-key errors kept for the report; the rest are counted.
const ERRORS_REPORTED: usize = 100;

/// An S3 failure that ends the work on a bucket, typed by S3's error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum S3Error {
    #[error("bucket {bucket:?} does not exist ({operation})")]
    BucketNotFound { bucket: String, operation: &'static str },
    #[error("access denied to bucket {bucket:?} ({operation}): {message}")]
    AccessDenied { bucket: String, operation: &'static str, message: String },
    #[error("S3 {operation} on bucket {bucket:?} failed: {message}")]
    Other { bucket: String, operation: &'static str, code: Option<String>, message: String },
}

impl S3Error {
    /// Types an S3 service error (from `SdkError::into_service_error`) by its code.
    pub fn from_s3<E>(bucket: &str, operation: &'static str, err: E) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error,
    {
        let bucket = bucket.to_owned();
        let message = crate::aws::service_message(&err);
        match err.code() {
            Some("NoSuchBucket") => Self::BucketNotFound { bucket, operation },
            Some("AccessDenied" | "AllAccessDisabled" | "InvalidAccessKeyId" | "SignatureDoesNotMatch") => {
                Self::AccessDenied { bucket, operation, message }
            }
            code => Self::Other { bucket, operation, code: code.map(str::to_owned), message },
        }
    }
}

/// The whole body of a GetObject answer; a body that breaks off is an error
/// that names the key, never an empty object.
pub async fn body_of(
    out: aws_sdk_s3::operation::get_object::GetObjectOutput,
    bucket: &str,
    key: &str,
) -> Result<Vec<u8>, S3Error> {
    out.body.collect().await.map(|b| b.to_vec()).map_err(|e| S3Error::Other {
        bucket: bucket.to_owned(),
        operation: "GetObject",
        code: None,
        message: format!("the body of {key} could not be read: {e}"),
    })
}

impl LambdaFailure for S3Error {
    fn error_type(&self) -> &'static str {
        match self {
            Self::BucketNotFound { .. } => "BucketNotFound",
            Self::AccessDenied { .. } => "AccessDenied",
            Self::Other { .. } => "S3Error",
        }
    }
}

/// One object version (or delete marker) as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    /// `null` for objects written while versioning was off.
    pub version_id: Option<String>,
    pub last_modified: DateTime<Utc>,
    pub size: u64,
}

impl Listed {
    pub fn is_at(&self, key: &str, version_id: Option<&str>) -> bool {
        self.key == key && self.version_id.as_deref() == version_id
    }
}

/// Collects expired versions into DeleteObjects batches of at most [`DELETE_BATCH`].
#[derive(Debug, Default)]
pub struct Batcher {
    pending: Vec<Listed>,
}

impl Batcher {
    /// Adds one version; returns a full batch when this one completes it.
    pub fn push(&mut self, listed: Listed) -> Option<Vec<Listed>> {
        self.pending.push(listed);
        (self.pending.len() == DELETE_BATCH).then(|| std::mem::take(&mut self.pending))
    }

    /// Whatever is left, as a last (smaller) batch.
    pub fn finish(&mut self) -> Option<Vec<Listed>> {
        (!self.pending.is_empty()).then(|| std::mem::take(&mut self.pending))
    }
}

/// When the sweep must stop so the report still gets out before Lambda's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    stop_at: Option<DateTime<Utc>>,
}

impl Deadline {
    /// `deadline_ms` is the invocation context's deadline in Unix milliseconds;
    /// 0 means none. A value too small to be one (before 2001) is taken as
    /// milliseconds from now: cargo-lambda's emulator sends the timeout so.
    /// The margin is a tenth of the time left, between 1 s and 10 s, which
    /// leaves room for the deletes in flight and the report.
    pub fn new(deadline_ms: u64, now: DateTime<Utc>) -> Self {
        const UNIX_MS_IN_2001: i64 = 1_000_000_000_000;
        let stop_at = i64::try_from(deadline_ms)
            .ok()
            .filter(|ms| *ms > 0)
            .and_then(|ms| {
                if ms < UNIX_MS_IN_2001 {
                    Some(now + Duration::milliseconds(ms))
                } else {
                    DateTime::<Utc>::from_timestamp_millis(ms)
                }
            })
            .map(|deadline| {
                let margin = ((deadline - now) / 10).clamp(Duration::seconds(1), Duration::seconds(10));
                deadline - margin
            });
        Self { stop_at }
    }

    pub fn reached(&self, now: DateTime<Utc>) -> bool {
        self.stop_at.is_some_and(|stop_at| now >= stop_at)
    }
}

/// Where a listing goes on from: after `key` (every version of it) when
/// `version_id` is `None`, else after that version of `key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Marker {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
}

impl Marker {
    /// Whether a listed entry comes at or before this marker in listing order
    /// (for a version marker, only the keys before it count: its other
    /// versions' order is not known from the entry alone).
    fn covers(&self, key: &str) -> bool {
        match self.version_id {
            None => key <= self.key.as_str(),
            Some(_) => key < self.key.as_str(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Page {
    /// Versions and delete markers, in no particular order.
    pub entries: Vec<Listed>,
    /// `None` on the last page.
    pub next: Option<Marker>,
}

/// One page (up to 1000 entries) of every version and delete marker under the
/// prefix. On a bucket that never had versioning, each object is one version
/// whose ID is `null`, so one listing serves both kinds of bucket.
pub async fn list_versions(s3: &Client, bucket: &str, prefix: &str, from: Option<&Marker>) -> Result<Page, S3Error> {
    let out = s3
        .list_object_versions()
        .bucket(bucket)
        .set_prefix((!prefix.is_empty()).then(|| prefix.to_owned()))
        .set_key_marker(from.map(|m| m.key.clone()))
        .set_version_id_marker(from.and_then(|m| m.version_id.clone()))
        .send()
        .await
        .map_err(|err| S3Error::from_s3(bucket, "ListObjectVersions", err.into_service_error()))?;
    let as_utc = |t: Option<&aws_sdk_s3::primitives::DateTime>| {
        t.and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()))
    };
    // An entry without a key or a date cannot be judged, and is left alone.
    let versions = out.versions().iter().filter_map(|v| {
        Some(Listed {
            key: v.key()?.to_owned(),
            version_id: v.version_id().map(str::to_owned),
            last_modified: as_utc(v.last_modified())?,
            size: v.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
        })
    });
    let markers = out.delete_markers().iter().filter_map(|m| {
        Some(Listed {
            key: m.key()?.to_owned(),
            version_id: m.version_id().map(str::to_owned),
            last_modified: as_utc(m.last_modified())?,
            size: 0,
        })
    });
    let entries = versions.chain(markers).collect();
    let next = match (out.is_truncated(), out.next_key_marker()) {
        (Some(true), Some(key)) => {
            Some(Marker { key: key.to_owned(), version_id: out.next_version_id_marker().map(str::to_owned) })
        }
        _ => None,
    };
    Ok(Page { entries, next })
}

/// A version that could not be deleted, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyError {
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    pub code: String,
    pub message: String,
}

/// Deletes one batch (at most 1000) of versions; returns those S3 refused.
/// A refusal of the whole request is returned as a refusal of every key in it,
/// so one bad batch does not stop the sweep.
pub async fn delete_batch(s3: &Client, bucket: &str, batch: &[Listed]) -> Vec<KeyError> {
    let refuse_all = |code: String, message: String| {
        batch
            .iter()
            .map(|l| KeyError {
                key: l.key.clone(),
                version_id: l.version_id.clone(),
                code: code.clone(),
                message: message.clone(),
            })
            .collect::<Vec<_>>()
    };
    let objects: Result<Vec<ObjectIdentifier>, _> = batch
        .iter()
        .map(|l| ObjectIdentifier::builder().key(&l.key).set_version_id(l.version_id.clone()).build())
        .collect();
    let delete = objects.and_then(|objects| Delete::builder().set_objects(Some(objects)).quiet(true).build());
    let delete = match delete {
        Ok(delete) => delete,
        Err(err) => return refuse_all("InvalidRequest".into(), err.to_string()),
    };
    match s3.delete_objects().bucket(bucket).delete(delete).send().await {
        Ok(out) => out
            .errors()
            .iter()
            .map(|e| KeyError {
                key: e.key().unwrap_or_default().to_owned(),
                version_id: e.version_id().map(str::to_owned),
                code: e.code().unwrap_or("Unknown").to_owned(),
                message: e.message().unwrap_or_default().to_owned(),
            })
            .collect(),
        Err(err) => {
            let err = S3Error::from_s3(bucket, "DeleteObjects", err.into_service_error());
            let code = match &err {
                S3Error::AccessDenied { .. } => "AccessDenied".to_owned(),
                S3Error::Other { code, .. } => code.clone().unwrap_or_else(|| "RequestFailed".into()),
                S3Error::BucketNotFound { .. } => "NoSuchBucket".to_owned(),
            };
            refuse_all(code, err.to_string())
        }
    }
}

#[derive(Debug, Default)]
pub struct SweepTally {
    /// Versions and delete markers listed under the prefix.
    pub scanned: u64,
    /// Deleted (with `dry_run`, would be deleted).
    pub deleted: u64,
    pub bytes: u64,
    /// All the versions that could not be deleted; the first 100 are in `errors`.
    pub errors_total: u64,
    pub errors: Vec<KeyError>,
    /// True when the sweep covered the whole prefix (from where it resumed,
    /// round to it again); false when it stopped at the deadline.
    pub complete: bool,
}

/// A sweep's outcome: what it did, and where the next one goes on from.
#[derive(Debug, Default)]
pub struct SweepRun {
    pub tally: SweepTally,
    /// Where the next run resumes; `None`: at the start of the prefix.
    pub resume_at: Option<Marker>,
    /// The listing reached the end of the prefix and went on from its start.
    pub wrapped: bool,
}

impl SweepTally {
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
                self.deleted += 1;
                self.bytes += listed.size;
            }
        }
        for error in refused {
            tracing::warn!(key = %error.key, version_id = ?error.version_id, code = %error.code, message = %error.message, "could not delete");
            self.errors_total += 1;
            if self.errors.len() < ERRORS_REPORTED {
                self.errors.push(error);
            }
        }
    }
}

/// A sweep of one bucket and prefix.
pub struct Sweep {
    pub s3: Client,
    pub bucket: String,
    pub prefix: String,
    /// Count what would be deleted, delete nothing.
    pub dry_run: bool,
}

impl Sweep {
    /// Lists every version and delete marker under the prefix and deletes
    /// those `select` picks, in batches of up to 1000, deletes running while
    /// the listing goes on. Starts after `resume_from` when given, and on
    /// reaching the end of the prefix goes on from its start up to there.
    /// Stops cleanly at the deadline, saying where the next run resumes.
    pub async fn run(
        &self,
        clock: &dyn Clock,
        deadline: Deadline,
        resume_from: Option<Marker>,
        select: impl Fn(&Listed) -> bool,
    ) -> Result<SweepRun, S3Error> {
        let (bucket, prefix) = (&self.bucket, &self.prefix);
        let mut tally = SweepTally::default();
        let mut batcher = Batcher::default();
        let mut in_flight: JoinSet<(Vec<Listed>, Vec<KeyError>)> = JoinSet::new();
        // Where the next page is listed from (exactly), and where a later run would resume.
        let mut from: Option<Marker> = resume_from.clone();
        let mut resume_at: Option<Marker> = resume_from.clone();
        // After wrapping round: the part before where this run began.
        let mut wrapped = false;
        // The expired entry the next listing resumes from is deleted only once
        // that listing is back: moto cannot resume from a marker that is gone.
        let mut held: Option<Listed> = None;

        let listing: Result<bool, S3Error> = loop {
            if deadline.reached(clock.now()) {
                break Ok(false);
            }
            let page = match list_versions(&self.s3, bucket, prefix, from.as_ref()).await {
                Ok(page) => page,
                Err(err) => break Err(err),
            };
            if let Some(listed) = held.take() {
                self.enqueue(listed, &mut batcher, &mut in_flight, &mut tally).await;
            }
            let bound = if wrapped { resume_from.as_ref() } else { None };
            let mut beyond_bound = false;
            // The last key of the page whose every version is in it: a later run resumes after it.
            let mut whole_key: Option<String> = None;
            for listed in page.entries {
                if bound.is_some_and(|b| !b.covers(&listed.key)) {
                    beyond_bound = true;
                    continue;
                }
                tally.scanned += 1;
                if page.next.as_ref().is_none_or(|next| listed.key < next.key)
                    && whole_key.as_ref().is_none_or(|k| *k < listed.key)
                {
                    whole_key = Some(listed.key.clone());
                }
                if !select(&listed) {
                    continue;
                }
                let is_marker = page.next.as_ref().is_some_and(|m| listed.is_at(&m.key, m.version_id.as_deref()));
                if is_marker {
                    held = Some(listed);
                } else {
                    self.enqueue(listed, &mut batcher, &mut in_flight, &mut tally).await;
                }
            }
            let next = page.next.filter(|next| !beyond_bound && bound.is_none_or(|b| b.covers(&next.key)));
            match next {
                Some(next) => {
                    // A key-level marker holds across runs however the keys change; a key with more
                    // versions than a page resumes at its exact version.
                    resume_at = Some(whole_key.map_or_else(|| next.clone(), |key| Marker { key, version_id: None }));
                    from = Some(next);
                }
                None if resume_from.is_some() && !wrapped => {
                    wrapped = true;
                    from = None;
                    resume_at = None;
                }
                None => {
                    resume_at = None;
                    break Ok(true);
                }
            }
        };
        self.drain(held, batcher, in_flight, &mut tally).await;
        tally.complete = listing?;
        tracing::info!(bucket = %bucket, prefix = %prefix, scanned = tally.scanned, deleted = tally.deleted, errors = tally.errors_total, complete = tally.complete, wrapped, "sweep done");
        Ok(SweepRun { tally, resume_at, wrapped })
    }

    /// Deletes what the listing left: the held entry, the last batch; then waits for every delete.
    async fn drain(
        &self,
        held: Option<Listed>,
        mut batcher: Batcher,
        mut in_flight: JoinSet<(Vec<Listed>, Vec<KeyError>)>,
        tally: &mut SweepTally,
    ) {
        if let Some(listed) = held {
            self.enqueue(listed, &mut batcher, &mut in_flight, tally).await;
        }
        if let Some(batch) = batcher.finish() {
            self.dispatch(batch, &mut in_flight, tally).await;
        }
        while let Some(done) = in_flight.join_next().await {
            Self::settle_joined(done, tally);
        }
    }

    async fn enqueue(
        &self,
        listed: Listed,
        batcher: &mut Batcher,
        in_flight: &mut JoinSet<(Vec<Listed>, Vec<KeyError>)>,
        tally: &mut SweepTally,
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
        tally: &mut SweepTally,
    ) {
        if self.dry_run {
            tally.settle(&batch, Vec::new());
            return;
        }
        while in_flight.len() >= DELETES_IN_FLIGHT {
            if let Some(done) = in_flight.join_next().await {
                Self::settle_joined(done, tally);
            }
        }
        let (s3, bucket) = (self.s3.clone(), self.bucket.clone());
        in_flight.spawn(async move {
            let refused = delete_batch(&s3, &bucket, &batch).await;
            (batch, refused)
        });
    }

    fn settle_joined(done: Result<(Vec<Listed>, Vec<KeyError>), tokio::task::JoinError>, tally: &mut SweepTally) {
        match done {
            Ok((batch, refused)) => tally.settle(&batch, refused),
            // Only a panic in the SDK could get here; the keys stay and the next run retries them.
            Err(err) => tracing::warn!(error = %err, "a delete batch did not finish"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, s).unwrap()
    }

    fn listed(n: usize) -> Listed {
        Listed { key: format!("k{n}"), version_id: None, last_modified: at(2026, 1, 1, 0, 0, 0), size: 1 }
    }
    #[test]
    fn batches_hold_at_most_a_thousand_keys_and_the_rest_comes_last() {
        for (total, want) in [(0, vec![]), (1, vec![1]), (1000, vec![1000]), (2500, vec![1000, 1000, 500])] {
            let mut batcher = Batcher::default();
            let mut sizes: Vec<usize> = (0..total).filter_map(|n| batcher.push(listed(n))).map(|b| b.len()).collect();
            sizes.extend(batcher.finish().map(|b| b.len()));
            assert_eq!(sizes, want, "{total} keys");
        }
    }
    #[test]
    fn the_sweep_stops_a_tenth_of_the_remaining_time_before_the_deadline_between_1_and_10_s() {
        let now = at(2026, 3, 1, 0, 0, 0);
        let ms = |t: DateTime<Utc>| u64::try_from(t.timestamp_millis()).unwrap();
        let table = [
            // (deadline after now, seconds after now at which it stops)
            (Duration::seconds(900), 890),
            (Duration::seconds(50), 45),
            (Duration::seconds(5), 4),
            (Duration::seconds(-3), -4),
        ];
        for (left, stop) in table {
            let deadline = Deadline::new(ms(now + left), now);
            assert!(!deadline.reached(now + Duration::seconds(stop) - Duration::milliseconds(1)), "{left}");
            assert!(deadline.reached(now + Duration::seconds(stop)), "{left}");
        }
        assert!(!Deadline::new(0, now).reached(now + Duration::days(365)));
        // cargo-lambda's emulator sends the timeout, not a time.
        let relative = Deadline::new(600_000, now);
        assert!(!relative.reached(now + Duration::seconds(589)));
        assert!(relative.reached(now + Duration::seconds(590)));
    }
}
