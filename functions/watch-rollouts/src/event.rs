//! The triggers: EventBridge's "ECS Deployment State Change" and "CodeDeploy
//! Deployment State-change Notification" events.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::announce::{self, RolloutOutcome};
use crate::outcome::{CodeDeployEndState, EcsEvent};
use crate::promote::Due;
use nightshift::config::{asked_by, field};
use nightshift::rollout::ServiceId;

/// `detail` of an "ECS Deployment State Change" event.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeploymentDetail {
    event_name: Option<String>,
    deployment_id: Option<String>,
    reason: Option<String>,
    updated_at: Option<String>,
}

/// A state change of one service's deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentChange {
    /// The account and region of the service, as its ARN names them.
    pub account: String,
    pub region: String,
    pub service_arn: String,
    pub cluster: String,
    pub service: String,
    pub event: EcsEvent,
    pub deployment_id: String,
    pub reason: String,
    pub updated_at: Option<DateTime<Utc>>,
}

/// `detail` of a "CodeDeploy Deployment State-change Notification" event.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CodeDeployDetail {
    deployment_id: Option<String>,
    application: Option<String>,
    deployment_group: Option<String>,
    state: Option<String>,
}

/// A CodeDeploy deployment's end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeDeployEnd {
    /// The account and region the deployment ran in, as the event says.
    pub account: String,
    pub region: String,
    pub deployment_id: String,
    pub application: String,
    pub deployment_group: String,
    pub state: CodeDeployEndState,
    pub time: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    Ecs(DeploymentChange),
    CodeDeploy(CodeDeployEnd),
    /// A promotion's schedule came due: `{"promotion": {...}}`.
    Promotion(Due),
    /// A promotion by hand: `{"promote": "<cluster>/<service>"}`.
    Promote(ServiceId),
    /// A rollout outcome another account's watch-rollouts announced (source `nightshift`, detail-type `Rollout Outcome`).
    Announced(RolloutOutcome),
    /// A sleep after promotion decided again, once the followers' checks may have ended: `{"sleep": {...}}`.
    Sleep(crate::sleep::SleepCheck),
    /// A hold by hand (`{"hold": {"service": "<cluster>/<service>" | "all", "reason", "minutes", "by"}}`),
    /// or its release (`{"release": {"service", "by"}}`).
    Hold(HoldRequest),
    /// A rollback by hand: `{"rollback": {"service": "<cluster>/<service>", "reason", "by"}}`.
    Rollback(RollbackRequest),
    /// A digest quarantined by hand (`{"quarantine": {"digest", "reason", "by", "service"?}}`),
    /// or let go (`{"unquarantine": {"digest", "by", "service"?}}`).
    Quarantine(QuarantineRequest),
    /// Well-formed, but nothing to decide: the reason.
    Ignored(String),
}

impl WatchEvent {
    /// The account and region of what a deployment event concerns; `None` for the others.
    pub fn place(&self) -> Option<(&str, &str)> {
        match self {
            Self::Ecs(change) => Some((&change.account, &change.region)),
            Self::CodeDeploy(end) => Some((&end.account, &end.region)),
            Self::Promotion(_)
            | Self::Promote(_)
            | Self::Announced(_)
            | Self::Sleep(_)
            | Self::Hold(_)
            | Self::Rollback(_)
            | Self::Quarantine(_)
            | Self::Ignored(_) => None,
        }
    }
}

/// A hold, or its release, asked for by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRequest {
    /// `None`: every service (`"all"`).
    pub service: Option<ServiceId>,
    pub release: bool,
    pub reason: String,
    /// How long it lasts; `None`: until released.
    pub minutes: Option<i64>,
    /// Who asks (the caller's identity, as the CLI puts it in).
    pub by: String,
}

/// The longest hold with an end: 30 days (a longer one is held until released).
pub const MAX_HOLD_MINUTES: i64 = 43_200;

impl HoldRequest {
    fn parse(asked: &Value, release: bool) -> Result<Self, String> {
        let text = |name: &str| field(asked, name);
        let service = match text("service") {
            None => return Err("service is missing: <cluster>/<service>, or \"all\"".into()),
            Some("all") => None,
            Some(named) => Some(ServiceId::parse(named).map_err(|why| format!("service: {why}, or \"all\""))?),
        };
        let reason = text("reason").unwrap_or_default().to_owned();
        if !release && reason.is_empty() {
            return Err("reason is missing: say why it is held (it is told, and shown)".into());
        }
        let minutes = match asked.get("minutes") {
            None | Some(Value::Null) => None,
            Some(m) => Some(
                m.as_i64()
                    .filter(|m| (1..=MAX_HOLD_MINUTES).contains(m))
                    .ok_or_else(|| format!("minutes is {m}, not a whole number from 1 to {MAX_HOLD_MINUTES}"))?,
            ),
        };
        if release && minutes.is_some() {
            return Err("minutes is for a hold, not a release".into());
        }
        Ok(Self { service, release, reason, minutes, by: asked_by(asked) })
    }
}

