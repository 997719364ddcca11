//! The S3 calls: observe and apply, never decide.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, Delete, LifecycleRule, ObjectIdentifier,
    TransitionDefaultMinimumObjectSize,
};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::ExpireError;
use crate::plan::Listed;

/// The bucket's lifecycle configuration as S3 holds it.
#[derive(Debug, Clone, Default)]
pub struct CurrentLifecycle {
    /// `None`: the bucket has no lifecycle configuration at all.
    pub rules: Option<Vec<LifecycleRule>>,
    pub transition_default_minimum_object_size: Option<TransitionDefaultMinimumObjectSize>,
}

pub async fn get_lifecycle(s3: &Client, bucket: &str) -> Result<CurrentLifecycle, ExpireError> {
    match s3.get_bucket_lifecycle_configuration().bucket(bucket).send().await {
        Ok(out) => Ok(CurrentLifecycle {
            transition_default_minimum_object_size: out.transition_default_minimum_object_size().cloned(),
            rules: Some(out.rules.unwrap_or_default()),
        }),
        Err(err) => {
            let err = err.into_service_error();
            if err.code() == Some("NoSuchLifecycleConfiguration") {
                Ok(CurrentLifecycle::default())
            } else {
                Err(ExpireError::from_s3(bucket, "GetBucketLifecycleConfiguration", err))
            }
        }
    }
}

/// Replaces the bucket's whole lifecycle configuration with `rules`.
pub async fn put_lifecycle(
    s3: &Client,
    bucket: &str,
    rules: Vec<LifecycleRule>,
    transition_default_minimum_object_size: Option<TransitionDefaultMinimumObjectSize>,
) -> Result<(), ExpireError> {
    let operation = "PutBucketLifecycleConfiguration";
    let configuration = BucketLifecycleConfiguration::builder()
        .set_rules(Some(rules))
        .build()
        .map_err(|err| ExpireError::S3 {
            bucket: bucket.to_owned(),
            operation,
            code: None,
            message: err.to_string(),
        })?;
    s3.put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(configuration)
        .set_transition_default_minimum_object_size(transition_default_minimum_object_size)
        .send()
        .await
        .map_err(|err| ExpireError::from_s3(bucket, operation, err.into_service_error()))?;
    Ok(())
}

/// Where a listing goes on from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub key: String,
    pub version_id: Option<String>,
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
pub async fn list_versions(
    s3: &Client,
    bucket: &str,
    prefix: &str,
    from: Option<&Marker>,
) -> Result<Page, ExpireError> {
    let out = s3
        .list_object_versions()
        .bucket(bucket)
        .set_prefix((!prefix.is_empty()).then(|| prefix.to_owned()))
        .set_key_marker(from.map(|m| m.key.clone()))
        .set_version_id_marker(from.and_then(|m| m.version_id.clone()))
        .send()
        .await
        .map_err(|err| ExpireError::from_s3(bucket, "ListObjectVersions", err.into_service_error()))?;
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
        (Some(true), Some(key)) => Some(Marker {
            key: key.to_owned(),
            version_id: out.next_version_id_marker().map(str::to_owned),
        }),
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
        .map(|l| {
            ObjectIdentifier::builder()
                .key(&l.key)
                .set_version_id(l.version_id.clone())
                .build()
        })
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
            let err = ExpireError::from_s3(bucket, "DeleteObjects", err.into_service_error());
            let code = match &err {
                ExpireError::AccessDenied { .. } => "AccessDenied".to_owned(),
                ExpireError::S3 { code, .. } => code.clone().unwrap_or_else(|| "RequestFailed".into()),
                _ => "RequestFailed".to_owned(),
            };
            refuse_all(code, err.to_string())
        }
    }
}
