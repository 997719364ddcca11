//! The CodeDeploy calls: observe and apply, never decide.
//!
//! SigV4-signed requests of CodeDeploy's JSON protocol over the process's one
//! connector (`nightshift::signed`), not the SDK's CodeDeploy client: its
//! operations and static schemas were about 0.45 MB of each binary that has
//! it (docs/performance.md), for seven operations whose answers are read
//! here into the few members nightshift uses.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use super::ServiceId;
use super::bluegreen::GroupName;
use crate::aws::CallError;
use crate::signed::{CODEDEPLOY, SignedHttp};

/// BatchGetApplications and BatchGetDeploymentGroups take at most 100 names.
const BATCH: usize = 100;

/// A deployment group as BatchGetDeploymentGroups describes it: what nightshift reads of it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeploymentGroupInfo {
    pub application_name: Option<String>,
    pub deployment_group_name: Option<String>,
    /// `ECS`, `Server` or `Lambda`.
    pub compute_platform: Option<String>,
    pub ecs_services: Vec<EcsService>,
    pub deployment_config_name: Option<String>,
    /// The revision of its last deployment.
    pub target_revision: Option<Revision>,
    pub last_attempted_deployment: Option<LastDeployment>,
}

/// A cluster and service a group deploys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EcsService {
    pub cluster_name: Option<String>,
    pub service_name: Option<String>,
}

impl EcsService {
    /// The service, when CodeDeploy names both its cluster and itself.
    pub fn id(&self) -> Option<ServiceId> {
        Some(ServiceId { cluster: self.cluster_name.clone()?, service: self.service_name.clone()? })
    }
}

/// A revision; nightshift's (and ECS's) are AppSpec content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Revision {
    pub app_spec_content: Option<AppSpecContent>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct AppSpecContent {
    pub content: Option<String>,
}

impl Revision {
    /// The AppSpec's text, when the revision is AppSpec content.
    pub fn app_spec(&self) -> Option<&str> {
        self.app_spec_content.as_ref()?.content.as_deref()
    }
}

/// A group's last attempted deployment.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LastDeployment {
    pub deployment_id: Option<String>,
    /// `Created`, `Queued`, `InProgress`, `Baking`, `Ready`, `Succeeded`, `Failed` or `Stopped`.
    pub status: Option<String>,
    /// Seconds since the epoch, once it ended.
    pub end_time: Option<f64>,
}

