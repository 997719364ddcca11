//! What can make an `expire-logs` invocation fail, each with a stable `error_type`.

use lambda_runtime::Diagnostic;
use nightshift::LambdaFailure;
use nightshift::s3_sweep::S3Error;

#[derive(Debug, thiserror::Error)]
pub enum ExpireError {
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    /// `BucketNotFound`, `AccessDenied` or `S3Error`; the message names the bucket.
    #[error(transparent)]
    S3(#[from] S3Error),
}

impl LambdaFailure for ExpireError {
    fn error_type(&self) -> &'static str {
        match self {
            Self::InvalidEvent(_) => "InvalidEvent",
            Self::S3(err) => err.error_type(),
        }
    }
}

impl From<ExpireError> for Diagnostic {
    fn from(err: ExpireError) -> Self {
        err.diagnostic()
    }
}
