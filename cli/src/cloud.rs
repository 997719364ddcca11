//! The AWS side of the command: credentials as the AWS CLI finds them
//! (profiles, SSO, the environment, OIDC in GitHub Actions), the stack's
//! outputs, and the functions it invokes.

use std::collections::BTreeMap;
use std::fmt;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use serde_json::Value;

/// What went wrong, said so that the user knows what to do.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into() }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// An SDK error in words: the service's code and message, else the whole chain.
pub fn said<E>(operation: &str, err: aws_sdk_lambda::error::SdkError<E>) -> Failure
where
    E: std::error::Error + aws_smithy_types::error::metadata::ProvideErrorMetadata + 'static,
{
    let text = match err.as_service_error() {
        Some(service) => format!("{}: {}", service.code().unwrap_or("error"), service.message().unwrap_or_default()),
        None => {
            let mut text = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    };
    let hint = if text.contains("credentials") || text.contains("ExpiredToken") || text.contains("InvalidClientTokenId")
    {
        " (sign in first: aws sso login, or set AWS_PROFILE)"
    } else {
        ""
    };
    Failure::new(format!("{operation} failed: {text}{hint}"))
}

/// Loads credentials and region as the AWS CLI does, with `--profile` and `--region` if given.
pub async fn load(profile: Option<&str>, region: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(nightshift::aws::http_client());
    if let Some(profile) = profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region.to_owned()));
    }
    loader.load().await
}

/// The deployed stack, as its outputs name its parts.
#[derive(Debug, Clone, Default)]
pub struct Stack {
    pub name: String,
    pub outputs: BTreeMap<String, String>,
}

pub const DEPLOY_ON_PUSH: &str = "DeployOnPushFunctionName";
pub const WATCH_ROLLOUTS: &str = "WatchRolloutsFunctionName";
pub const SCALE_TO_ZERO: &str = "ScaleToZeroFunctionName";
pub const RESET_DATASPACE: &str = "ResetDataspaceFunctionName";
pub const STATE_TABLE: &str = "StateTableName";
pub const SCALE_GROUP: &str = "ScaleGroupName";

impl Stack {
    pub async fn find(config: &SdkConfig, name: &str) -> Result<Self, Failure> {
        let cfn = aws_sdk_cloudformation::Client::new(config);
        let out = cfn.describe_stacks().stack_name(name).send().await.map_err(|err| {
            let failure = said("CloudFormation DescribeStacks", err);
            if failure.message.contains("does not exist") {
                Failure::new(format!(
                    "there is no stack {name:?} in {}: deploy nightshift with sam deploy, or name its stack with --stack",
                    config.region().map_or("this region".to_owned(), ToString::to_string)
                ))
            } else {
                failure
            }
        })?;
        let stack = out.stacks().first().ok_or_else(|| Failure::new(format!("CloudFormation has no stack {name}")))?;
        let outputs = stack
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
            .collect();
        Ok(Self { name: name.to_owned(), outputs })
    }

    /// An output the command needs, or an error that says which function the stack lacks.
    pub fn output(&self, key: &str) -> Result<&str, Failure> {
        self.outputs.get(key).map(String::as_str).ok_or_else(|| {
            let what = match key {
                DEPLOY_ON_PUSH => "deploy-on-push (EnableDeployOnPush=true)",
                WATCH_ROLLOUTS => "watch-rollouts (EnableWatchRollouts=true)",
                SCALE_TO_ZERO | SCALE_GROUP => "scale-to-zero (EnableScaleToZero=true)",
                RESET_DATASPACE => "reset-dataspace (EnableResetDataspace=true)",
                STATE_TABLE => "a state table (any rollout function)",
                _ => key,
            };
            Failure::new(format!("the stack {} has no output {key}: it was deployed without {what}", self.name))
        })
    }
}

/// Who is acting: the caller's identity (`sts:GetCallerIdentity`), written into each manual event's `by`.
pub async fn caller(config: &SdkConfig) -> Result<String, Failure> {
    let sts = aws_sdk_sts::Client::new(config);
    let out = sts.get_caller_identity().send().await.map_err(|e| said("STS GetCallerIdentity", e))?;
    Ok(out.arn().unwrap_or("unknown").to_owned())
}

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Invoked {
    /// The function's report.
    Report(Value),
    /// The function failed: its error type and message.
    Failed { error_type: String, message: String },
    /// Invoked asynchronously: it runs on its own.
    Started,
}

/// Invokes `function` with `event`, and waits for its report (or, `background`, does not).
pub async fn invoke(config: &SdkConfig, function: &str, event: &Value, background: bool) -> Result<Invoked, Failure> {
    let lambda = aws_sdk_lambda::Client::new(config);
    let kind = if background { InvocationType::Event } else { InvocationType::RequestResponse };
    let out = lambda
        .invoke()
        .function_name(function)
        .invocation_type(kind)
        .payload(Blob::new(event.to_string()))
        .send()
        .await
        .map_err(|e| said(&format!("Lambda Invoke of {function}"), e))?;
    if background {
        return Ok(Invoked::Started);
    }
    let payload: Value =
        out.payload().map_or(Value::Null, |p| serde_json::from_slice(p.as_ref()).unwrap_or(Value::Null));
    if out.function_error().is_some() {
        let text = |name: &str| payload.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
        return Ok(Invoked::Failed { error_type: text("errorType"), message: text("errorMessage") });
    }
    Ok(Invoked::Report(payload))
}
