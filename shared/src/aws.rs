//! AWS configuration from the standard environment.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// A failed AWS call: which, on what, and the service's own words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} on {target} failed: {message}")]
pub struct CallError {
    pub operation: &'static str,
    pub target: String,
    pub code: Option<String>,
    pub message: String,
}

impl CallError {
    /// From a service error (`SdkError::into_service_error`).
    pub fn new<E>(operation: &'static str, target: &str, err: E) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error,
    {
        Self {
            operation,
            target: target.to_owned(),
            code: err.code().map(str::to_owned),
            message: service_message(&err),
        }
    }
}

/// The service's own message for an error, or the whole chain of causes when
/// it sent none (a connection that failed, a timeout).
pub fn service_message<E>(err: &E) -> String
where
    E: ProvideErrorMetadata + std::error::Error,
{
    err.message().map_or_else(|| DisplayErrorContext(err).to_string(), str::to_owned)
}

/// The HTTPS client every AWS client uses: rustls with ring, the platform's roots.
pub fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https()
}

/// Loads region, credentials and `AWS_ENDPOINT_URL` the way every AWS tool does.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).http_client(http_client()).load().await
}

/// True when an endpoint override (such as a local AWS on 127.0.0.1) is in force.
pub fn has_endpoint_override(config: &SdkConfig) -> bool {
    config.endpoint_url().is_some()
}

/// An S3 client; path-style addressing when an endpoint is overridden, since
/// `bucket.127.0.0.1` does not resolve.
#[cfg(feature = "s3")]
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3_config = aws_sdk_s3::config::Builder::from(config).force_path_style(has_endpoint_override(config)).build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

/// An ECS client.
#[cfg(feature = "ecs")]
pub fn ecs_client(config: &SdkConfig) -> aws_sdk_ecs::Client {
    aws_sdk_ecs::Client::new(config)
}

/// An Application Auto Scaling client.
#[cfg(feature = "scale")]
pub fn scaling_client(config: &SdkConfig) -> aws_sdk_applicationautoscaling::Client {
    aws_sdk_applicationautoscaling::Client::new(config)
}
