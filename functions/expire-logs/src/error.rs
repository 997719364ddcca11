//! What can make an `expire-logs` invocation fail, each with a stable `error_type`.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use lambda_runtime::Diagnostic;
use nightshift::{ConfigError, LambdaFailure};

#[derive(Debug, thiserror::Error)]
pub enum ExpireError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("bucket {bucket:?} does not exist ({operation})")]
    BucketNotFound { bucket: String, operation: &'static str },
    #[error("access denied to bucket {bucket:?} ({operation}): {message}")]
    AccessDenied {
        bucket: String,
        operation: &'static str,
        message: String,
    },
    #[error("S3 {operation} on bucket {bucket:?} failed: {message}")]
    S3 {
        bucket: String,
        operation: &'static str,
        code: Option<String>,
        message: String,
    },
}

impl ExpireError {
    /// Types an S3 service error (from `SdkError::into_service_error`) by its code.
    pub fn from_s3<E>(bucket: &str, operation: &'static str, err: E) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error,
    {
        let bucket = bucket.to_owned();
        let message = err
            .message()
            .map(str::to_owned)
            .unwrap_or_else(|| DisplayErrorContext(&err).to_string());
        match err.code() {
            Some("NoSuchBucket") => Self::BucketNotFound { bucket, operation },
            Some("AccessDenied" | "AllAccessDisabled" | "InvalidAccessKeyId" | "SignatureDoesNotMatch") => {
                Self::AccessDenied { bucket, operation, message }
            }
            code => Self::S3 {
                bucket,
                operation,
                code: code.map(str::to_owned),
                message,
            },
        }
    }
}

impl LambdaFailure for ExpireError {
    fn error_type(&self) -> &'static str {
        match self {
            Self::Config(_) => "ConfigError",
            Self::BucketNotFound { .. } => "BucketNotFound",
            Self::AccessDenied { .. } => "AccessDenied",
            Self::S3 { .. } => "S3Error",
        }
    }
}

impl From<ExpireError> for Diagnostic {
    fn from(err: ExpireError) -> Self {
        err.diagnostic()
    }
}
