//! The ECS and S3 calls: observe and apply, never decide.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, Utc};
use nightshift::aws::{CallError, service_message};
use nightshift::s3_sweep::S3Error;
use serde_json::Value;

/// The tag every touched resource must carry, with the manifest's dataspace.
pub const DATASPACE_TAG: &str = "nightshift:dataspace";

/// The object's bytes.
pub async fn get_object(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
    let out =
        s3.get_object().bucket(bucket).key(key).send().await.map_err(|e| service_message(&e.into_service_error()))?;
    out.body.collect().await.map(|b| b.to_vec()).map_err(|e| e.to_string())
}

/// The bucket's `nightshift:dataspace` tag; `None` when it has none.
pub async fn bucket_dataspace(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<Option<String>, S3Error> {
    match s3.get_bucket_tagging().bucket(bucket).send().await {
        Ok(out) => Ok(out.tag_set().iter().find(|t| t.key() == DATASPACE_TAG).map(|t| t.value().to_owned())),
        Err(err) => {
            let err = err.into_service_error();
            if err.code() == Some("NoSuchTagSet") {
                Ok(None)
            } else {
                Err(S3Error::from_s3(bucket, "GetBucketTagging", err))
            }
        }
    }
}

/// A new deployment of the service at `desired` tasks, on `task_definition` if given.
pub async fn restart_service(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
    desired: i32,
    task_definition: Option<&str>,
) -> Result<(), String> {
    ecs.update_service()
        .cluster(cluster)
        .service(service)
        .desired_count(desired)
        .set_task_definition(task_definition.map(str::to_owned))
        .force_new_deployment(true)
        .send()
        .await
        .map(drop)
        .map_err(|e| {
            CallError::new("UpdateService", &format!("{cluster}/{service}"), e.into_service_error()).to_string()
        })
}

/// The JSON document at the key, with when it was written: `None` when there
/// is none, `Null` when what is there is not JSON (so it differs from any
/// document). A body that cannot be read is an error, not a missing document.
pub async fn current_document(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<(Value, DateTime<Utc>)>, S3Error> {
    match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => {
            let written = out
                .last_modified()
                .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()))
                .unwrap_or(DateTime::<Utc>::MIN_UTC);
            let bytes = nightshift::s3_sweep::body_of(out, bucket, key).await?;
            Ok(Some((serde_json::from_slice(&bytes).unwrap_or(Value::Null), written)))
        }
        Err(err) => {
            let err = err.into_service_error();
            if err.code() == Some("NoSuchKey") { Ok(None) } else { Err(S3Error::from_s3(bucket, "GetObject", err)) }
        }
    }
}

pub async fn put_document(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, document: &Value) -> Result<(), S3Error> {
    let body = serde_json::to_vec_pretty(document).unwrap_or_default();
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/did+json")
        .cache_control("max-age=300")
        .body(ByteStream::from(body))
        .send()
        .await
        .map(drop)
        .map_err(|e| S3Error::from_s3(bucket, "PutObject", e.into_service_error()))
}
