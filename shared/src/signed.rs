//! SigV4-signed JSON requests over the process's one HTTPS connector
//! (`crate::https`), for the operations whose SDK client would cost a
//! function more than its code: SSM's GetParameter, which every function
//! sends to read its channels' webhook URLs (the SSM client made each binary
//! about 0.6 MB bigger and took three past the 6 MB budget), EventBridge
//! Scheduler's CreateSchedule, which watch-rollouts sends, the state table's
//! four DynamoDB operations (`crate::state`), and CodeDeploy's seven
//! (`crate::rollout::codedeploy`; see docs/performance.md).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

/// The connector signed requests go over: the process's one (`crate::https`).
pub use crate::https::Https as Connector;
pub use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_async::rt::sleep::{AsyncSleep, SharedAsyncSleep, default_async_sleep};
use aws_smithy_runtime_api::client::identity::Identity;
use aws_types::SdkConfig;
use serde_json::{Value, json};

/// Signs and sends requests as the SDK's clients would: the same credentials,
/// region, time source and `AWS_ENDPOINT_URL`, the same TLS stack (rustls
/// with ring), the endpoint of the region's partition, and the SDK's standard
/// retries: up to three attempts, with exponential backoff and jitter, for
/// throttling, 5xx answers and transport failures, and one corrected for a
/// clock that is off (by the answer's `Date`).
pub struct SignedHttp {
    sdk: SdkConfig,
    /// The process's connector, shared with the SDK's clients.
    http: Connector,
    sleep: SharedAsyncSleep,
    /// How far AWS's clock is ahead of ours (behind: negative), in milliseconds, learned from an answer
    /// that said the signature's time was off.
    skew_ms: AtomicI64,
}

/// An AWS answer: its status, the error type it names (`x-amzn-ErrorType`,
/// else the body's `__type`), its `Date`, and its body.
pub struct SignedResponse {
    pub status: u16,
    pub error_type: Option<String>,
    pub date: Option<String>,
    pub body: Vec<u8>,
}

/// An AWS service's JSON protocol, as [`SignedHttp::json_operation`] speaks it.
pub struct JsonProtocol {
    /// Its signing name and endpoint prefix.
    pub service: &'static str,
    /// `application/x-amz-json-1.0` or `-1.1`.
    pub content_type: &'static str,
    /// What `X-Amz-Target` starts with, before `.<operation>`.
    pub target_prefix: &'static str,
    /// How errors name it.
    pub name: &'static str,
}

/// DynamoDB (the state table).
pub const DYNAMODB: JsonProtocol = JsonProtocol {
    service: "dynamodb",
    content_type: "application/x-amz-json-1.0",
    target_prefix: "DynamoDB_20120810",
    name: "DynamoDB",
};

/// CodeDeploy (`crate::rollout::codedeploy`: its client cost more than its seven operations).
pub const CODEDEPLOY: JsonProtocol = JsonProtocol {
    service: "codedeploy",
    content_type: "application/x-amz-json-1.1",
    target_prefix: "CodeDeploy_20141006",
    name: "CodeDeploy",
};

/// ECS, for the few reads whose SDK operation costs more than its code (watch-rollouts' task reads, and ECS's history of a service's deployments).
pub const ECS: JsonProtocol = JsonProtocol {
    service: "ecs",
    content_type: "application/x-amz-json-1.1",
    target_prefix: "AmazonEC2ContainerServiceV20141113",
    name: "ECS",
};

/// CloudWatch (verify-rollout's alarms): its JSON protocol, 1.0.
pub const CLOUDWATCH: JsonProtocol = JsonProtocol {
    service: "monitoring",
    content_type: "application/x-amz-json-1.0",
    target_prefix: "GraniteServiceVersion20100801",
    name: "CloudWatch",
};

/// EventBridge (watch-rollouts' rollout-outcome events on the default bus).
pub const EVENTS: JsonProtocol = JsonProtocol {
    service: "events",
    content_type: "application/x-amz-json-1.1",
    target_prefix: "AWSEvents",
    name: "EventBridge",
};

/// Application Auto Scaling (a service put to sleep after its promotion, and woken by its next push).
pub const APPLICATION_AUTOSCALING: JsonProtocol = JsonProtocol {
    service: "application-autoscaling",
    content_type: "application/x-amz-json-1.1",
    target_prefix: "AnyScaleFrontendService",
    name: "Application Auto Scaling",
};

/// Attempts per request, as the SDK's standard retry mode makes them.
const MAX_ATTEMPTS: u32 = 3;
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(20);

