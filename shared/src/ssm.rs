//! SSM's GetParameter, decrypted, as one SigV4-signed JSON request over the
//! notifier's HTTPS connector. Every function reads its channels' webhook
//! URLs; the SSM client for this one operation made each binary about 0.6 MB
//! bigger and took three of them past the 6 MB budget (see README, Performance).

use std::time::SystemTime;

use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_http_client::Connector;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_types::SdkConfig;
use serde_json::{Value, json};

const TARGET: &str = "AmazonSSM.GetParameter";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// The endpoint: `AWS_ENDPOINT_URL` when set (as every client honours it), else SSM's in the region.
fn endpoint(sdk: &SdkConfig, region: &str) -> String {
    sdk.endpoint_url()
        .map_or_else(|| format!("https://ssm.{region}.amazonaws.com/"), |u| format!("{}/", u.trim_end_matches('/')))
}

/// An SSM error answer's words: `__type` (without its namespace) and message.
pub fn error_of(status: u16, body: &[u8]) -> String {
    let answer: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let kind = answer["__type"].as_str().map(|t| t.rsplit('#').next().unwrap_or(t).to_owned());
    let message = answer["message"].as_str().or_else(|| answer["Message"].as_str()).map(str::to_owned);
    match (kind, message) {
        (Some(kind), Some(message)) => format!("{kind}: {message}"),
        (Some(kind), None) => kind,
        (None, _) => format!("HTTP {status}"),
    }
}

/// The parameter's value, decrypted. `Err` says what SSM answered (never the value).
pub async fn get_parameter(sdk: &SdkConfig, http: &Connector, name: &str) -> Result<String, String> {
    let region = sdk.region().map(ToString::to_string).ok_or("no AWS region is set")?;
    let credentials = sdk
        .credentials_provider()
        .ok_or("no AWS credentials are set")?
        .provide_credentials()
        .await
        .map_err(|e| format!("no AWS credentials: {e}"))?;
    let url = endpoint(sdk, &region);
    let body = json!({"Name": name, "WithDecryption": true}).to_string();
    let host = url.split("://").nth(1).and_then(|rest| rest.split('/').next()).unwrap_or_default().to_owned();
    let headers = [("content-type", CONTENT_TYPE), ("x-amz-target", TARGET), ("host", host.as_str())];
    let identity: Identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&region)
        .name("ssm")
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
    let response = crate::aws::post(http, &url, signed, body.clone(), "SSM").await?;
    let status = response.status().as_u16();
    let bytes = aws_smithy_types::byte_stream::ByteStream::new(response.into_body())
        .collect()
        .await
        .map_err(|e| format!("SSM's answer could not be read: {e}"))?
        .into_bytes();
    if !(200..300).contains(&status) {
        return Err(error_of(status, &bytes));
    }
    let answer: Value = serde_json::from_slice(&bytes).map_err(|e| format!("SSM's answer is not JSON: {e}"))?;
    answer["Parameter"]["Value"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "SSM's answer holds no Parameter.Value".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssm_errors_read_as_the_sdk_would_say_them() {
        let body = br#"{"__type":"ParameterNotFound","message":"Parameter /nightshift/notify/slack/gone not found."}"#;
        assert_eq!(error_of(400, body), "ParameterNotFound: Parameter /nightshift/notify/slack/gone not found.");
        let namespaced = br#"{"__type":"com.amazonaws.ssm#AccessDeniedException","Message":"not allowed"}"#;
        assert_eq!(error_of(400, namespaced), "AccessDeniedException: not allowed");
        assert_eq!(error_of(503, b"<html>"), "HTTP 503");
    }
}
