//! The three ways in: a CodeDeploy lifecycle hook, an ECS lifecycle hook,
//! and EventBridge's "ECS Deployment State Change" for a rolling service.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use nightshift::rollout::ServiceId;
use serde::Deserialize;
use serde_json::{Map, Value};

/// A CodeDeploy hook's invocation (`AfterAllowTestTraffic`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CodeDeployHook {
    #[serde(rename = "DeploymentId")]
    pub deployment_id: String,
    #[serde(rename = "LifecycleEventHookExecutionId")]
    pub execution_id: String,
}

/// An ECS lifecycle hook's invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct EcsHook {
    pub service_arn: String,
    pub service: ServiceId,
    pub target_revision_arn: String,
    /// Service revision ARN -> share of production traffic, as ECS passes it.
    pub production_weights: Map<String, Value>,
    /// As ECS passes them: the service's own `hookDetails`, and what this hook returned last time.
    pub hook_details: Map<String, Value>,
}

/// A rolling service's deployment that completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    pub account: String,
    pub region: String,
    pub service_arn: String,
    pub service: ServiceId,
    pub deployment_id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum VerifyEvent {
    CodeDeploy(CodeDeployHook),
    Ecs(EcsHook),
    Rolling(Completed),
    /// Well-formed, but nothing to verify: the reason.
    Ignored(String),
}

/// Reads the event. `Err` names what is missing or malformed.
pub fn parse(payload: &Value) -> Result<VerifyEvent, String> {
    let Some(fields) = payload.as_object() else {
        return Err("the event is not a JSON object".into());
    };
    if fields.contains_key("LifecycleEventHookExecutionId") || fields.contains_key("DeploymentId") {
        let hook: CodeDeployHook = serde_json::from_value(payload.clone())
            .map_err(|e| format!("not a CodeDeploy hook's event (DeploymentId, LifecycleEventHookExecutionId): {e}"))?;
        let id_ok = hook.deployment_id.starts_with("d-") && hook.deployment_id.len() == 11;
        if !id_ok {
            return Err(format!(
                "DeploymentId {:?} is not a CodeDeploy deployment id (d-XXXXXXXXX)",
                hook.deployment_id
            ));
        }
        if hook.execution_id.trim().is_empty() {
            return Err("LifecycleEventHookExecutionId is empty".into());
        }
        return Ok(VerifyEvent::CodeDeploy(hook));
    }
    if fields.contains_key("serviceArn") || fields.contains_key("targetServiceRevisionArn") {
        let text = |name: &str| {
            fields
                .get(name)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| format!("an ECS lifecycle hook's event has no {name}"))
        };
        let service_arn = text("serviceArn")?;
        let target_revision_arn = text("targetServiceRevisionArn")?;
        let service = ServiceId::from_arn(&service_arn).ok_or_else(|| {
            format!("serviceArn {service_arn:?} is not an ECS service ARN (…:service/<cluster>/<service>)")
        })?;
        if !target_revision_arn.contains(":service-revision/") {
            return Err(format!("targetServiceRevisionArn {target_revision_arn:?} is not a service revision ARN"));
        }
        let hook_details = match fields.get("hookDetails") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(details)) => details.clone(),
            Some(other) => return Err(format!("hookDetails is {other}, not a JSON object")),
        };
        let production_weights =
            fields.get("productionTrafficWeights").and_then(Value::as_object).cloned().unwrap_or_default();
        return Ok(VerifyEvent::Ecs(EcsHook {
            service_arn,
            service,
            target_revision_arn,
            production_weights,
            hook_details,
        }));
    }
    let event: EventBridgeEvent<Value> = serde_json::from_value(payload.clone())
        .map_err(|e| format!("neither a CodeDeploy hook, an ECS lifecycle hook nor an EventBridge event: {e}"))?;
    if event.source != "aws.ecs" || event.detail_type != "ECS Deployment State Change" {
        return Ok(VerifyEvent::Ignored(format!(
            "not an ECS deployment state change (source {:?}, detail-type {:?})",
            event.source, event.detail_type
        )));
    }
    let name = event.detail["eventName"].as_str().unwrap_or_default();
    if name != "SERVICE_DEPLOYMENT_COMPLETED" {
        return Ok(VerifyEvent::Ignored(format!("detail.eventName {name:?}: only a completed deployment is verified")));
    }
    let deployment_id = event.detail["deploymentId"]
        .as_str()
        .filter(|d| !d.is_empty())
        .ok_or("detail.deploymentId is missing")?
        .to_owned();
    let service_arn =
        event.resources.unwrap_or_default().first().cloned().ok_or("resources is empty: it names no service")?;
    let service = ServiceId::from_arn(&service_arn)
        .ok_or_else(|| format!("resources[0] {service_arn:?} is not an ECS service ARN"))?;
    let (region, account) = nightshift::aws::arn_region_and_account(&service_arn);
    Ok(VerifyEvent::Rolling(Completed {
        account: account.to_owned(),
        region: region.to_owned(),
        service_arn: service_arn.clone(),
        service,
        deployment_id,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(name: &str) -> Value {
        let text = std::fs::read_to_string(format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn each_way_in_reads_from_its_real_event() {
        let VerifyEvent::CodeDeploy(hook) = parse(&event("verify-rollout.codedeploy-hook.json")).unwrap() else {
            panic!("not a CodeDeploy hook")
        };
        assert!(hook.deployment_id.starts_with("d-"));
        let VerifyEvent::Ecs(hook) = parse(&event("verify-rollout.ecs-lifecycle-hook.json")).unwrap() else {
            panic!("not an ECS hook")
        };
        assert_eq!(hook.service.to_string(), "shop/api");
        let VerifyEvent::Rolling(done) = parse(&event("watch-rollouts.ecs-deployment-completed.json")).unwrap() else {
            panic!("not a completed rollout")
        };
        assert_eq!((done.service.to_string(), done.account.as_str()), ("shop/api".into(), "123456789012"));
        assert!(matches!(parse(&event("watch-rollouts.ecs-deployment-failed.json")), Ok(VerifyEvent::Ignored(_))));
    }

    #[test]
    fn a_malformed_event_says_what_is_wrong() {
        let table = [
            (json!([1]), "not a JSON object"),
            (json!({"DeploymentId": "d-1", "LifecycleEventHookExecutionId": "x"}), "not a CodeDeploy deployment id"),
            (json!({"DeploymentId": "d-ABCDEFGHI"}), "LifecycleEventHookExecutionId"),
            (json!({"serviceArn": "arn:aws:ecs:us-east-1:1:service/a/b"}), "no targetServiceRevisionArn"),
            (
                json!({"serviceArn": "nope", "targetServiceRevisionArn": "arn:aws:ecs:us-east-1:1:service-revision/a/b/1"}),
                "not an ECS service ARN",
            ),
            (
                json!({"serviceArn": "arn:aws:ecs:us-east-1:1:service/a/b",
                       "targetServiceRevisionArn": "arn:aws:ecs:us-east-1:1:service-revision/a/b/1", "hookDetails": 3}),
                "hookDetails is 3",
            ),
            (json!({"source": "aws.ecs"}), "neither a CodeDeploy hook"),
        ];
        for (payload, want) in table {
            let got = parse(&payload).unwrap_err();
            assert!(got.contains(want), "{payload}: {got}");
        }
    }
}
