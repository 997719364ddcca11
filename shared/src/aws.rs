//! AWS configuration from the environment Lambda gives a function.

use std::time::Duration;

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use aws_smithy_async::rt::sleep::default_async_sleep;
use aws_smithy_async::time::{SharedTimeSource, SystemTimeSource};
use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use aws_types::region::Region;
use aws_types::sdk_config::SdkConfig;

use crate::config::{self, ProcessEnv, Vars};

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

/// The HTTPS client every AWS client uses: the process's one connector (`crate::https`).
pub fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    crate::https::http_client()
}

/// How long a request sent with [`send`] may wait for its answer to begin (its
/// status and headers): a signed request, a webhook, a check.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// One POST over the process's connector (the notifier's: SSM, webhooks). A
/// failure says only what kind it was, never the connector's own words, which
/// may carry the URL (a webhook URL is a secret).
pub async fn post<'a>(
    http: &crate::https::Https,
    url: &str,
    headers: impl Iterator<Item = (&'a str, &'a str)>,
    body: String,
    who: &str,
) -> Result<aws_smithy_runtime_api::http::Response<aws_smithy_types::body::SdkBody>, String> {
    send(http, "POST", url, headers, body, who).await
}

/// Sends one request of any method; `Err` says, naming `who`, that it could
/// not be sent or was not answered within [`ANSWER_TIMEOUT`].
pub async fn send<'a>(
    http: &crate::https::Https,
    method: &str,
    url: &str,
    headers: impl Iterator<Item = (&'a str, &'a str)>,
    body: String,
    who: &str,
) -> Result<aws_smithy_runtime_api::http::Response<aws_smithy_types::body::SdkBody>, String> {
    use aws_smithy_runtime_api::client::http::HttpConnector;
    let length = body.len().to_string();
    let mut request = aws_smithy_runtime_api::http::Request::new(aws_smithy_types::body::SdkBody::from(body));
    request.set_method(method).map_err(|e| e.to_string())?;
    request.set_uri(url).map_err(|_| format!("the URL of {who} is not valid"))?;
    for (key, value) in headers {
        request.headers_mut().insert(key.to_owned(), value.to_owned());
    }
    if method != "GET" && method != "HEAD" {
        request.headers_mut().insert("content-length", length);
    }
    let late = || format!("{who} did not answer in time");
    match tokio::time::timeout(ANSWER_TIMEOUT, http.call(request)).await {
        Err(_) => Err(late()),
        Ok(answer) => {
            answer.map_err(|err| if err.is_timeout() { late() } else { format!("{who} could not be reached") })
        }
    }
}

/// GETs `url` (a presigned one: no signature added) and reads its whole body;
/// `Err` names `who` and the status when it was not answered with success.
pub async fn get_bytes(http: &crate::https::Https, url: &str, who: &str) -> Result<Vec<u8>, String> {
    let answer = send(http, "GET", url, std::iter::empty(), String::new(), who).await?;
    let status = answer.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(format!("{who} answered {status}"));
    }
    let bytes = aws_smithy_types::byte_stream::ByteStream::new(answer.into_body())
        .collect()
        .await
        .map_err(|e| format!("{who}'s answer could not be read: {e}"))?;
    Ok(bytes.into_bytes().to_vec())
}

/// The region and account of an ARN (`arn:<partition>:<service>:<region>:<account>:...`);
/// empty where the ARN does not say.
pub fn arn_region_and_account(arn: &str) -> (&str, &str) {
    let mut parts = arn.split(':').skip(3);
    (parts.next().unwrap_or_default(), parts.next().unwrap_or_default())
}

/// Why an event about `place` (account, region) is not this function's, which
/// runs in `own` (from its ARN; empty when unknown, as in tests run in-process):
/// an event forwarded from another account or region names a service there,
/// and acting on the local service of the same name would touch the wrong one.
pub fn elsewhere(place: (&str, &str), own: (&str, &str)) -> Option<String> {
    let ((account, region), (own_account, own_region)) = (place, own);
    let differs = |theirs: &str, ours: &str| !ours.is_empty() && theirs != ours;
    (differs(account, own_account) || differs(region, own_region)).then(|| {
        format!(
            "the event is about account {account} in {region}; this function acts in account {own_account} in {own_region}"
        )
    })
}

/// The SDK's configuration from the process environment: see [`sdk_config_from`].
pub fn sdk_config() -> SdkConfig {
    sdk_config_from(&ProcessEnv)
}