/// A rollback asked for by hand: back to the images the service ran before,
/// the digests it runs now quarantined on it, and the service held until released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackRequest {
    pub service: ServiceId,
    pub reason: String,
    pub by: String,
}

impl RollbackRequest {
    fn parse(asked: &Value) -> Result<Self, String> {
        let service = field(asked, "service").ok_or("service is missing: <cluster>/<service>")?;
        let service = ServiceId::parse(service).map_err(|why| format!("service: {why}"))?;
        Ok(Self {
            service,
            reason: field(asked, "reason").unwrap_or("rolled back by hand").to_owned(),
            by: asked_by(asked),
        })
    }
}

/// A digest quarantined (or let go) by hand: on one service, or on every service nightshift looks after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineRequest {
    pub digest: String,
    /// `None`: every service in `CLUSTERS` tagged `nightshift:deploy` or `nightshift:promote-from`.
    pub service: Option<ServiceId>,
    pub release: bool,
    pub reason: String,
    pub by: String,
}

impl QuarantineRequest {
    fn parse(asked: &Value, release: bool) -> Result<Self, String> {
        let digest = field(asked, "digest").ok_or("digest is missing: sha256:<64 hex>")?;
        if let Some(why) = nightshift::image::digest_problem(digest) {
            return Err(format!("digest {digest:?} is not an image digest: {why}"));
        }
        let service = match field(asked, "service") {
            None | Some("all") => None,
            Some(named) => Some(ServiceId::parse(named).map_err(|why| format!("service: {why}"))?),
        };
        let by = asked_by(asked);
        let reason = field(asked, "reason").map_or_else(|| format!("quarantined by hand by {by}"), str::to_owned);
        Ok(Self { digest: digest.to_owned(), service, release, reason, by })
    }
}

