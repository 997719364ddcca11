//! A service's Application Auto Scaling capacity, read and set with signed
//! requests of its JSON protocol (no client: deploy-on-push and watch-rollouts
//! need two calls of it, to put a service to sleep after its promotion and to
//! wake it for its next rollout).

use serde_json::json;

use crate::aws::CallError;
use crate::signed::{APPLICATION_AUTOSCALING, SignedHttp};

use super::ServiceId;

fn resource_id(id: &ServiceId) -> String {
    format!("service/{}/{}", id.cluster, id.service)
}

/// The service's scalable target's (min, max), when it has one.
pub async fn target(signed: &SignedHttp, id: &ServiceId) -> Result<Option<(i32, i32)>, CallError> {
    let request = json!({
        "ServiceNamespace": "ecs",
        "ScalableDimension": "ecs:service:DesiredCount",
        "ResourceIds": [resource_id(id)],
    });
    let answer =
        signed.json_operation(&APPLICATION_AUTOSCALING, "DescribeScalableTargets", &id.to_string(), &request).await?;
    let found = answer["ScalableTargets"].as_array().and_then(|t| t.first()).and_then(|t| {
        let number = |name: &str| t[name].as_i64().and_then(|n| i32::try_from(n).ok());
        number("MinCapacity").zip(number("MaxCapacity"))
    });
    Ok(found)
}

/// Registers the service's scalable target with this capacity.
pub async fn set(signed: &SignedHttp, id: &ServiceId, min: i32, max: i32) -> Result<(), CallError> {
    let request = json!({
        "ServiceNamespace": "ecs",
        "ScalableDimension": "ecs:service:DesiredCount",
        "ResourceId": resource_id(id),
        "MinCapacity": min,
        "MaxCapacity": max,
    });
    signed.json_operation(&APPLICATION_AUTOSCALING, "RegisterScalableTarget", &id.to_string(), &request).await.map(drop)
}
