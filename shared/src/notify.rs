//! Telling people: Slack and Microsoft Teams channels, whose webhook URLs are
//! SSM parameters (SecureString), a message rendered for each kind, and the
//! sending, over the same HTTPS stack the AWS clients use.
//!
//! A channel `<kind>/<name>` (`slack/data-team`, `teams/ops`) is the SSM
//! parameter `<NOTIFY_PARAMETER_PREFIX><kind>/<name>`. Webhook URLs are
//! secrets: they appear in no environment variable, log line or report.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_smithy_async::rt::sleep::{AsyncSleep, SharedAsyncSleep, default_async_sleep};
use aws_types::SdkConfig;
use serde::Serialize;
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::config::{self, ConfigError, Vars};
use crate::report::LambdaFailure;
use crate::signed::SignedHttp;

/// The service tag naming the channels told about its rollouts (deploy-on-push's and watch-rollouts').
pub const NOTIFY_TAG: &str = "nightshift:notify";
/// Where the webhook parameters live unless `NOTIFY_PARAMETER_PREFIX` says otherwise.
pub const DEFAULT_PARAMETER_PREFIX: &str = "/nightshift/notify/";
/// How long a warm process trusts a webhook URL it read.
const URL_TTL: Duration = Duration::from_secs(300);
/// Slack's 429: wait as long as `Retry-After` asks, up to this, at most this many times.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
const ATTEMPTS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Slack,
    Teams,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Slack => "slack",
            Self::Teams => "teams",
        }
    }
}

/// A channel to tell: a kind and a name, its webhook URL an SSM parameter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Channel {
    pub kind: Kind,
    pub name: String,
}

impl Channel {
    pub fn parse(value: &str) -> Result<Self, String> {
        let (kind, name) = value.split_once('/').unwrap_or((value, ""));
        let kind = match kind {
            "slack" => Kind::Slack,
            "teams" => Kind::Teams,
            _ => return Err(format!("channel {value:?} is not slack/<name> or teams/<name>")),
        };
        // SSM parameter names: letters, digits, and . - _ / (the name may nest).
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/');
        if name.is_empty() || !name.chars().all(valid) || name.starts_with('/') || name.ends_with('/') {
            return Err(format!(
                "channel {value:?}: the name after {}/ must be letters, digits, . - _ or /",
                kind.name()
            ));
        }
        Ok(Self { kind, name: name.to_owned() })
    }

    /// The SSM parameter holding the channel's webhook URL.
    pub fn parameter(&self, prefix: &str) -> String {
        format!("{prefix}{self}")
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.name(), self.name)
    }
}

/// Channels separated by spaces (or commas), each once, in order.
pub fn parse_channels(value: &str) -> Result<Vec<Channel>, String> {
    let mut channels: Vec<Channel> = Vec::new();
    for part in value.split(|c: char| c.is_whitespace() || c == ',').filter(|p| !p.is_empty()) {
        let channel = Channel::parse(part)?;
        if !channels.contains(&channel) {
            channels.push(channel);
        }
    }
    Ok(channels)
}

/// What is told: `failures` (the default) or `all`, notable work too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    #[default]
    Failures,
    All,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    /// `NOTIFY_CHANNELS`: told about this function's failed runs (and, at `all`, its notable work).
    pub channels: Vec<Channel>,
    /// `NOTIFY_PARAMETER_PREFIX`.
    pub prefix: String,
    /// `NOTIFY_LEVEL`.
    pub level: Level,
}