/// What to do with an answer (or its absence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Done: a success, or an error that another try would not change.
    No,
    /// Throttled, a 5xx, or not reached: try again after a backoff.
    Transient,
    /// The signature's time was off: sign again with AWS's time, at once.
    ClockSkew,
}

/// The error codes the SDK retries as throttling.
const THROTTLING: [&str; 13] = [
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
];

/// The error codes that say the request's time was off.
const CLOCK_SKEW: [&str; 6] = [
    "RequestTimeTooSkewed",
    "RequestExpired",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "AuthFailure",
    "RequestInTheFuture",
];

impl SignedResponse {
    /// The error's words, as the SDK would say them: `<type>: <message>`.
    pub fn error(&self) -> String {
        let kind = self.code();
        match (kind, self.message()) {
            (Some(kind), Some(message)) => format!("{kind}: {message}"),
            (Some(kind), None) => kind,
            (None, _) => format!("HTTP {}", self.status),
        }
    }

    /// The error type without its namespace, when the answer is an error.
    pub fn code(&self) -> Option<String> {
        if (200..300).contains(&self.status) {
            return None;
        }
        let answer: Value = serde_json::from_slice(&self.body).unwrap_or(Value::Null);
        let kind = self.error_type.clone().or_else(|| answer["__type"].as_str().map(str::to_owned))?;
        // `com.amazonaws.ssm#ParameterNotFound`, `ConflictException:http://internal...`
        let kind = kind.rsplit('#').next().unwrap_or(&kind).to_owned();
        Some(kind.split(':').next().unwrap_or(&kind).to_owned())
    }

    /// The error's message, as the answer's body says it.
    pub fn message(&self) -> Option<String> {
        let answer: Value = serde_json::from_slice(&self.body).unwrap_or(Value::Null);
        answer["message"].as_str().or_else(|| answer["Message"].as_str()).map(str::to_owned)
    }

    /// Whether another attempt could answer otherwise.
    pub fn retry(&self) -> Retry {
        let code = self.code();
        match code.as_deref() {
            Some(code) if CLOCK_SKEW.contains(&code) && self.says_time_is_off() => Retry::ClockSkew,
            Some(code) if THROTTLING.contains(&code) => Retry::Transient,
            _ if self.status == 429 || matches!(self.status, 500 | 502 | 503 | 504) => Retry::Transient,
            _ => Retry::No,
        }
    }

    /// An `InvalidSignatureException` is a clock skew only when its message says the time is off
    /// ("Signature expired", "not yet current"); a wrong key is no skew.
    fn says_time_is_off(&self) -> bool {
        let code = self.code().unwrap_or_default();
        if !matches!(code.as_str(), "InvalidSignatureException" | "SignatureDoesNotMatch" | "AuthFailure") {
            return true;
        }
        self.message().is_some_and(|m| m.contains("Signature expired") || m.contains("not yet current"))
    }
}

/// The endpoint of `service` in `region`, in the region's partition: `amazonaws.com`,
/// `amazonaws.com.cn` for China, and the ISO partitions' own domains.
pub fn endpoint(service: &str, region: &str) -> String {
    let domain = match region {
        r if r.starts_with("cn-") => "amazonaws.com.cn",
        r if r.starts_with("us-isob-") => "sc2s.sgov.gov",
        r if r.starts_with("us-iso-") => "c2s.ic.gov",
        r if r.starts_with("eu-isoe-") => "cloud.adc-e.uk",
        r if r.starts_with("us-isof-") => "csp.hci.ic.gov",
        _ => "amazonaws.com",
    };
    format!("https://{service}.{region}.{domain}")
}

