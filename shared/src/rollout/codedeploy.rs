//! The CodeDeploy calls: observe and apply, never decide.

use crate::aws::CallError;
use aws_sdk_codedeploy::Client;
use aws_sdk_codedeploy::types::{
    AppSpecContent, ApplicationInfo, AutoRollbackConfiguration, AutoRollbackEvent, ComputePlatform,
    DeploymentGroupInfo, RevisionLocation, RevisionLocationType,
};

use super::bluegreen::GroupName;

/// BatchGetApplications and BatchGetDeploymentGroups take at most 100 names.
const BATCH: usize = 100;

/// Every deployment group of the account's ECS applications, described.
pub async fn ecs_groups(codedeploy: &Client) -> Result<Vec<DeploymentGroupInfo>, CallError> {
    let mut names = Vec::new();
    let mut pages = codedeploy.list_applications().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| CallError::new("ListApplications", "the account", e.into_service_error()))?;
        names.extend(page.applications().iter().cloned());
    }
    let mut groups = Vec::new();
    for batch in names.chunks(BATCH) {
        let out =
            codedeploy.batch_get_applications().set_application_names(Some(batch.to_vec())).send().await.map_err(
                |e| CallError::new("BatchGetApplications", "the account's applications", e.into_service_error()),
            )?;
        let ecs = out.applications_info().iter().filter(|a| a.compute_platform() == Some(&ComputePlatform::Ecs));
        for application in ecs.filter_map(ApplicationInfo::application_name) {
            groups.extend(application_groups(codedeploy, application).await?);
        }
    }
    Ok(groups)
}

async fn application_groups(codedeploy: &Client, application: &str) -> Result<Vec<DeploymentGroupInfo>, CallError> {
    let mut names = Vec::new();
    let mut pages = codedeploy.list_deployment_groups().application_name(application).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| CallError::new("ListDeploymentGroups", application, e.into_service_error()))?;
        names.extend(page.deployment_groups().iter().cloned());
    }
    let mut groups = Vec::new();
    for batch in names.chunks(BATCH) {
        groups.extend(describe_groups(codedeploy, application, batch).await?);
    }
    Ok(groups)
}

async fn describe_groups(
    codedeploy: &Client,
    application: &str,
    names: &[String],
) -> Result<Vec<DeploymentGroupInfo>, CallError> {
    let out = codedeploy
        .batch_get_deployment_groups()
        .application_name(application)
        .set_deployment_group_names(Some(names.to_vec()))
        .send()
        .await
        .map_err(|e| CallError::new("BatchGetDeploymentGroups", application, e.into_service_error()))?;
    Ok(out.deployment_groups_info.unwrap_or_default())
}

/// One group, as CodeDeploy describes it now; `None` when it has no such group.
pub async fn describe_group(codedeploy: &Client, group: &GroupName) -> Result<Option<DeploymentGroupInfo>, CallError> {
    let found = describe_groups(codedeploy, &group.application, std::slice::from_ref(&group.deployment_group)).await?;
    Ok(found.into_iter().find(|g| g.deployment_group_name() == Some(group.deployment_group.as_str())))
}

/// The task definition a deployment deploys (its AppSpec's), as GetDeployment
/// says; `None` when its revision names none that nightshift reads.
pub async fn deployment_task_definition(codedeploy: &Client, id: &str) -> Result<Option<String>, CallError> {
    let out = codedeploy
        .get_deployment()
        .deployment_id(id)
        .send()
        .await
        .map_err(|e| CallError::new("GetDeployment", id, e.into_service_error()))?;
    Ok(out
        .deployment_info()
        .and_then(|i| i.revision())
        .and_then(|r| r.app_spec_content())
        .and_then(|a| a.content())
        .and_then(super::appspec::task_definition))
}

/// Creates the deployment of `appspec` (JSON) in the group, with automatic
/// rollback on failure and on alarm; returns its id. `config`: the
/// deployment configuration, `None` for the group's own.
pub async fn create_deployment(
    codedeploy: &Client,
    group: &GroupName,
    appspec: String,
    config: Option<String>,
    description: String,
) -> Result<String, CallError> {
    let revision = RevisionLocation::builder()
        .revision_type(RevisionLocationType::AppSpecContent)
        .app_spec_content(AppSpecContent::builder().content(appspec).build())
        .build();
    let rollback = AutoRollbackConfiguration::builder()
        .enabled(true)
        .events(AutoRollbackEvent::DeploymentFailure)
        .events(AutoRollbackEvent::DeploymentStopOnAlarm)
        .build();
    let out = codedeploy
        .create_deployment()
        .application_name(&group.application)
        .deployment_group_name(&group.deployment_group)
        .revision(revision)
        .set_deployment_config_name(config)
        .auto_rollback_configuration(rollback)
        .description(description)
        .send()
        .await
        .map_err(|e| CallError::new("CreateDeployment", &group.to_string(), e.into_service_error()))?;
    out.deployment_id.ok_or_else(|| CallError {
        operation: "CreateDeployment",
        target: group.to_string(),
        code: None,
        message: "the answer holds no deployment id".into(),
    })
}