/// A deployment as GetDeployment describes it: what nightshift reads of it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeploymentInfo {
    pub application_name: Option<String>,
    pub deployment_group_name: Option<String>,
    /// `user`, `autoscaling`, `codeDeployRollback`, ...
    pub creator: Option<String>,
    pub revision: Option<Revision>,
    pub rollback_info: Option<RollbackInfo>,
    pub auto_rollback_configuration: Option<AutoRollbackConfiguration>,
    pub error_information: Option<ErrorInformation>,
    /// Seconds since the epoch.
    pub create_time: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RollbackInfo {
    pub rollback_deployment_id: Option<String>,
    pub rollback_triggering_deployment_id: Option<String>,
    pub rollback_message: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct AutoRollbackConfiguration {
    pub enabled: bool,
    /// `DEPLOYMENT_FAILURE`, `DEPLOYMENT_STOP_ON_ALARM`, `DEPLOYMENT_STOP_ON_REQUEST`.
    pub events: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ErrorInformation {
    pub message: Option<String>,
}

/// CodeDeploy, by signed requests.
#[derive(Clone)]
pub struct CodeDeploy {
    aws: Arc<SignedHttp>,
}

impl CodeDeploy {
    pub fn new(aws: Arc<SignedHttp>) -> Self {
        Self { aws }
    }

    async fn call(&self, operation: &'static str, target: &str, request: Value) -> Result<Value, CallError> {
        self.aws.json_operation(&CODEDEPLOY, operation, target, &request).await
    }

    /// Every page of a list operation: the names under `member`.
    async fn list(
        &self,
        operation: &'static str,
        target: &str,
        request: Value,
        member: &str,
    ) -> Result<Vec<String>, CallError> {
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut page = request.clone();
            if let Some(token) = token.take() {
                page["nextToken"] = json!(token);
            }
            let out = self.call(operation, target, page).await?;
            names.extend(out[member].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned));
            match out["nextToken"].as_str().filter(|t| !t.is_empty()) {
                Some(next) => token = Some(next.to_owned()),
                None => return Ok(names),
            }
        }
    }

    /// Every deployment group of the account's ECS applications, described.
    pub async fn ecs_groups(&self) -> Result<Vec<DeploymentGroupInfo>, CallError> {
        let names = self.list("ListApplications", "the account", json!({}), "applications").await?;
        let mut groups = Vec::new();
        for batch in names.chunks(BATCH) {
            let out = self
                .call("BatchGetApplications", "the account's applications", json!({"applicationNames": batch}))
                .await?;
            let ecs = out["applicationsInfo"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["computePlatform"] == "ECS")
                .filter_map(|a| a["applicationName"].as_str());
            for application in ecs {
                groups.extend(self.application_groups(application).await?);
            }
        }
        Ok(groups)
    }

    async fn application_groups(&self, application: &str) -> Result<Vec<DeploymentGroupInfo>, CallError> {
        let request = json!({"applicationName": application});
        let names = self.list("ListDeploymentGroups", application, request, "deploymentGroups").await?;
        let mut groups = Vec::new();
        for batch in names.chunks(BATCH) {
            groups.extend(self.describe_groups(application, batch).await?);
        }
        Ok(groups)
    }

    async fn describe_groups(
        &self,
        application: &str,
        names: &[String],
    ) -> Result<Vec<DeploymentGroupInfo>, CallError> {
        let request = json!({"applicationName": application, "deploymentGroupNames": names});
        let out = self.call("BatchGetDeploymentGroups", application, request).await?;
        read("BatchGetDeploymentGroups", application, out.get("deploymentGroupsInfo").cloned())
    }

    /// One group, as CodeDeploy describes it now; `None` when it has no such group.
    pub async fn describe_group(&self, group: &GroupName) -> Result<Option<DeploymentGroupInfo>, CallError> {
        let found = self.describe_groups(&group.application, std::slice::from_ref(&group.deployment_group)).await?;
        Ok(found.into_iter().find(|g| g.deployment_group_name.as_deref() == Some(group.deployment_group.as_str())))
    }

    /// The cluster and service the group deploys; `None` when it deploys none (or no longer exists).
    pub async fn group_service(&self, group: &GroupName) -> Result<Option<ServiceId>, CallError> {
        let described = self.describe_group(group).await?;
        Ok(described.iter().flat_map(|g| &g.ecs_services).find_map(EcsService::id))
    }

    /// GetDeployment's answer, read.
    async fn get_deployment(&self, id: &str) -> Result<Option<DeploymentInfo>, CallError> {
        let out = self.call("GetDeployment", id, json!({"deploymentId": id})).await?;
        read("GetDeployment", id, out.get("deploymentInfo").cloned())
    }

    /// A deployment, as GetDeployment describes it; `None` when CodeDeploy has no such deployment.
    pub async fn deployment(&self, id: &str) -> Result<Option<DeploymentInfo>, CallError> {
        match self.get_deployment(id).await {
            Err(err) if err.code.as_deref() == Some("DeploymentDoesNotExistException") => Ok(None),
            found => found,
        }
    }

    /// The task definition a deployment deploys (its AppSpec's), as GetDeployment
    /// says; `None` when its revision names none that nightshift reads.
    pub async fn deployment_task_definition(&self, id: &str) -> Result<Option<String>, CallError> {
        let info = self.get_deployment(id).await?;
        Ok(info
            .and_then(|i| i.revision)
            .as_ref()
            .and_then(Revision::app_spec)
            .and_then(super::appspec::task_definition))
    }

    /// Creates the deployment of `appspec` (JSON) in the group, with automatic
    /// rollback on failure and on alarm; returns its id. `config`: the
    /// deployment configuration, `None` for the group's own.
    pub async fn create_deployment(
        &self,
        group: &GroupName,
        appspec: String,
        config: Option<String>,
        description: String,
    ) -> Result<String, CallError> {
        let mut request = json!({
            "applicationName": group.application,
            "deploymentGroupName": group.deployment_group,
            "revision": {"revisionType": "AppSpecContent", "appSpecContent": {"content": appspec}},
            "autoRollbackConfiguration": {"enabled": true, "events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"]},
            "description": description,
        });
        if let Some(config) = config {
            request["deploymentConfigName"] = json!(config);
        }
        let target = group.to_string();
        let out = self.call("CreateDeployment", &target, request).await?;
        out["deploymentId"].as_str().map(str::to_owned).ok_or_else(|| CallError {
            operation: "CreateDeployment",
            target,
            code: None,
            message: "the answer holds no deployment id".into(),
        })
    }

    /// Answers a lifecycle hook with `status` (`Succeeded` or `Failed`);
    /// `Ok(false)` when it was answered already (a second delivery).
    pub async fn answer_hook(&self, deployment: &str, execution: &str, status: &str) -> Result<bool, CallError> {
        let request = json!({
            "deploymentId": deployment,
            "lifecycleEventHookExecutionId": execution,
            "status": status,
        });
        match self.call("PutLifecycleEventHookExecutionStatus", deployment, request).await {
            Ok(_) => Ok(true),
            Err(err) if err.code.as_deref() == Some("LifecycleEventAlreadyCompletedException") => Ok(false),
            Err(err) => Err(err),
        }
    }
}