/// The `host` header of a base URL, as HTTP reads it: the authority, without user information.
pub fn host_of(base: &str) -> Result<String, String> {
    let uri: http::Uri = base.parse().map_err(|e| format!("the endpoint {base:?} is not a URL: {e}"))?;
    let authority = uri.authority().ok_or_else(|| format!("the endpoint {base:?} names no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("the endpoint {base:?} carries user information"));
    }
    Ok(authority.as_str().to_owned())
}

/// The wait before attempt `attempt` (1 for the first retry): up to 2^attempt seconds, at random, at most 20 s.
fn backoff(attempt: u32, random: f64) -> Duration {
    Duration::from_secs_f64(random.clamp(0.0, 1.0) * 2f64.powi(attempt as i32)).min(MAX_BACKOFF)
}

/// A number in [0, 1) from the clock's nanoseconds: jitter needs no more.
fn jitter() -> f64 {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    f64::from(nanos % 1_000_000) / 1_000_000.0
}

impl SignedHttp {
    /// Over the process's connector. Panics outside a Tokio runtime (it takes the runtime's sleep).
    pub fn new(sdk: &SdkConfig) -> Self {
        let sleep = default_async_sleep().expect("a Tokio runtime's sleep");
        Self { sdk: sdk.clone(), http: crate::https::shared(), sleep, skew_ms: AtomicI64::new(0) }
    }

    /// The same requests signed with other credentials (an assumed role's), over the same connector.
    pub fn with_credentials(&self, credentials: aws_credential_types::Credentials) -> Self {
        let sdk = self
            .sdk
            .to_builder()
            .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(credentials))
            .build();
        Self { sdk, http: self.http.clone(), sleep: self.sleep.clone(), skew_ms: AtomicI64::new(0) }
    }

    /// The SDK configuration its requests are signed with.
    pub fn sdk(&self) -> &SdkConfig {
        &self.sdk
    }

    /// Waits as the retries wait before their attempt `attempt` + 1 (up to
    /// 2^attempt seconds, at random): for work a caller asks for again itself,
    /// such as the keys BatchGetItem left unprocessed.
    pub async fn back_off(&self, attempt: u32) {
        self.sleep.sleep(backoff(attempt, jitter())).await;
    }

    /// The connector, for requests that are not AWS's (webhooks).
    pub fn connector(&self) -> &Connector {
        &self.http
    }

    /// Now, as AWS's clock has it: the SDK's time source, corrected by the skew learned.
    fn aws_now(&self) -> SystemTime {
        let now = self.sdk.time_source().map_or_else(SystemTime::now, |t| t.now());
        let skew = self.skew_ms.load(Ordering::Relaxed);
        let by = Duration::from_millis(skew.unsigned_abs());
        if skew < 0 { now - by } else { now + by }
    }

    /// Learns the skew from an answer's `Date` (RFC 1123).
    fn learn_skew(&self, date: &str, sent_at: SystemTime) {
        let Ok(theirs) = chrono::DateTime::parse_from_rfc2822(date) else { return };
        let theirs = SystemTime::from(theirs.with_timezone(&chrono::Utc));
        let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        // Added to what the request was signed with, which already held the skew learned before.
        let learned = match theirs.duration_since(sent_at) {
            Ok(ahead) => millis(ahead),
            Err(behind) => -millis(behind.duration()),
        };
        self.skew_ms.fetch_add(learned, Ordering::Relaxed);
    }

    /// POSTs `body` to `service` (its signing name and endpoint prefix) at
    /// `path`, signed, with the SDK's retries; `Err` when it could not be sent
    /// or its answer read on the last attempt.
    pub async fn post_json(
        &self,
        service: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: String,
    ) -> Result<SignedResponse, String> {
        let mut attempt = 1;
        loop {
            let sent_at = self.aws_now();
            let answer = self.post_once(service, path, headers, body.clone(), sent_at).await;
            let retry = match &answer {
                Ok(answer) => answer.retry(),
                // Not reached, or no answer in time: the SDK retries these as transient.
                Err(_) => Retry::Transient,
            };
            if retry == Retry::No || attempt >= MAX_ATTEMPTS {
                return answer;
            }
            match retry {
                Retry::ClockSkew => {
                    let date = answer.as_ref().ok().and_then(|a| a.date.clone());
                    if let Some(date) = date {
                        self.learn_skew(&date, sent_at);
                    }
                }
                _ => self.sleep.sleep(backoff(attempt, jitter())).await,
            }
            attempt += 1;
        }
    }

    async fn post_once(
        &self,
        service: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: String,
        at: SystemTime,
    ) -> Result<SignedResponse, String> {
        let region = self.sdk.region().map(ToString::to_string).ok_or("no AWS region is set")?;
        let credentials = self
            .sdk
            .credentials_provider()
            .ok_or("no AWS credentials are set")?
            .provide_credentials()
            .await
            .map_err(|e| format!("no AWS credentials: {e}"))?;
        // `AWS_ENDPOINT_URL` when set (as every client honours it), else the service's in the region.
        let base =
            self.sdk.endpoint_url().map_or_else(|| endpoint(service, &region), |u| u.trim_end_matches('/').to_owned());
        let url = format!("{base}{path}");
        let host = host_of(&base)?;
        let headers: Vec<(&str, &str)> = headers.iter().copied().chain([("host", host.as_str())]).collect();
        let identity: Identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&region)
            .name(service)
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| format!("signing: {e}"))?
            .into();
        let signable =
            SignableRequest::new("POST", url.as_str(), headers.iter().copied(), SignableBody::Bytes(body.as_bytes()))
                .map_err(|e| format!("signing: {e}"))?;
        let (instructions, _) = sign(signable, &params).map_err(|e| format!("signing: {e}"))?.into_parts();
        let signed = headers.iter().copied().chain(instructions.headers());
        let response = crate::aws::post(&self.http, &url, signed, body, service).await?;
        let status = response.status().as_u16();
        let error_type = response.headers().get("x-amzn-errortype").map(str::to_owned);
        let date = response.headers().get("date").map(str::to_owned);
        let body = aws_smithy_types::byte_stream::ByteStream::new(response.into_body())
            .collect()
            .await
            .map_err(|e| format!("{service}'s answer could not be read: {e}"))?
            .into_bytes()
            .to_vec();
        Ok(SignedResponse { status, error_type, date, body })
    }

    /// One operation of an AWS JSON protocol: `request` POSTed with
    /// `X-Amz-Target: <prefix>.<operation>`, with the retries of [`Self::post_json`];
    /// its answer, or the error naming the operation, `target`, and the error code AWS answered.
    pub async fn json_operation(
        &self,
        protocol: &JsonProtocol,
        operation: &'static str,
        target: &str,
        request: &Value,
    ) -> Result<Value, crate::aws::CallError> {
        let error = |code: Option<String>, message: String| crate::aws::CallError {
            operation,
            target: target.to_owned(),
            code,
            message,
        };
        let header = format!("{}.{operation}", protocol.target_prefix);
        let headers = [("content-type", protocol.content_type), ("x-amz-target", header.as_str())];
        let answer = self
            .post_json(protocol.service, "/", &headers, request.to_string())
            .await
            .map_err(|why| error(None, why))?;
        if !(200..300).contains(&answer.status) {
            let message = answer.message().unwrap_or_else(|| answer.error());
            return Err(error(answer.code(), message));
        }
        serde_json::from_slice(&answer.body)
            .map_err(|e| error(None, format!("{}'s answer is not JSON: {e}", protocol.name)))
    }

    /// SSM's GetParameter, decrypted: the value, and its type (`String`,
    /// `StringList` or `SecureString`). `Err` says what SSM answered (never the value).
    pub async fn get_parameter(&self, name: &str) -> Result<(String, String), String> {
        read_parameter(&self.parameter_answer(name).await?)
    }

    /// As [`Self::get_parameter`], with `None` when the parameter does not exist.
    pub async fn find_parameter(&self, name: &str) -> Result<Option<(String, String)>, String> {
        let answer = self.parameter_answer(name).await?;
        if answer.code().as_deref() == Some("ParameterNotFound") {
            return Ok(None);
        }
        read_parameter(&answer).map(Some)
    }

    /// Whether the parameter exists, read without decrypting it (no `kms:Decrypt` needed).
    pub async fn parameter_exists(&self, name: &str) -> Result<bool, String> {
        let answer = self.parameter_answer_with(name, false).await?;
        if answer.code().as_deref() == Some("ParameterNotFound") {
            return Ok(false);
        }
        read_parameter(&answer).map(|_| true)
    }

    async fn parameter_answer(&self, name: &str) -> Result<SignedResponse, String> {
        self.parameter_answer_with(name, true).await
    }

    async fn parameter_answer_with(&self, name: &str, decrypted: bool) -> Result<SignedResponse, String> {
        let headers = [("content-type", "application/x-amz-json-1.1"), ("x-amz-target", "AmazonSSM.GetParameter")];
        let body = json!({"Name": name, "WithDecryption": decrypted}).to_string();
        self.post_json("ssm", "/", &headers, body).await
    }
}

