//! The trigger: EventBridge's "ECR Image Action" event.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `detail` of an "ECR Image Action" event.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct EcrImageAction {
    pub action_type: Option<String>,
    pub result: Option<String>,
    pub repository_name: Option<String>,
    pub image_digest: Option<String>,
    pub image_tag: Option<String>,
}

/// A successful push, everything the decision needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Push {
    pub account: String,
    pub region: String,
    pub repository: String,
    pub digest: String,
    /// `None` for a push by digest only.
    pub tag: Option<String>,
}

/// A deploy by hand (`nightshift deploy`): `{"deploy": {"service": "<cluster>/<service>",
/// "image": "<tag>" | "sha256:<hex>", "by": "<who>"}}`. It goes as the push of that image
/// would, to this service only: the same policy, quarantine refusal, identity and notices;
/// a hold does not stop it (a hold stops automatic rollouts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployRequest {
    pub service: nightshift::rollout::ServiceId,
    /// An image tag, or a digest (`sha256:…`).
    pub image: String,
    pub by: String,
}

impl DeployRequest {
    fn parse(asked: &Value) -> Result<Self, String> {
        let text = |name: &str| nightshift::config::field(asked, name);
        let service = text("service").ok_or("deploy.service is missing: <cluster>/<service>")?;
        let service = nightshift::rollout::ServiceId::parse(service).map_err(|why| format!("deploy.service: {why}"))?;
        let image = text("image").ok_or("deploy.image is missing: an image tag, or a digest sha256:<64 hex>")?;
        if image.starts_with("sha256:") {
            if let Some(why) = nightshift::image::digest_problem(image) {
                return Err(format!("deploy.image {image:?} is not an image digest: {why}"));
            }
        } else if !valid_tag(image) {
            return Err(format!(
                "deploy.image {image:?} is neither a digest (sha256:<64 hex>) nor an image tag \
                 (1-128 of A-Z a-z 0-9 _ . -, not starting with . or -)"
            ));
        }
        Ok(Self { service, image: image.to_owned(), by: nightshift::config::asked_by(asked) })
    }
}