impl NotifyConfig {
    pub fn from_vars(vars: &impl Vars) -> Result<Self, ConfigError> {
        let raw = config::optional(vars, "NOTIFY_CHANNELS").unwrap_or_default();
        let channels = parse_channels(&raw).map_err(|why| {
            ConfigError::new("NOTIFY_CHANNELS", Some(&raw), format!("channels separated by spaces ({why})"))
        })?;
        let prefix =
            config::optional(vars, "NOTIFY_PARAMETER_PREFIX").unwrap_or_else(|| DEFAULT_PARAMETER_PREFIX.into());
        if !prefix.starts_with('/') || !prefix.ends_with('/') {
            let expected = "an SSM parameter path that starts and ends with / (default /nightshift/notify/)";
            return Err(ConfigError::new("NOTIFY_PARAMETER_PREFIX", Some(&prefix), expected));
        }
        let level = match config::optional(vars, "NOTIFY_LEVEL").as_deref() {
            None | Some("failures") => Level::Failures,
            Some("all") => Level::All,
            Some(other) => return Err(ConfigError::new("NOTIFY_LEVEL", Some(other), "failures or all")),
        };
        Ok(Self { channels, prefix, level })
    }
}

/// How a message looks: a failure stands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Failure,
    Success,
    Info,
}

/// What to tell: what happened (title, summary), where, which image, why (facts), and a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub tone: Tone,
    pub title: String,
    pub summary: String,
    pub facts: Vec<(String, String)>,
    /// A label and a URL (the service or the function in the AWS console).
    pub link: Option<(String, String)>,
}

impl Notice {
    /// A function's failed run.
    pub fn failed_run(function: &str, error_type: &str, message: &str, region: &str, stack: Option<&str>) -> Self {
        let log_group = match stack {
            Some(stack) => format!("/aws/lambda/{stack}-{function}"),
            None => format!("/aws/lambda/{function}"),
        };
        let encoded = log_group.replace('/', "$252F");
        Self {
            tone: Tone::Failure,
            title: format!("{function} failed"),
            summary: format!("A {function} run ended in {error_type}."),
            facts: vec![
                ("Function".into(), function.to_owned()),
                ("Error".into(), error_type.to_owned()),
                ("Why".into(), message.to_owned()),
            ],
            link: Some((
                "Logs".into(),
                format!(
                    "https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logsV2:log-groups/log-group/{encoded}"
                ),
            )),
        }
    }
}

fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// At most `max` characters, the last an ellipsis when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut clipped: String = text.chars().take(max.saturating_sub(1)).collect();
    clipped.push('…');
    clipped
}

/// Slack incoming webhook: Block Kit blocks, and the plain text Slack shows
/// in notifications and where blocks cannot be shown.
pub fn slack_message(notice: &Notice) -> Value {
    let icon = match notice.tone {
        Tone::Failure => ":red_circle:",
        Tone::Success => ":large_green_circle:",
        Tone::Info => ":information_source:",
    };
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": clip(&notice.title, 150)}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("{icon} {}", slack_escape(&notice.summary))}}),
    ];
    if !notice.facts.is_empty() {
        let fields: Vec<Value> = notice
            .facts
            .iter()
            .take(10)
            .map(|(k, v)| json!({"type": "mrkdwn", "text": clip(&format!("*{}*\n{}", slack_escape(k), slack_escape(v)), 2000)}))
            .collect();
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    if let Some((label, url)) = &notice.link {
        blocks.push(json!({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": clip(label, 75)}, "url": url}
        ]}));
    }
    let facts: Vec<String> = notice.facts.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let text = format!("{}: {} {}", notice.title, notice.summary, facts.join("; "));
    json!({"text": clip(text.trim_end(), 3000), "blocks": blocks})
}

/// Teams Workflows webhook: a message carrying one Adaptive Card 1.4.
pub fn teams_message(notice: &Notice) -> Value {
    let color = match notice.tone {
        Tone::Failure => "Attention",
        Tone::Success => "Good",
        Tone::Info => "Default",
    };
    let mut body = vec![
        json!({"type": "TextBlock", "text": notice.title, "weight": "Bolder", "size": "Medium", "color": color, "wrap": true}),
        json!({"type": "TextBlock", "text": notice.summary, "wrap": true}),
    ];
    if !notice.facts.is_empty() {
        let facts: Vec<Value> = notice.facts.iter().map(|(k, v)| json!({"title": k, "value": v})).collect();
        body.push(json!({"type": "FactSet", "facts": facts}));
    }
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    });
    if let Some((label, url)) = &notice.link {
        card["actions"] = json!([{"type": "Action.OpenUrl", "title": label, "url": url}]);
    }
    json!({"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": card}
    ]})
}

