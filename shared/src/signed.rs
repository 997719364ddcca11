//! One SigV4-signed JSON request over an HTTPS connector of the SDK's stack,
//! for the single operations whose SDK client would cost a function more than
//! its code: SSM's GetParameter, which every function sends to read its
//! channels' webhook URLs (the SSM client made each binary about 0.6 MB
//! bigger and took three past the 6 MB budget), and EventBridge Scheduler's
//! CreateSchedule, which watch-rollouts sends (see docs/performance.md).

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_async::rt::sleep::default_async_sleep;
use aws_smithy_http_client::Connector;
use aws_smithy_runtime_api::client::http::HttpConnectorSettings;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_types::SdkConfig;
use serde_json::{Value, json};

/// Signs and sends requests as the SDK's clients would: the same credentials,
/// region and `AWS_ENDPOINT_URL`, the same TLS stack (rustls with ring).
pub struct SignedHttp {
    sdk: SdkConfig,
    http: Connector,
}

/// An AWS answer: its status, the error type it names (`x-amzn-ErrorType`,
/// else the body's `__type`), and its body.
pub struct SignedResponse {
    pub status: u16,
    pub error_type: Option<String>,
    pub body: Vec<u8>,
}

impl SignedResponse {
    /// The error's words, as the SDK would say them: `<type>: <message>`.
    pub fn error(&self) -> String {
        let answer: Value = serde_json::from_slice(&self.body).unwrap_or(Value::Null);
        let kind = self.error_type.clone().or_else(|| answer["__type"].as_str().map(str::to_owned));
        let kind = kind.map(|k| {
            // `com.amazonaws.ssm#ParameterNotFound`, `ConflictException:http://internal...`
            let k = k.rsplit('#').next().unwrap_or(&k).to_owned();
            k.split(':').next().unwrap_or(&k).to_owned()
        });
        let message = answer["message"].as_str().or_else(|| answer["Message"].as_str()).map(str::to_owned);
        match (kind, message) {
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
        self.error().split(':').next().map(str::to_owned).filter(|k| !k.starts_with("HTTP "))
    }
}

impl SignedHttp {
    /// Over its own connector. Panics outside a Tokio runtime (it takes the runtime's sleep).
    pub fn new(sdk: &SdkConfig) -> Self {
        let sleep = default_async_sleep().expect("a Tokio runtime's sleep");
        use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
        let settings = HttpConnectorSettings::builder()
            .connect_timeout(Duration::from_millis(3100))
            .read_timeout(Duration::from_secs(10))
            .build();
        let http = Connector::builder()
            .connector_settings(settings)
            .sleep_impl(sleep)
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build();
        Self { sdk: sdk.clone(), http }
    }

    /// The connector, for requests that are not AWS's (webhooks).
    pub fn connector(&self) -> &Connector {
        &self.http
    }

    /// POSTs `body` to `service` (its signing name and endpoint prefix) at
    /// `path`, signed; `Err` when it could not be sent or its answer read.
    pub async fn post_json(
        &self,
        service: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: String,
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
        let base = self.sdk.endpoint_url().map_or_else(
            || format!("https://{service}.{region}.amazonaws.com"),
            |u| u.trim_end_matches('/').to_owned(),
        );
        let url = format!("{base}{path}");
        let host = base.split("://").nth(1).unwrap_or_default().to_owned();
        let headers: Vec<(&str, &str)> = headers.iter().copied().chain([("host", host.as_str())]).collect();
        let identity: Identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&region)
            .name(service)
            .time(SystemTime::now())
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
        let body = aws_smithy_types::byte_stream::ByteStream::new(response.into_body())
            .collect()
            .await
            .map_err(|e| format!("{service}'s answer could not be read: {e}"))?
            .into_bytes()
            .to_vec();
        Ok(SignedResponse { status, error_type, body })
    }

    /// SSM's GetParameter, decrypted: the value, and its type (`String`,
    /// `StringList` or `SecureString`). `Err` says what SSM answered (never the value).
    pub async fn get_parameter(&self, name: &str) -> Result<(String, String), String> {
        let headers = [("content-type", "application/x-amz-json-1.1"), ("x-amz-target", "AmazonSSM.GetParameter")];
        let body = json!({"Name": name, "WithDecryption": true}).to_string();
        let answer = self.post_json("ssm", "/", &headers, body).await?;
        if !(200..300).contains(&answer.status) {
            return Err(answer.error());
        }
        let value: Value =
            serde_json::from_slice(&answer.body).map_err(|e| format!("SSM's answer is not JSON: {e}"))?;
        let parameter = &value["Parameter"];
        let text = parameter["Value"].as_str().ok_or("SSM's answer holds no Parameter.Value")?;
        let kind = parameter["Type"].as_str().ok_or("SSM's answer holds no Parameter.Type")?;
        Ok((text.to_owned(), kind.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, error_type: Option<&str>, body: &[u8]) -> SignedResponse {
        SignedResponse { status, error_type: error_type.map(str::to_owned), body: body.to_vec() }
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
}