/// An OCI tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
fn valid_tag(tag: &str) -> bool {
    tag.len() <= 128
        && tag.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushEvent {
    Push(Push),
    /// `{"deploy": {...}}`: a deploy by hand.
    Deploy(DeployRequest),
    /// Well-formed, but not for this function: the reason.
    Ignored(String),
}

/// Reads the event. `Err` names what is missing or malformed; an event that
/// is well-formed but not a successful push is `Ignored` with the reason.
pub fn parse(payload: &Value) -> Result<PushEvent, String> {
    if let Some(asked) = payload.get("deploy") {
        return DeployRequest::parse(asked).map(PushEvent::Deploy);
    }
    let event: EventBridgeEvent<Value> =
        serde_json::from_value(payload.clone()).map_err(|e| format!("not an EventBridge event: {e}"))?;
    if event.source != "aws.ecr" || event.detail_type != "ECR Image Action" {
        return Ok(PushEvent::Ignored(format!(
            "not an ECR image action (source {:?}, detail-type {:?})",
            event.source, event.detail_type
        )));
    }
    let detail: EcrImageAction =
        serde_json::from_value(event.detail).map_err(|e| format!("detail is not an ECR image action: {e}"))?;
    let action = detail.action_type.as_deref().unwrap_or_default();
    let result = detail.result.as_deref().unwrap_or_default();
    if action != "PUSH" || result != "SUCCESS" {
        return Ok(PushEvent::Ignored(format!("not a successful push (action-type {action:?}, result {result:?})")));
    }
    let non_empty =
        |v: Option<String>, what: &str| v.filter(|s| !s.trim().is_empty()).ok_or_else(|| format!("{what} is missing"));
    let digest = non_empty(detail.image_digest, "detail.image-digest")?;
    if let Some(why) = nightshift::image::digest_problem(&digest) {
        return Err(format!("detail.image-digest {digest:?} is not an image digest: {why}"));
    }
    Ok(PushEvent::Push(Push {
        account: non_empty(event.account, "account")?,
        region: non_empty(event.region, "region")?,
        repository: non_empty(detail.repository_name, "detail.repository-name")?,
        digest,
        tag: detail.image_tag.filter(|t| !t.trim().is_empty()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn push_event() -> Value {
        json!({
            "version": "0", "id": "13cde686-328b-6117-af20-0e5566167482",
            "detail-type": "ECR Image Action", "source": "aws.ecr",
            "account": "123456789012", "time": "2026-11-26T01:54:34Z", "region": "eu-west-1",
            "resources": [],
            "detail": {
                "result": "SUCCESS", "repository-name": "shop/api",
                "image-digest": "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd12345678",
                "action-type": "PUSH", "image-tag": "RC_1.4.2"
            }
        })
    }

    #[test]
    fn a_successful_push_is_read_whole() {
        let PushEvent::Push(push) = parse(&push_event()).unwrap() else { panic!() };
        assert_eq!(push.repository, "shop/api");
        assert_eq!(push.tag.as_deref(), Some("RC_1.4.2"));
        assert_eq!((push.account.as_str(), push.region.as_str()), ("123456789012", "eu-west-1"));
    }

    #[test]
    fn other_actions_and_results_are_ignored_with_the_reason() {
        for (field, value, why) in
            [("action-type", "DELETE", "action-type \"DELETE\""), ("result", "FAILURE", "result \"FAILURE\"")]
        {
            let mut event = push_event();
            event["detail"][field] = json!(value);
            assert_eq!(
                parse(&event),
                Ok(PushEvent::Ignored(format!(
                    "not a successful push ({})",
                    match field {
                        "action-type" => format!("{why}, result \"SUCCESS\""),
                        _ => format!("action-type \"PUSH\", {why}"),
                    }
                )))
            );
        }
        let mut scan = push_event();
        scan["detail-type"] = json!("ECR Image Scan");
        assert!(matches!(parse(&scan), Ok(PushEvent::Ignored(_))));
    }

    #[test]
    fn a_push_without_a_tag_is_still_a_push() {
        let mut event = push_event();
        event["detail"].as_object_mut().unwrap().remove("image-tag");
        let PushEvent::Push(push) = parse(&event).unwrap() else { panic!() };
        assert_eq!(push.tag, None);
    }

    #[test]
    fn malformed_events_are_errors_that_name_the_field() {
        type Breakage = fn(&mut Value);
        let table: [(Breakage, &str); 7] = [
            (
                |e| {
                    e["detail"].as_object_mut().unwrap().remove("repository-name");
                },
                "detail.repository-name is missing",
            ),
            (
                |e| {
                    e["detail"].as_object_mut().unwrap().remove("image-digest");
                },
                "detail.image-digest is missing",
            ),
            (|e| e["detail"]["image-digest"] = json!("7f5b"), "not of the form"),
            // Not hex after sha256: (here multi-byte letters), an error that says so, not a panic.
            (
                |e| e["detail"]["image-digest"] = json!(format!("sha256:{}", "é".repeat(32))),
                "detail.image-digest \"sha256:éééé",
            ),
            (
                |e| e["detail"]["image-digest"] = json!("sha256:7F5B"),
                "its hex part is not the algorithm's number of lowercase hex digits",
            ),
            (
                |e| {
                    e.as_object_mut().unwrap().remove("detail-type");
                },
                "not an EventBridge event",
            ),
            (|e| *e = json!("a string"), "not an EventBridge event"),
        ];
        for (break_it, why) in table {
            let mut event = push_event();
            break_it(&mut event);
            let err = parse(&event).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn a_deploy_by_hand_names_a_service_and_a_tag_or_digest() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        // (event, Ok((service, image, by)) or Err(part of the error))
        type Expected<'a> = Result<(&'a str, &'a str, &'a str), &'a str>;
        let cases: Vec<(Value, Expected)> = vec![
            (
                json!({"deploy": {"service": "shop/api", "image": "1.4.0", "by": "alice"}}),
                Ok(("shop/api", "1.4.0", "alice")),
            ),
            (json!({"deploy": {"service": "shop/api", "image": digest}}), Ok(("shop/api", &digest, "by hand"))),
            (json!({"deploy": {"image": "1.4.0"}}), Err("deploy.service is missing")),
            (json!({"deploy": {"service": "api", "image": "1.4.0"}}), Err("deploy.service: \"api\" is not")),
            (json!({"deploy": {"service": "shop/api"}}), Err("deploy.image is missing")),
            (json!({"deploy": {"service": "shop/api", "image": "sha256:12"}}), Err("is not an image digest")),
            (json!({"deploy": {"service": "shop/api", "image": "-bad"}}), Err("neither a digest")),
            (json!({"deploy": {"service": "shop/api", "image": "a b"}}), Err("neither a digest")),
        ];
        for (payload, expected) in cases {
            match (parse(&payload), expected) {
                (Ok(PushEvent::Deploy(asked)), Ok((service, image, by))) => {
                    assert_eq!(
                        (asked.service.to_string().as_str(), asked.image.as_str(), asked.by.as_str()),
                        (service, image, by)
                    );
                }
                (Err(why), Err(part)) => assert!(why.contains(part), "{payload}: {why}"),
                (got, expected) => panic!("{payload}: got {got:?}, expected {expected:?}"),
            }
        }
    }
}