/// What became of a notice on one channel (no URL: it is a secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub channel: String,
    pub delivered: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Whether a notice reached anyone: the run fails only when every channel failed.
pub fn all_failed(deliveries: &[Delivery]) -> bool {
    !deliveries.is_empty() && deliveries.iter().all(|d| !d.delivered)
}

/// Why a webhook URL is not one nightshift posts to, or `None`: HTTPS to a
/// host, or plain HTTP to this machine only (a local receiver, as the tests
/// run). The URL is read as HTTP reads it, so `http://localhost:1@evil.example/`
/// (whose host is `evil.example`) is refused, as is any user information.
fn url_problem(url: &str) -> Option<&'static str> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains(['@', '\\']) || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("the parameter's URL carries user information or characters a URL cannot hold");
    }
    let host = match authority.strip_prefix('[') {
        // An IPv6 literal: `[::1]:8080`.
        Some(literal) => literal.split_once(']').map(|(h, _)| h).unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    let host_ok = !host.is_empty()
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
        && !host.starts_with(['.', '-']);
    match scheme.to_ascii_lowercase().as_str() {
        "https" if host_ok => None,
        "http" if matches!(host, "127.0.0.1" | "localhost" | "::1") => None,
        "https" | "http" if !host_ok => Some("the parameter's URL names no host"),
        _ => Some("the parameter does not hold an https:// URL"),
    }
}

/// What a webhook's answer means: delivered, wait and try again, or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookOutcome {
    Delivered,
    RetryAfter(Duration),
    Failed(String),
}

