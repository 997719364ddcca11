//! Telling people: every built function tells `NOTIFY_CHANNELS` about its
//! failed runs, on Slack and Teams, with webhook URLs from SSM that never show.

use nightshift_tests::runtime::{FunctionProcess, Outcome, binary};
use nightshift_tests::sandbox::Sandbox;
use serde_json::{Value, json};

const FUNCTIONS: [(&str, &[(&str, &str)]); 6] = [
    ("expire-logs", &[("LOG_BUCKET", "grafana-logs")]),
    ("deploy-on-push", &[]),
    ("scale-to-zero", &[("CLUSTERS", "dagster")]),
    ("scale-on-ingress", &[("CLUSTERS", "dagster")]),
    ("reset-dataspace", &[("DATASPACE_MANIFEST", "s3://dataspace/mvd.json"), ("DATASPACE_NAME", "mvd")]),
    ("watch-rollouts", &[]),
];

fn spawn(sandbox: &Sandbox, function: &str, settings: &[(&str, &str)], channels: &str) -> FunctionProcess {
    let mut env = sandbox.function_env();
    env.extend(settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    env.push(("NOTIFY_CHANNELS".into(), channels.into()));
    env.push(("STACK_NAME".into(), "nightshift".into()));
    FunctionProcess::spawn(&binary(function), &env)
}

/// An event no function takes: each run fails on it, before touching AWS.
fn malformed() -> Value {
    json!({"version": "0", "id": "1", "detail-type": 42, "source": "aws.events", "time": "not a time"})
}

fn header(slack: &Value) -> &str {
    slack["blocks"][0]["text"]["text"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn every_function_tells_its_channels_when_a_run_fails() {
    // Given a Slack and a Teams channel, their webhook URLs in SSM
    let sandbox = Sandbox::start();
    sandbox.channel("slack/data-team", "slack-data-team").await;
    sandbox.channel("teams/ops", "teams-ops").await;

    for (n, (function, settings)) in FUNCTIONS.iter().enumerate() {
        // When a run fails
        let mut process = spawn(&sandbox, function, settings, "slack/data-team teams/ops");
        let Outcome::Error { error_type, error_message } = process.invoke(&malformed()) else {
            panic!("{function}: the malformed event should fail the run");
        };

        // Then each channel was told once, what failed and why, in its own format
        let slack = sandbox.webhooks("slack-data-team");
        let teams = sandbox.webhooks("teams-ops");
        assert_eq!((slack.len(), teams.len()), (n + 1, n + 1), "{function}");
        let (slack, teams) = (&slack[n], &teams[n]);
        assert_eq!(header(slack), format!("{function} failed"));
        let text = slack["text"].as_str().unwrap();
        assert!(text.contains(&error_type) && text.contains(&error_message), "{function}: {text}");
        let button = &slack["blocks"][3]["elements"][0]["url"];
        assert!(
            button.as_str().unwrap().ends_with(&format!("$252Faws$252Flambda$252Fnightshift-{function}")),
            "{button}"
        );
        let card = &teams["attachments"][0]["content"];
        assert_eq!((card["type"].as_str(), card["version"].as_str()), (Some("AdaptiveCard"), Some("1.4")));
        assert_eq!(card["body"][0]["text"], format!("{function} failed"));
        assert_eq!(card["body"][2]["facts"][1], json!({"title": "Error", "value": error_type}));

        // And the webhook URLs appear nowhere in what the function wrote
        let output = process.output();
        assert!(output.contains("told channel=teams/ops"), "{function}: {output}");
        assert!(!output.contains("/_sandbox/webhook/"), "{function}: {output}");
    }
}

#[tokio::test]
async fn a_busy_slack_is_waited_for_and_a_failing_channel_does_not_stop_the_others() {
    // Given Slack answering 429 (retry after 1 s) once, and a Teams webhook that fails
    let sandbox = Sandbox::start();
    sandbox.channel("slack/data-team", "slack").await;
    sandbox.channel("teams/ops", "teams").await;
    sandbox.webhook_answers("slack", json!([{"status": 429, "retry_after": 1}]));
    sandbox.webhook_answers("teams", json!([{"status": 500}]));
    let mut process = spawn(&sandbox, "deploy-on-push", &[], "teams/ops slack/data-team slack/gone");

    // When a run fails
    let outcome = process.invoke(&malformed());

    // Then Slack got it on the second try, Teams and a channel without a parameter are reported,
    // and the run's own outcome is unchanged
    assert!(matches!(outcome, Outcome::Error { ref error_type, .. } if error_type == "InvalidEvent"), "{outcome:?}");
    let slack = sandbox.webhooks("slack");
    assert_eq!(slack.len(), 2, "once refused with 429, once taken");
    assert_eq!(slack[0], slack[1]);
    assert_eq!(sandbox.webhooks("teams").len(), 1);
    let output = process.output();
    assert!(output.contains("the webhook answered HTTP 500"), "{output}");
    assert!(output.contains("SSM GetParameter on /nightshift/notify/slack/gone failed"), "{output}");
    assert!(!output.contains("/_sandbox/webhook/"), "{output}");
}

#[tokio::test]
async fn a_function_without_channels_tells_no_one_and_a_wrong_setting_stops_its_start() {
    let sandbox = Sandbox::start();
    sandbox.channel("slack/data-team", "slack").await;
    let mut quiet = spawn(&sandbox, "deploy-on-push", &[], "");
    assert!(matches!(quiet.invoke(&malformed()), Outcome::Error { .. }));
    assert!(sandbox.webhooks("slack").is_empty());

    let mut env = sandbox.function_env();
    env.push(("NOTIFY_LEVEL".into(), "loud".into()));
    let mut wrong = FunctionProcess::spawn(&binary("deploy-on-push"), &env);
    match wrong.invoke(&malformed()) {
        Outcome::Exited { output, .. } => {
            assert!(output.contains(r#"NOTIFY_LEVEL is "loud"; expected failures or all"#), "{output}")
        }
        other => panic!("expected the init to fail, got {other:?}"),
    }
}

#[tokio::test]
async fn a_webhook_url_in_plain_text_or_naming_another_host_is_never_posted_to() {
    // Given a channel whose URL is a plain String parameter, and one whose SecureString URL reads as
    // this machine by prefix but whose host, as HTTP reads it, is another (after the user information)
    let sandbox = Sandbox::start();
    let ssm = sandbox.ssm();
    let put = |name: &str, kind: aws_sdk_ssm::types::ParameterType, value: String| {
        ssm.put_parameter().name(format!("/nightshift/notify/{name}")).r#type(kind).value(value).overwrite(true).send()
    };
    let plain = sandbox.webhook_url("plain");
    put("slack/plain", aws_sdk_ssm::types::ParameterType::String, plain).await.unwrap();
    let elsewhere = sandbox.webhook_url("elsewhere").replacen("://", "://localhost:1@", 1);
    put("slack/elsewhere", aws_sdk_ssm::types::ParameterType::SecureString, elsewhere).await.unwrap();
    sandbox.channel("teams/ops", "teams").await;
    let mut process = spawn(&sandbox, "deploy-on-push", &[], "slack/plain slack/elsewhere teams/ops");

    // When a run fails
    let outcome = process.invoke(&malformed());

    // Then neither is posted to, each says why, and the good channel is still told
    assert!(matches!(outcome, Outcome::Error { ref error_type, .. } if error_type == "InvalidEvent"), "{outcome:?}");
    assert!(sandbox.webhooks("plain").is_empty() && sandbox.webhooks("elsewhere").is_empty());
    assert_eq!(sandbox.webhooks("teams").len(), 1);
    let output = process.output();
    assert!(
        output.contains(
            "/nightshift/notify/slack/plain is a String parameter; a webhook URL must be kept as a SecureString"
        ),
        "{output}"
    );
    assert!(
        output.contains("/nightshift/notify/slack/elsewhere: the parameter's URL carries user information"),
        "{output}"
    );
    assert!(!output.contains("/_sandbox/webhook/"), "the URLs never show: {output}");
}

#[tokio::test]
async fn ssm_throttled_or_unavailable_is_tried_again_as_the_sdk_would() {
    // Given SSM answering a throttle, then a 503, before it answers the channel's webhook URL
    let sandbox = Sandbox::start();
    sandbox.channel("slack/data-team", "slack").await;
    sandbox.fail("GetParameter", json!([{"status": 400, "type": "ThrottlingException"}, {"status": 503}]));
    let mut process = spawn(&sandbox, "deploy-on-push", &[], "slack/data-team");

    // When a run fails, then the channel is still told: the third try read the URL
    assert!(matches!(process.invoke(&malformed()), Outcome::Error { .. }));
    assert_eq!(sandbox.webhooks("slack").len(), 1, "{}", process.output());
}

#[tokio::test]
async fn a_signed_request_from_a_clock_twenty_minutes_slow_is_signed_again_with_aws_time() {
    // Given a function whose clock (the SDK's time source) is 20 minutes slow, which AWS refuses to sign by
    #[derive(Debug)]
    struct Slow;
    impl aws_smithy_async::time::TimeSource for Slow {
        fn now(&self) -> std::time::SystemTime {
            std::time::SystemTime::now() - std::time::Duration::from_secs(20 * 60)
        }
    }
    let sandbox = Sandbox::start();
    sandbox.channel("slack/data-team", "slack").await;
    let sdk = sandbox.sdk_config_for("deploy-on-push", &[]).to_builder().time_source(Slow).build();
    let signed = nightshift::signed::SignedHttp::new(&sdk);

    // When it reads a parameter, then AWS's answer (Signature expired, with its Date) corrects the clock, and
    // the second try is taken; the skew is kept for the next request
    let (url, kind) = signed.get_parameter("/nightshift/notify/slack/data-team").await.unwrap();
    assert_eq!((url, kind.as_str()), (sandbox.webhook_url("slack"), "SecureString"));
    sandbox.fail("GetParameter", json!([{"status": 400, "type": "ThrottlingException"}]));
    assert!(signed.get_parameter("/nightshift/notify/slack/data-team").await.is_ok());
}
