//! The CodeDeploy reads: a deployment, and the ECS service its group deploys. Observe only, never decide.

use aws_sdk_codedeploy::Client;
use aws_sdk_codedeploy::types::{AutoRollbackEvent, DeploymentInfo};
use chrono::DateTime;
use nightshift::aws::CallError;

use crate::outcome::CodeDeployment;

/// The deployment as the decision reads it; `None` when CodeDeploy has no such deployment.
pub async fn deployment(codedeploy: &Client, id: &str, state: &str) -> Result<Option<CodeDeployment>, CallError> {
    let out = match codedeploy.get_deployment().deployment_id(id).send().await {
        Ok(out) => out,
        Err(err) => {
            let err = err.into_service_error();
            if err.is_deployment_does_not_exist_exception() {
                return Ok(None);
            }
            return Err(CallError::new("GetDeployment", id, err));
        }
    };
    Ok(out.deployment_info.map(|info| read(id, state, &info)))
}

/// What the decision needs of a deployment that ended in `state`.
pub fn read(id: &str, state: &str, info: &DeploymentInfo) -> CodeDeployment {
    let rollback = info.rollback_info();
    let automatic =
        info.auto_rollback_configuration().filter(|c| c.enabled).map(|c| c.events().to_vec()).unwrap_or_default();
    let covers = match state {
        "FAILURE" => automatic.contains(&AutoRollbackEvent::DeploymentFailure),
        "STOP" => automatic.iter().any(|e| {
            matches!(e, AutoRollbackEvent::DeploymentStopOnAlarm | AutoRollbackEvent::DeploymentStopOnRequest)
        }),
        _ => false,
    };
    let message = info
        .error_information()
        .and_then(|e| e.message())
        .or_else(|| rollback.and_then(|r| r.rollback_message()))
        .unwrap_or_default();
    CodeDeployment {
        id: id.to_owned(),
        creator: info.creator().map(|c| c.as_str().to_owned()).unwrap_or_default(),
        task_definition: info
            .revision()
            .and_then(|r| r.app_spec_content())
            .and_then(|a| a.content())
            .and_then(nightshift::appspec::task_definition),
        rolled_back: covers || rollback.and_then(|r| r.rollback_deployment_id()).is_some(),
        rollback_of: rollback.and_then(|r| r.rollback_triggering_deployment_id()).map(str::to_owned),
        message: message.to_owned(),
        created_at: info.create_time().and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
    }
}

/// The cluster and service the group deploys; `None` when it has none (or no longer exists).
pub async fn group_service(
    codedeploy: &Client,
    application: &str,
    group: &str,
) -> Result<Option<(String, String)>, CallError> {
    let out = codedeploy
        .batch_get_deployment_groups()
        .application_name(application)
        .deployment_group_names(group)
        .send()
        .await
        .map_err(|e| {
            CallError::new("BatchGetDeploymentGroups", &format!("{application}/{group}"), e.into_service_error())
        })?;
    Ok(out
        .deployment_groups_info()
        .iter()
        .flat_map(|g| g.ecs_services())
        .find_map(|s| Some((s.cluster_name()?.to_owned(), s.service_name()?.to_owned()))))
}