/// A member of an answer read into `T` (absent: `T`'s default).
fn read<T: serde::de::DeserializeOwned + Default>(
    operation: &'static str,
    target: &str,
    member: Option<Value>,
) -> Result<T, CallError> {
    match member {
        None | Some(Value::Null) => Ok(T::default()),
        Some(value) => serde_json::from_value(value).map_err(|e| CallError {
            operation,
            target: target.to_owned(),
            code: None,
            message: format!("CodeDeploy's answer is not what its API says: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_and_a_deployment_are_read_from_codedeploys_answers() {
        let group: DeploymentGroupInfo = serde_json::from_value(json!({
            "applicationName": "shop", "deploymentGroupName": "bg", "computePlatform": "ECS",
            "ecsServices": [{"clusterName": "shop", "serviceName": "blue-green"}],
            "deploymentConfigName": "CodeDeployDefault.ECSAllAtOnce",
            "targetRevision": {"revisionType": "AppSpecContent", "appSpecContent": {"content": "{}", "sha256": "x"}},
            "lastAttemptedDeployment": {"deploymentId": "d-1", "status": "InProgress", "createTime": 1.7e9},
            "serviceRoleArn": "arn:aws:iam::123456789012:role/cd",
        }))
        .unwrap();
        assert_eq!(group.ecs_services[0].service_name.as_deref(), Some("blue-green"));
        assert_eq!(group.target_revision.as_ref().and_then(Revision::app_spec), Some("{}"));
        assert_eq!(group.last_attempted_deployment.unwrap().status.as_deref(), Some("InProgress"));

        let deployment: DeploymentInfo = serde_json::from_value(json!({
            "applicationName": "shop", "deploymentGroupName": "bg", "creator": "codeDeployRollback",
            "createTime": 1764979200.5,
            "rollbackInfo": {"rollbackTriggeringDeploymentId": "d-1", "rollbackMessage": "alarm"},
            "autoRollbackConfiguration": {"enabled": true, "events": ["DEPLOYMENT_FAILURE"]},
            "errorInformation": {"code": "ALARM_ACTIVE", "message": "an alarm went off"},
        }))
        .unwrap();
        assert_eq!(deployment.creator.as_deref(), Some("codeDeployRollback"));
        assert_eq!(deployment.create_time, Some(1764979200.5));
        assert_eq!(deployment.auto_rollback_configuration.unwrap().events, ["DEPLOYMENT_FAILURE"]);
        assert_eq!(deployment.error_information.unwrap().message.as_deref(), Some("an alarm went off"));

        let wrong = read::<Vec<DeploymentGroupInfo>>("BatchGetDeploymentGroups", "shop", Some(json!({"a": 1})));
        assert!(wrong.unwrap_err().message.contains("not what its API says"));
        assert_eq!(read::<Vec<DeploymentGroupInfo>>("BatchGetDeploymentGroups", "shop", None).unwrap(), vec![]);
    }
}