/// Reads the event. `Err` names what is missing or malformed.
pub fn parse(payload: &Value) -> Result<WatchEvent, String> {
    if let Some(due) = payload.get("promotion") {
        let due: Due = serde_json::from_value(due.clone())
            .map_err(|e| format!("promotion is not a promotion's schedule input: {e}"))?;
        ServiceId::parse(&due.service).map_err(|why| format!("promotion.service: {why}"))?;
        crate::promote::Followed::parse(&due.from).map_err(|why| format!("promotion.from: {why}"))?;
        return Ok(WatchEvent::Promotion(due));
    }
    for (key, release) in [("hold", false), ("release", true)] {
        if let Some(asked) = payload.get(key) {
            return HoldRequest::parse(asked, release).map(WatchEvent::Hold).map_err(|why| format!("{key}: {why}"));
        }
    }
    if let Some(asked) = payload.get("rollback") {
        return RollbackRequest::parse(asked).map(WatchEvent::Rollback).map_err(|why| format!("rollback: {why}"));
    }
    for (key, release) in [("quarantine", false), ("unquarantine", true)] {
        if let Some(asked) = payload.get(key) {
            let asked = QuarantineRequest::parse(asked, release).map_err(|why| format!("{key}: {why}"))?;
            return Ok(WatchEvent::Quarantine(asked));
        }
    }
    if let Some(check) = payload.get("sleep") {
        let check: crate::sleep::SleepCheck = serde_json::from_value(check.clone())
            .map_err(|e| format!("sleep is not a sleep check's schedule input: {e}"))?;
        ServiceId::parse(&check.service).map_err(|why| format!("sleep.service: {why}"))?;
        return Ok(WatchEvent::Sleep(check));
    }
    if let Some(service) = payload.get("promote") {
        let text = service.as_str().ok_or("promote is not a string: <cluster>/<service>")?;
        return ServiceId::parse(text).map(WatchEvent::Promote).map_err(|why| format!("promote: {why}"));
    }
    let event: EventBridgeEvent<Value> =
        serde_json::from_value(payload.clone()).map_err(|e| format!("not an EventBridge event: {e}"))?;
    if event.source == "aws.codedeploy" && event.detail_type == "CodeDeploy Deployment State-change Notification" {
        return parse_codedeploy(event);
    }
    if event.source == announce::SOURCE && event.detail_type == announce::DETAIL_TYPE {
        let detail: RolloutOutcome = serde_json::from_value(event.detail)
            .map_err(|e| format!("detail is not a rollout outcome (docs/accounts.md): {e}"))?;
        // EventBridge sets the envelope's account to the sender's: a detail naming another is not believed.
        let sender = event.account.unwrap_or_default();
        if sender != detail.account {
            return Ok(WatchEvent::Ignored(format!(
                "the rollout outcome names account {}, but account {sender} sent it",
                detail.account
            )));
        }
        return Ok(WatchEvent::Announced(detail));
    }
    if event.source != "aws.ecs" || event.detail_type != "ECS Deployment State Change" {
        return Ok(WatchEvent::Ignored(format!(
            "not an ECS deployment state change (source {:?}, detail-type {:?})",
            event.source, event.detail_type
        )));
    }
    let detail: DeploymentDetail =
        serde_json::from_value(event.detail).map_err(|e| format!("detail is not a deployment state change: {e}"))?;
    let name = detail.event_name.unwrap_or_default();
    let kind = match name.as_str() {
        "SERVICE_DEPLOYMENT_IN_PROGRESS" => EcsEvent::InProgress,
        "SERVICE_DEPLOYMENT_COMPLETED" => EcsEvent::Completed,
        "SERVICE_DEPLOYMENT_FAILED" => EcsEvent::Failed,
        _ => return Ok(WatchEvent::Ignored(format!("detail.eventName {name:?} is no rollout's end"))),
    };
    let arn = event.resources.unwrap_or_default().first().cloned().ok_or("resources is empty: it names no service")?;
    let ServiceId { cluster, service } = ServiceId::from_arn(&arn).ok_or_else(|| {
        format!("resources[0] {arn:?} is not a service ARN with its cluster (service/<cluster>/<name>)")
    })?;
    let deployment_id =
        detail.deployment_id.filter(|d| !d.trim().is_empty()).ok_or("detail.deploymentId is missing")?;
    let updated_at = match detail.updated_at {
        None => None,
        Some(at) => Some(
            DateTime::parse_from_rfc3339(&at)
                .map_err(|e| format!("detail.updatedAt {at:?} is not an RFC 3339 time: {e}"))?
                .with_timezone(&Utc),
        ),
    };
    let (region, account) = nightshift::aws::arn_region_and_account(&arn);
    Ok(WatchEvent::Ecs(DeploymentChange {
        account: account.to_owned(),
        region: region.to_owned(),
        service_arn: arn,
        cluster,
        service,
        event: kind,
        deployment_id,
        reason: detail.reason.unwrap_or_default(),
        updated_at,
    }))
}