/// Reads a webhook's answer: 200, 201 and 202 are delivered (Teams' Workflows
/// answer 202); 429 waits for `Retry-After` (seconds; 1 when absent).
pub fn webhook_outcome(status: u16, retry_after: Option<&str>) -> WebhookOutcome {
    match status {
        200..=202 => WebhookOutcome::Delivered,
        429 => {
            let seconds = retry_after.and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(1);
            WebhookOutcome::RetryAfter(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
        }
        other => WebhookOutcome::Failed(format!("the webhook answered HTTP {other}")),
    }
}

/// Sends notices to channels.
pub struct Notifier {
    config: NotifyConfig,
    /// SSM's GetParameter, and the connector the webhooks are posted over.
    aws: Arc<SignedHttp>,
    sleep: SharedAsyncSleep,
    urls: Mutex<HashMap<Channel, (String, Instant)>>,
}

impl Notifier {
    pub fn new(config: NotifyConfig, sdk: &SdkConfig) -> Self {
        Self::over(config, Arc::new(SignedHttp::new(sdk)))
    }

    /// Over the signed connector a function's other signed requests use, so
    /// that a process builds one (each reads the platform's root certificates).
    pub fn over(config: NotifyConfig, aws: Arc<SignedHttp>) -> Self {
        let sleep = default_async_sleep().expect("a Tokio runtime's sleep");
        Self { config, aws, sleep, urls: Mutex::new(HashMap::new()) }
    }

    pub fn config(&self) -> &NotifyConfig {
        &self.config
    }

    /// Tells each channel; one that fails does not stop the others.
    pub async fn tell(&self, channels: &[Channel], notice: &Notice) -> Vec<Delivery> {
        let mut deliveries = Vec::new();
        for channel in channels {
            let result = self.tell_one(channel, notice).await;
            match &result {
                Ok(()) => info!(channel = %channel, title = %notice.title, "told"),
                Err(error) => warn!(channel = %channel, title = %notice.title, %error, "not told"),
            }
            deliveries.push(Delivery { channel: channel.to_string(), delivered: result.is_ok(), error: result.err() });
        }
        deliveries
    }

    /// Tells `NOTIFY_CHANNELS` that a run failed.
    pub async fn tell_failed_run(&self, function: &str, error_type: &str, message: &str) -> Vec<Delivery> {
        if self.config.channels.is_empty() {
            return Vec::new();
        }
        let region = std::env::var("AWS_REGION").unwrap_or_default();
        let stack = std::env::var("STACK_NAME").ok().filter(|s| !s.trim().is_empty());
        let notice = Notice::failed_run(function, error_type, message, &region, stack.as_deref());
        self.tell(&self.config.channels, &notice).await
    }

    async fn tell_one(&self, channel: &Channel, notice: &Notice) -> Result<(), String> {
        let url = self.url(channel).await?;
        let body = match channel.kind {
            Kind::Slack => slack_message(notice),
            Kind::Teams => teams_message(notice),
        }
        .to_string();
        for attempt in 1..=ATTEMPTS {
            match self.post(&url, &body).await? {
                WebhookOutcome::Delivered => return Ok(()),
                WebhookOutcome::RetryAfter(wait) if attempt < ATTEMPTS => self.sleep.sleep(wait).await,
                WebhookOutcome::RetryAfter(_) => {
                    return Err(format!("the webhook still answered 429 after {ATTEMPTS} tries"));
                }
                WebhookOutcome::Failed(why) => {
                    // A webhook that is gone or refused may have been replaced: read it again next time.
                    self.urls.lock().unwrap_or_else(|p| p.into_inner()).remove(channel);
                    return Err(why);
                }
            }
        }
        Err("no attempt was made".into())
    }

    async fn post(&self, url: &str, body: &str) -> Result<WebhookOutcome, String> {
        let headers = [("content-type", "application/json")].into_iter();
        let response = crate::aws::post(self.aws.connector(), url, headers, body.to_owned(), "the webhook").await?;
        Ok(webhook_outcome(response.status().as_u16(), response.headers().get("retry-after")))
    }

    async fn url(&self, channel: &Channel) -> Result<String, String> {
        if let Some((url, at)) = self.urls.lock().unwrap_or_else(|p| p.into_inner()).get(channel)
            && at.elapsed() < URL_TTL
        {
            return Ok(url.clone());
        }
        let name = channel.parameter(&self.config.prefix);
        let (url, kind) =
            self.aws.get_parameter(&name).await.map_err(|why| format!("SSM GetParameter on {name} failed: {why}"))?;
        // A webhook URL is a credential: whoever holds it posts to the channel.
        if kind != "SecureString" {
            return Err(format!("{name} is a {kind} parameter; a webhook URL must be kept as a SecureString"));
        }
        let url = url.trim().to_owned();
        if let Some(problem) = url_problem(&url) {
            return Err(format!("{name}: {problem}"));
        }
        self.urls.lock().unwrap_or_else(|p| p.into_inner()).insert(channel.clone(), (url.clone(), Instant::now()));
        Ok(url)
    }
}

/// A run's work that someone may want to know of (a group put to sleep, a
/// dataspace reset), told to `NOTIFY_CHANNELS` at `NOTIFY_LEVEL=all`.
pub trait Notable {
    /// `None`: nothing worth telling (and always with `DRY_RUN`).
    fn notable(&self) -> Option<Notice> {
        None
    }
}

/// Runs one invocation (whose handler logged its report line) and tells
/// `NOTIFY_CHANNELS` when it fails, and, at `NOTIFY_LEVEL=all`, its notable
/// work (the run's outcome stays what it was).
pub async fn with_alerts<T, E, F>(notifier: &Notifier, function: &str, run: F) -> Result<T, E>
where
    F: std::future::Future<Output = Result<T, E>>,
    E: LambdaFailure,
    T: Notable,
{
    let result = run.await;
    match &result {
        Err(err) => {
            notifier.tell_failed_run(function, err.error_type(), &err.to_string()).await;
        }
        Ok(report) if notifier.config.level == Level::All && !notifier.config.channels.is_empty() => {
            if let Some(notice) = report.notable() {
                notifier.tell(&notifier.config.channels, &notice).await;
            }
        }
        Ok(_) => {}
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_kind_and_name_separated_by_spaces() {
        let parsed = parse_channels("slack/data-team  teams/ops,slack/data-team").unwrap();
        let names: Vec<String> = parsed.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["slack/data-team", "teams/ops"]);
        assert_eq!(parsed[0].parameter(DEFAULT_PARAMETER_PREFIX), "/nightshift/notify/slack/data-team");
        assert_eq!(parse_channels("").unwrap(), []);
        let refused = [
            ("email/ops", "channel \"email/ops\" is not slack/<name> or teams/<name>"),
            ("slack", "channel \"slack\": the name after slack/ must be letters, digits, . - _ or /"),
            ("teams/ops!", "channel \"teams/ops!\": the name after teams/ must be letters, digits, . - _ or /"),
            // A space separates channels: the second of these is not one.
            ("slack/a b", "channel \"b\" is not slack/<name> or teams/<name>"),
        ];
        for (value, why) in refused {
            assert_eq!(parse_channels(value).unwrap_err(), why, "{value}");
        }
    }

    #[test]
    fn the_settings_say_which_variable_is_wrong() {
        let config =
            NotifyConfig::from_vars(&[("NOTIFY_CHANNELS", "slack/data-team"), ("NOTIFY_LEVEL", "all")]).unwrap();
        assert_eq!(
            (config.channels.len(), config.prefix.as_str(), config.level),
            (1, DEFAULT_PARAMETER_PREFIX, Level::All)
        );
        let defaults = NotifyConfig::from_vars(&[("UNRELATED", "x")]).unwrap();
        assert_eq!((defaults.channels.len(), defaults.level), (0, Level::Failures));
        let bad = |vars: [(&str, &str); 1]| NotifyConfig::from_vars(&vars).unwrap_err().to_string();
        assert_eq!(bad([("NOTIFY_LEVEL", "loud")]), "NOTIFY_LEVEL is \"loud\"; expected failures or all");
        assert_eq!(
            bad([("NOTIFY_PARAMETER_PREFIX", "nightshift")]),
            "NOTIFY_PARAMETER_PREFIX is \"nightshift\"; expected an SSM parameter path that starts and ends with / (default /nightshift/notify/)"
        );
        assert!(
            bad([("NOTIFY_CHANNELS", "pager/ops")]).starts_with("NOTIFY_CHANNELS is \"pager/ops\"; expected channels")
        );
    }

    #[test]
    fn webhook_answers_read_as_slack_and_teams_give_them() {
        let table = [
            (200, None, WebhookOutcome::Delivered),
            (201, None, WebhookOutcome::Delivered),
            (202, None, WebhookOutcome::Delivered),
            (429, Some("3"), WebhookOutcome::RetryAfter(Duration::from_secs(3))),
            (429, None, WebhookOutcome::RetryAfter(Duration::from_secs(1))),
            (429, Some("3600"), WebhookOutcome::RetryAfter(MAX_RETRY_AFTER)),
            (400, None, WebhookOutcome::Failed("the webhook answered HTTP 400".into())),
            (500, None, WebhookOutcome::Failed("the webhook answered HTTP 500".into())),
        ];
        for (status, retry_after, expected) in table {
            assert_eq!(webhook_outcome(status, retry_after), expected, "{status}");
        }
    }

    #[test]
    fn a_webhook_url_is_https_to_a_host_or_plain_http_to_this_machine_as_http_reads_it() {
        let refused_userinfo = Some("the parameter's URL carries user information or characters a URL cannot hold");
        let table = [
            ("https://hooks.slack.com/services/T/B/x", None),
            ("https://prod-12.westeurope.logic.azure.com:443/workflows/1?api-version=2016-06-01", None),
            ("HTTPS://hooks.slack.com/services/T/B/x", None),
            ("http://127.0.0.1:5000/hook", None),
            ("http://localhost/hook", None),
            ("http://[::1]:5000/hook", None),
            ("http://hooks.example.com/x", Some("the parameter does not hold an https:// URL")),
            // The host HTTP reads here is evil.example: sent in plain text on a prefix match.
            ("http://localhost:1@evil.example/x", refused_userinfo),
            ("http://127.0.0.1@evil.example/", refused_userinfo),
            ("https://user:pass@hooks.slack.com/x", refused_userinfo),
            ("http://127.0.0.1.evil.example/x", Some("the parameter does not hold an https:// URL")),
            ("http://localhost.evil.example/x", Some("the parameter does not hold an https:// URL")),
            ("https:///services/x", Some("the parameter's URL names no host")),
            ("https://", Some("the parameter's URL names no host")),
            ("https://hooks slack.com/x", refused_userinfo),
            ("hooks.slack.com/services/x", Some("the parameter does not hold an https:// URL")),
            ("ftp://hooks.slack.com/x", Some("the parameter does not hold an https:// URL")),
        ];
        for (url, want) in table {
            assert_eq!(url_problem(url), want, "{url}");
        }
        let d = |ok: bool| Delivery { channel: "slack/x".into(), delivered: ok, error: None };
        assert!(all_failed(&[d(false), d(false)]) && !all_failed(&[d(false), d(true)]) && !all_failed(&[]));
    }

    fn notice() -> Notice {
        Notice {
            tone: Tone::Failure,
            title: "Rollout rolled back: shop/api".into(),
            summary: "ECS rolled shop/api back to api:7 <after> the circuit breaker tripped & stopped it.".into(),
            facts: vec![("Where".into(), "shop/api".into()), ("Image".into(), "app = shop/api:1.3.0".into())],
            link: Some((
                "Open the service".into(),
                "https://eu-west-1.console.aws.amazon.com/ecs/v2/clusters/shop/services/api".into(),
            )),
        }
    }

    #[test]
    fn slack_gets_block_kit_with_a_plain_text_fallback() {
        let golden = json!({
            "text": "Rollout rolled back: shop/api: ECS rolled shop/api back to api:7 <after> the circuit breaker tripped & stopped it. Where: shop/api; Image: app = shop/api:1.3.0",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": "Rollout rolled back: shop/api"}},
                {"type": "section", "text": {"type": "mrkdwn", "text": ":red_circle: ECS rolled shop/api back to api:7 &lt;after&gt; the circuit breaker tripped &amp; stopped it."}},
                {"type": "section", "fields": [
                    {"type": "mrkdwn", "text": "*Where*\nshop/api"},
                    {"type": "mrkdwn", "text": "*Image*\napp = shop/api:1.3.0"}
                ]},
                {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open the service"},
                    "url": "https://eu-west-1.console.aws.amazon.com/ecs/v2/clusters/shop/services/api"}]}
            ]
        });
        assert_eq!(slack_message(&notice()), golden);
    }

    #[test]
    fn teams_gets_an_adaptive_card_1_4() {
        let golden = json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {"type": "TextBlock", "text": "Rollout rolled back: shop/api", "weight": "Bolder", "size": "Medium", "color": "Attention", "wrap": true},
                        {"type": "TextBlock", "text": "ECS rolled shop/api back to api:7 <after> the circuit breaker tripped & stopped it.", "wrap": true},
                        {"type": "FactSet", "facts": [
                            {"title": "Where", "value": "shop/api"},
                            {"title": "Image", "value": "app = shop/api:1.3.0"}
                        ]}
                    ],
                    "actions": [{"type": "Action.OpenUrl", "title": "Open the service",
                        "url": "https://eu-west-1.console.aws.amazon.com/ecs/v2/clusters/shop/services/api"}]
                }
            }]
        });
        assert_eq!(teams_message(&notice()), golden);
    }

    #[test]
    fn a_failed_run_links_to_its_log_group() {
        let notice = Notice::failed_run(
            "expire-logs",
            "S3Error",
            "ListObjectVersions on logs failed: Access Denied",
            "eu-west-1",
            Some("prod"),
        );
        assert_eq!(notice.title, "expire-logs failed");
        assert_eq!(notice.facts[2], ("Why".into(), "ListObjectVersions on logs failed: Access Denied".into()));
        assert_eq!(
            notice.link.unwrap().1,
            "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logsV2:log-groups/log-group/$252Faws$252Flambda$252Fprod-expire-logs"
        );
    }
}
