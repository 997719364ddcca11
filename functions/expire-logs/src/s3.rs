//! The lifecycle and checkpoint calls: observe and apply, never decide.
//! Listing and deleting are `nightshift::s3_sweep`'s.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketLifecycleConfiguration, LifecycleRule, TransitionDefaultMinimumObjectSize};
use nightshift::s3_sweep::S3Error;

use crate::plan::Checkpoint;

/// The bucket's lifecycle configuration as S3 holds it.
#[derive(Debug, Clone, Default)]
pub struct CurrentLifecycle {
    /// `None`: the bucket has no lifecycle configuration at all.
    pub rules: Option<Vec<LifecycleRule>>,
    pub transition_default_minimum_object_size: Option<TransitionDefaultMinimumObjectSize>,
}

pub async fn get_lifecycle(s3: &Client, bucket: &str) -> Result<CurrentLifecycle, S3Error> {
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
                Err(S3Error::from_s3(bucket, "GetBucketLifecycleConfiguration", err))
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
) -> Result<(), S3Error> {
    let operation = "PutBucketLifecycleConfiguration";
    let configuration = BucketLifecycleConfiguration::builder()
        .set_rules(Some(rules))
        .build()
        .map_err(|err| S3Error::Other { bucket: bucket.to_owned(), operation, code: None, message: err.to_string() })?;
    s3.put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(configuration)
        .set_transition_default_minimum_object_size(transition_default_minimum_object_size)
        .send()
        .await
        .map_err(|err| S3Error::from_s3(bucket, operation, err.into_service_error()))?;
    Ok(())
}

/// The checkpoint the last run left, with the version S3 holds it as
/// (`None` on a bucket without versioning). A checkpoint that is not one (it
/// was changed by hand) is logged and ignored: the sweep starts afresh.
pub async fn get_checkpoint(
    s3: &Client,
    bucket: &str,
    key: &str,
) -> Result<Option<(Checkpoint, Option<String>)>, S3Error> {
    let out = match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => out,
        Err(err) => {
            let err = err.into_service_error();
            if err.code() == Some("NoSuchKey") {
                return Ok(None);
            }
            let refused = S3Error::from_s3(bucket, "GetObject", err);
            // S3 answers a missing key with 403, not 404, to a role that may not list the bucket
            // unconditionally (ours may list only under the prefix): ask the listing whether it exists.
            if matches!(refused, S3Error::AccessDenied { .. }) && !exists(s3, bucket, key).await? {
                return Ok(None);
            }
            return Err(refused);
        }
    };
    let version = out.version_id().filter(|v| *v != "null").map(str::to_owned);
    let bytes = nightshift::s3_sweep::body_of(out, bucket, key).await?;
    match serde_json::from_slice::<Checkpoint>(&bytes) {
        Ok(checkpoint) => Ok(Some((checkpoint, version))),
        Err(err) => {
            tracing::warn!(bucket, key, error = %err, "the sweep's checkpoint is not one; starting afresh");
            Ok(None)
        }
    }
}

/// Whether the key has a current version (not a delete marker).
async fn exists(s3: &Client, bucket: &str, key: &str) -> Result<bool, S3Error> {
    let out = s3
        .list_object_versions()
        .bucket(bucket)
        .prefix(key)
        .max_keys(1)
        .send()
        .await
        .map_err(|err| S3Error::from_s3(bucket, "ListObjectVersions", err.into_service_error()))?;
    Ok(out.versions().iter().any(|v| v.key() == Some(key) && v.is_latest() == Some(true)))
}

/// Writes the checkpoint, then removes the version it replaces (on a
/// versioned bucket every write would otherwise leave one behind).
pub async fn put_checkpoint(
    s3: &Client,
    bucket: &str,
    key: &str,
    checkpoint: &Checkpoint,
    replaces: Option<&str>,
) -> Result<(), S3Error> {
    let body = serde_json::to_vec(checkpoint).unwrap_or_default();
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/json")
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|err| S3Error::from_s3(bucket, "PutObject", err.into_service_error()))?;
    if let Some(version) = replaces {
        delete_checkpoint(s3, bucket, key, Some(version)).await?;
    }
    Ok(())
}

/// Removes the checkpoint (that version of it, when given).
pub async fn delete_checkpoint(s3: &Client, bucket: &str, key: &str, version: Option<&str>) -> Result<(), S3Error> {
    s3.delete_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(str::to_owned))
        .send()
        .await
        .map_err(|err| S3Error::from_s3(bucket, "DeleteObject", err.into_service_error()))?;
    Ok(())
}