/// Region (`AWS_REGION`, else `AWS_DEFAULT_REGION`), credentials
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) and
/// `AWS_ENDPOINT_URL`, as Lambda sets them; the standard retry mode (3
/// attempts) and a 3.1 s connect timeout, as the SDK's own defaults have it.
///
/// Only the environment, not `aws-config`'s whole provider chain (profile
/// files, SSO, STS web identity, the instance metadata service): a function
/// on Lambda never needs them, and they (with the log filter's regex engine)
/// were about a sixth of a binary. Locally, export credentials into the
/// environment (`aws configure export-credentials --format env`).
pub fn sdk_config_from(vars: &impl Vars) -> SdkConfig {
    let non_empty = |name: &str| config::optional(vars, name);
    let region = non_empty("AWS_REGION").or_else(|| non_empty("AWS_DEFAULT_REGION")).map(Region::new);
    let credentials = match (non_empty("AWS_ACCESS_KEY_ID"), non_empty("AWS_SECRET_ACCESS_KEY")) {
        (Some(key), Some(secret)) => {
            Ok(Credentials::new(key, secret, non_empty("AWS_SESSION_TOKEN"), None, "environment"))
        }
        (key, _) => Err(format!(
            "{} is not set: nightshift takes its credentials from the environment, as Lambda provides them",
            if key.is_none() { "AWS_ACCESS_KEY_ID" } else { "AWS_SECRET_ACCESS_KEY" }
        )),
    };
    let mut config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .credentials_provider(SharedCredentialsProvider::new(EnvCredentials(credentials)))
        .http_client(http_client())
        .time_source(SharedTimeSource::new(SystemTimeSource::new()))
        .retry_config(RetryConfig::standard())
        .timeout_config(TimeoutConfig::builder().connect_timeout(crate::https::CONNECT_TIMEOUT).build());
    config.set_region(region);
    config.set_endpoint_url(non_empty("AWS_ENDPOINT_URL"));
    config.set_sleep_impl(default_async_sleep());
    config.build()
}

/// The environment's credentials, read once at init; or why there are none,
/// which every request then fails with.
#[derive(Debug)]
struct EnvCredentials(Result<Credentials, String>);

impl ProvideCredentials for EnvCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::ready(self.0.clone().map_err(CredentialsError::not_loaded))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_about_another_account_or_region_is_not_this_functions() {
        let own = ("123456789012", "eu-west-1");
        assert_eq!(elsewhere(("123456789012", "eu-west-1"), own), None);
        assert_eq!(elsewhere(("123456789012", "eu-west-1"), ("", "")), None, "own place unknown: not checked");
        for place in [("210987654321", "eu-west-1"), ("123456789012", "us-east-1")] {
            let why = elsewhere(place, own).unwrap();
            assert!(why.starts_with(&format!("the event is about account {} in {}", place.0, place.1)), "{why}");
        }
    }
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    async fn credentials(config: &SdkConfig) -> Result<Credentials, String> {
        let provider = config.credentials_provider().expect("a credentials provider");
        provider.provide_credentials().await.map_err(|e| DisplayErrorContext(e).to_string())
    }

    #[tokio::test]
    async fn region_credentials_and_endpoint_come_from_lambdas_variables() {
        let config = sdk_config_from(&vars(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ]));
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:5000"));
        assert!(has_endpoint_override(&config));
        let creds = credentials(&config).await.unwrap();
        assert_eq!((creds.access_key_id(), creds.secret_access_key()), ("AKIDEXAMPLE", "secret"));
        assert_eq!(creds.session_token(), Some("token"));
        assert_eq!(config.retry_config().map(|r| r.max_attempts()), Some(3));
    }

    #[tokio::test]
    async fn the_default_region_is_the_fallback_and_a_blank_endpoint_is_none() {
        let config = sdk_config_from(&vars(&[
            ("AWS_REGION", " "),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_ENDPOINT_URL", ""),
        ]));
        assert_eq!(config.region().map(|r| r.as_ref()), Some("us-east-1"));
        assert!(!has_endpoint_override(&config));
        assert_eq!(credentials(&config).await.unwrap().session_token(), None);
    }

    #[tokio::test]
    async fn missing_credentials_say_which_variable() {
        for (pairs, missing) in [
            (vec![("AWS_SECRET_ACCESS_KEY", "secret")], "AWS_ACCESS_KEY_ID"),
            (vec![("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")], "AWS_SECRET_ACCESS_KEY"),
        ] {
            let err = credentials(&sdk_config_from(&vars(&pairs))).await.unwrap_err();
            assert!(err.contains(&format!("{missing} is not set")), "{err}");
        }
    }
}
