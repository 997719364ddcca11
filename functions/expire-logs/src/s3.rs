//! The lifecycle calls: observe and apply, never decide. Listing and deleting
//! are `nightshift::s3_sweep`'s.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{BucketLifecycleConfiguration, LifecycleRule, TransitionDefaultMinimumObjectSize};
use nightshift::s3_sweep::S3Error;

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