fn parse_codedeploy(event: EventBridgeEvent<Value>) -> Result<WatchEvent, String> {
    let detail: CodeDeployDetail = serde_json::from_value(event.detail)
        .map_err(|e| format!("detail is not a CodeDeploy deployment state change: {e}"))?;
    let text = detail.state.unwrap_or_default();
    let Some(state) = CodeDeployEndState::parse(&text) else {
        return Ok(WatchEvent::Ignored(format!("detail.state {text:?} is no deployment's end")));
    };
    let non_empty =
        |v: Option<String>, what: &str| v.filter(|s| !s.trim().is_empty()).ok_or_else(|| format!("{what} is missing"));
    Ok(WatchEvent::CodeDeploy(CodeDeployEnd {
        account: event.account.unwrap_or_default(),
        region: event.region.unwrap_or_default(),
        deployment_id: non_empty(detail.deployment_id, "detail.deploymentId")?,
        application: non_empty(detail.application, "detail.application")?,
        deployment_group: non_empty(detail.deployment_group, "detail.deploymentGroup")?,
        state,
        time: event.time,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_hold_names_its_service_or_all_says_why_and_may_end_by_itself() {
        let Ok(WatchEvent::Hold(hold)) =
            parse(&json!({"hold": {"service": "prod/shop", "reason": "incident 42", "minutes": 120, "by": "ana"}}))
        else {
            panic!()
        };
        assert_eq!(
            hold,
            HoldRequest {
                service: Some(ServiceId { cluster: "prod".into(), service: "shop".into() }),
                release: false,
                reason: "incident 42".into(),
                minutes: Some(120),
                by: "ana".into(),
            }
        );
        let Ok(WatchEvent::Hold(all)) = parse(&json!({"release": {"service": "all"}})) else { panic!() };
        assert_eq!((all.service, all.release, all.by.as_str()), (None, true, "by hand"));
        let table = [
            (json!({"hold": {"reason": "x"}}), "hold: service is missing: <cluster>/<service>, or \"all\""),
            (json!({"hold": {"service": "shop"}}), "hold: service: \"shop\" is not <cluster>/<service>, or \"all\""),
            (
                json!({"hold": {"service": "prod/shop"}}),
                "hold: reason is missing: say why it is held (it is told, and shown)",
            ),
            (
                json!({"hold": {"service": "all", "reason": "x", "minutes": 0}}),
                "hold: minutes is 0, not a whole number from 1 to 43200",
            ),
            (json!({"release": {"service": "all", "minutes": 5}}), "release: minutes is for a hold, not a release"),
        ];
        for (event, why) in table {
            assert_eq!(parse(&event).unwrap_err(), why);
        }
    }

    #[test]
    fn a_rollout_outcome_is_believed_only_from_the_account_it_names() {
        // The shape watch-rollouts puts on the bus, as events/ keeps it (and `cargo lambda invoke` sends it).
        let file: Value =
            serde_json::from_str(include_str!("../../../events/watch-rollouts.rollout-outcome.json")).unwrap();
        let envelope = |account: &str| {
            let mut event = file.clone();
            event["account"] = json!(account);
            event
        };
        let Ok(WatchEvent::Announced(read)) = parse(&envelope("111122223333")) else { panic!() };
        assert_eq!(
            (read.cluster.as_str(), read.revision.as_deref().map(nightshift::ecs::revision_of)),
            ("staging", Some("shop-staging:3"))
        );
        let Ok(WatchEvent::Ignored(why)) = parse(&envelope("444455556666")) else { panic!() };
        assert_eq!(why, "the rollout outcome names account 111122223333, but account 444455556666 sent it");
        let mut broken = envelope("111122223333");
        broken["detail"]["outcome"] = json!("fine");
        assert!(parse(&broken).unwrap_err().starts_with("detail is not a rollout outcome"));
    }

    fn event(name: &str, resources: Value) -> Value {
        json!({
            "version": "0", "id": "1", "detail-type": "ECS Deployment State Change", "source": "aws.ecs",
            "account": "123456789012", "time": "2026-11-27T12:31:14Z", "region": "eu-west-1",
            "resources": resources,
            "detail": {"eventType": "ERROR", "eventName": name, "deploymentId": "ecs-svc/123",
                       "updatedAt": "2026-11-27T12:31:14Z", "reason": "ECS deployment circuit breaker: task failed to start."}
        })
    }

    #[test]
    fn the_service_comes_from_resources_and_the_rest_from_detail() {
        let arn = json!(["arn:aws:ecs:eu-west-1:123456789012:service/shop/api"]);
        let WatchEvent::Ecs(rollout) = parse(&event("SERVICE_DEPLOYMENT_FAILED", arn.clone())).unwrap() else {
            panic!()
        };
        assert_eq!(
            (rollout.cluster.as_str(), rollout.service.as_str(), rollout.event),
            ("shop", "api", EcsEvent::Failed)
        );
        assert_eq!(rollout.deployment_id, "ecs-svc/123");
        assert_eq!(
            rollout.updated_at,
            DateTime::parse_from_rfc3339("2026-11-27T12:31:14Z").ok().map(|t| t.with_timezone(&Utc))
        );
        assert_eq!(
            parse(&event("SERVICE_TASK_PLACEMENT_FAILURE", arn)).unwrap(),
            WatchEvent::Ignored("detail.eventName \"SERVICE_TASK_PLACEMENT_FAILURE\" is no rollout's end".into())
        );
        let short = json!(["arn:aws:ecs:eu-west-1:123456789012:service/api"]);
        assert_eq!(
            parse(&event("SERVICE_DEPLOYMENT_FAILED", short)).unwrap_err(),
            "resources[0] \"arn:aws:ecs:eu-west-1:123456789012:service/api\" is not a service ARN with its cluster (service/<cluster>/<name>)"
        );
        assert_eq!(
            parse(&event("SERVICE_DEPLOYMENT_FAILED", json!([]))).unwrap_err(),
            "resources is empty: it names no service"
        );
        let mut other = event("SERVICE_DEPLOYMENT_FAILED", json!([]));
        other["source"] = json!("aws.ecr");
        assert!(matches!(parse(&other).unwrap(), WatchEvent::Ignored(_)));
    }

    #[test]
    fn a_promotion_comes_from_its_schedule_or_by_hand() {
        let due = json!({"promotion": {"service": "qa/shop", "from": "staging/shop",
            "task_definition": "arn:aws:ecs:eu-west-1:123456789012:task-definition/shop:3", "deployment": "ecs-svc/1"}});
        let WatchEvent::Promotion(parsed) = parse(&due).unwrap() else { panic!() };
        assert_eq!((parsed.service.as_str(), parsed.deployment.as_str()), ("qa/shop", "ecs-svc/1"));
        assert_eq!(
            parse(&json!({"promote": "prod/shop"})).unwrap(),
            WatchEvent::Promote(ServiceId { cluster: "prod".into(), service: "shop".into() })
        );
        assert_eq!(parse(&json!({"promote": "shop"})).unwrap_err(), "promote: \"shop\" is not <cluster>/<service>");
        assert_eq!(parse(&json!({"promote": 7})).unwrap_err(), "promote is not a string: <cluster>/<service>");
        let mut bad = due.clone();
        bad["promotion"]["from"] = json!("staging");
        assert_eq!(parse(&bad).unwrap_err(), "promotion.from: \"staging\" is not [<account>:]<cluster>/<service>");
        bad["promotion"].as_object_mut().unwrap().remove("deployment");
        assert!(
            parse(&bad)
                .unwrap_err()
                .starts_with("promotion is not a promotion's schedule input: missing field `deployment`")
        );
    }

    #[test]
    fn a_codedeploy_end_names_its_deployment_application_and_group() {
        let mut codedeploy = json!({
            "version": "0", "id": "c071bfbf-83c4-49ca-a6ff-3df053957145",
            "detail-type": "CodeDeploy Deployment State-change Notification", "source": "aws.codedeploy",
            "account": "123456789012", "time": "2026-11-27T12:31:14Z", "region": "eu-west-1",
            "resources": ["arn:aws:codedeploy:eu-west-1:123456789012:application:shop",
                          "arn:aws:codedeploy:eu-west-1:123456789012:deploymentgroup:shop/blue-green"],
            "detail": {"instanceGroupId": "9fd2fbef-2157-40d8-91e7-6845af69e2d2", "region": "eu-west-1",
                       "application": "shop", "deploymentId": "d-7K2QX9B1E", "state": "FAILURE", "deploymentGroup": "blue-green"}
        });
        let WatchEvent::CodeDeploy(end) = parse(&codedeploy).unwrap() else { panic!() };
        assert_eq!(
            (end.deployment_id.as_str(), end.application.as_str(), end.deployment_group.as_str(), end.state.as_str()),
            ("d-7K2QX9B1E", "shop", "blue-green", "FAILURE")
        );
        codedeploy["detail"]["state"] = json!("START");
        assert_eq!(
            parse(&codedeploy).unwrap(),
            WatchEvent::Ignored("detail.state \"START\" is no deployment's end".into())
        );
        codedeploy["detail"]["state"] = json!("SUCCESS");
        codedeploy["detail"].as_object_mut().unwrap().remove("deploymentId");
        assert_eq!(parse(&codedeploy).unwrap_err(), "detail.deploymentId is missing");
    }

    #[test]
    fn a_rollback_and_a_quarantine_by_hand_are_read_or_refused_with_the_reason() {
        let digest = format!("sha256:{}", "cd".repeat(32));
        match parse(&json!({"rollback": {"service": "prod/shop", "reason": "500s", "by": "alice"}})) {
            Ok(WatchEvent::Rollback(asked)) => {
                assert_eq!(
                    (asked.service.to_string(), asked.reason, asked.by),
                    ("prod/shop".into(), "500s".into(), "alice".into())
                );
            }
            other => panic!("{other:?}"),
        }
        match parse(&json!({"quarantine": {"digest": digest, "by": "bob"}})) {
            Ok(WatchEvent::Quarantine(asked)) => {
                assert_eq!(
                    (asked.service, asked.release, asked.reason.as_str()),
                    (None, false, "quarantined by hand by bob")
                );
            }
            other => panic!("{other:?}"),
        }
        match parse(&json!({"unquarantine": {"digest": digest, "service": "prod/shop"}})) {
            Ok(WatchEvent::Quarantine(asked)) => assert!(asked.release && asked.service.is_some()),
            other => panic!("{other:?}"),
        }
        let refused = [
            (json!({"rollback": {}}), "rollback: service is missing"),
            (json!({"rollback": {"service": "shop"}}), "rollback: service: \"shop\" is not"),
            (json!({"quarantine": {"reason": "x"}}), "quarantine: digest is missing"),
            (
                json!({"quarantine": {"digest": "sha256:abc"}}),
                "quarantine: digest \"sha256:abc\" is not an image digest",
            ),
            (json!({"unquarantine": {"digest": digest, "service": "a/b/c"}}), "unquarantine: service:"),
        ];
        for (payload, part) in refused {
            let why = parse(&payload).expect_err("refused");
            assert!(why.contains(part), "{payload}: {why}");
        }
    }
}
