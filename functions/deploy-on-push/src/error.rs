//! What can make a `deploy-on-push` invocation fail, each with a stable `error_type`.

use lambda_runtime::Diagnostic;
use nightshift::LambdaFailure;
use nightshift::aws::CallError;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    #[error("ECS {0}")]
    Ecs(CallError),
    /// The state table could not be read: the quarantine is not known, so nothing is deployed.
    #[error("DynamoDB {0}")]
    State(CallError),
    /// Some services failed; the others went ahead. Failing the invocation gets it retried or alarmed.
    #[error("{} of {total} services failed: {}", failures.len(), failures.join("; "))]
    ServicesFailed { total: usize, failures: Vec<String> },
}

impl LambdaFailure for DeployError {
    fn error_type(&self) -> &'static str {
        match self {
            Self::InvalidEvent(_) => "InvalidEvent",
            Self::Ecs(_) => "EcsError",
            Self::State(_) => "StateError",
            Self::ServicesFailed { .. } => "DeployFailed",
        }
    }
}

impl From<DeployError> for Diagnostic {
    fn from(err: DeployError) -> Self {
        err.diagnostic()
    }
}