/// GetParameter's value and type, or its error as SSM says it.
fn read_parameter(answer: &SignedResponse) -> Result<(String, String), String> {
    if !(200..300).contains(&answer.status) {
        return Err(answer.error());
    }
    let value: Value = serde_json::from_slice(&answer.body).map_err(|e| format!("SSM's answer is not JSON: {e}"))?;
    let parameter = &value["Parameter"];
    let text = parameter["Value"].as_str().ok_or("SSM's answer holds no Parameter.Value")?;
    let kind = parameter["Type"].as_str().ok_or("SSM's answer holds no Parameter.Type")?;
    Ok((text.to_owned(), kind.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, error_type: Option<&str>, body: &[u8]) -> SignedResponse {
        SignedResponse { status, error_type: error_type.map(str::to_owned), date: None, body: body.to_vec() }
    }

    #[test]
    fn errors_read_as_the_sdk_would_say_them() {
        let body = br#"{"__type":"ParameterNotFound","message":"Parameter /nightshift/notify/slack/gone not found."}"#;
        assert_eq!(
            answer(400, None, body).error(),
            "ParameterNotFound: Parameter /nightshift/notify/slack/gone not found."
        );
        let namespaced = br#"{"__type":"com.amazonaws.ssm#AccessDeniedException","Message":"not allowed"}"#;
        assert_eq!(answer(400, None, namespaced).error(), "AccessDeniedException: not allowed");
        assert_eq!(answer(503, None, b"<html>").error(), "HTTP 503");
        // REST-JSON (Scheduler): the type in a header, sometimes with a suffix.
        let conflict = answer(
            409,
            Some("ConflictException:http://internal.amazon.com/"),
            br#"{"Message":"Schedule x already exists."}"#,
        );
        assert_eq!(conflict.error(), "ConflictException: Schedule x already exists.");
        assert_eq!(conflict.code().as_deref(), Some("ConflictException"));
        assert_eq!(answer(200, None, b"{}").code(), None);
        assert_eq!(answer(502, None, b"").code(), None);
    }

    #[test]
    fn throttling_5xx_and_a_clock_that_is_off_are_tried_again_and_nothing_else() {
        let json = |kind: &str, message: &str| format!(r#"{{"__type":"{kind}","message":"{message}"}}"#).into_bytes();
        let table = [
            (answer(200, None, b"{}"), Retry::No),
            (answer(400, None, &json("ThrottlingException", "Rate exceeded")), Retry::Transient),
            (answer(400, Some("TooManyRequestsException"), b"{}"), Retry::Transient),
            (answer(429, None, b""), Retry::Transient),
            (answer(500, None, b""), Retry::Transient),
            (answer(503, None, b"<html>"), Retry::Transient),
            (answer(501, None, b""), Retry::No),
            (answer(400, None, &json("ParameterNotFound", "gone")), Retry::No),
            (answer(400, None, &json("AccessDeniedException", "no")), Retry::No),
            (
                answer(
                    400,
                    None,
                    &json("InvalidSignatureException", "Signature expired: 20261205T080000Z is now earlier"),
                ),
                Retry::ClockSkew,
            ),
            (
                answer(403, Some("InvalidSignatureException"), &json("x", "Signature not yet current: y")),
                Retry::ClockSkew,
            ),
            (
                answer(
                    400,
                    None,
                    &json("InvalidSignatureException", "The request signature we calculated does not match"),
                ),
                Retry::No,
            ),
            (answer(403, None, &json("RequestTimeTooSkewed", "The difference is too large")), Retry::ClockSkew),
        ];
        for (answer, want) in table {
            assert_eq!(answer.retry(), want, "{} {}", answer.status, String::from_utf8_lossy(&answer.body));
        }
    }

    #[test]
    fn the_backoff_grows_with_each_attempt_at_random_and_never_past_20_seconds() {
        assert_eq!(backoff(1, 0.0), Duration::ZERO);
        assert_eq!(backoff(1, 0.5), Duration::from_secs(1));
        assert_eq!(backoff(2, 0.5), Duration::from_secs(2));
        assert_eq!(backoff(9, 1.0), MAX_BACKOFF);
        assert!((0.0..1.0).contains(&jitter()));
    }

    #[test]
    fn the_endpoint_is_the_regions_partitions_and_the_host_is_read_as_http_reads_it() {
        assert_eq!(endpoint("ssm", "eu-west-1"), "https://ssm.eu-west-1.amazonaws.com");
        assert_eq!(endpoint("ssm", "cn-north-1"), "https://ssm.cn-north-1.amazonaws.com.cn");
        assert_eq!(endpoint("scheduler", "us-gov-west-1"), "https://scheduler.us-gov-west-1.amazonaws.com");
        assert_eq!(endpoint("ssm", "us-iso-east-1"), "https://ssm.us-iso-east-1.c2s.ic.gov");
        assert_eq!(endpoint("ssm", "us-isob-east-1"), "https://ssm.us-isob-east-1.sc2s.sgov.gov");
        assert_eq!(
            host_of("https://ssm.cn-north-1.amazonaws.com.cn").as_deref(),
            Ok("ssm.cn-north-1.amazonaws.com.cn")
        );
        assert_eq!(host_of("http://127.0.0.1:4566/some/path").as_deref(), Ok("127.0.0.1:4566"));
        assert!(host_of("http://user@127.0.0.1:4566").unwrap_err().contains("user information"));
        assert!(host_of("not a url").is_err());
    }
}
