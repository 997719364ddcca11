//! The ECS calls: observe and apply, never decide. Listing and describing a
//! cluster's services are `nightshift::ecs`'s.

use aws_sdk_ecs::Client;
use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::types::{ContainerDefinition, DeploymentConfiguration, Tag, TaskDefinition, TaskDefinitionField};
use nightshift::aws::CallError;

use crate::error::DeployError;

fn ecs_error<E>(operation: &'static str, target: &str, err: E) -> DeployError
where
    E: ProvideErrorMetadata + std::error::Error,
{
    DeployError::Ecs(CallError::new(operation, target, err))
}

/// Every cluster of the account and region.
pub async fn list_clusters(ecs: &Client) -> Result<Vec<String>, DeployError> {
    let mut arns = Vec::new();
    let mut pages = ecs.list_clusters().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| ecs_error("ListClusters", "the account", e.into_service_error()))?;
        arns.extend(page.cluster_arns().iter().cloned());
    }
    Ok(arns)
}

/// The task definition with its tags.
pub async fn describe_task_definition(ecs: &Client, arn: &str) -> Result<(TaskDefinition, Vec<Tag>), DeployError> {
    let out = ecs
        .describe_task_definition()
        .task_definition(arn)
        .include(TaskDefinitionField::Tags)
        .send()
        .await
        .map_err(|e| ecs_error("DescribeTaskDefinition", arn, e.into_service_error()))?;
    let task_definition = out.task_definition.ok_or_else(|| {
        DeployError::Ecs(CallError {
            operation: "DescribeTaskDefinition",
            target: arn.to_owned(),
            code: None,
            message: "the answer holds no task definition".into(),
        })
    })?;
    Ok((task_definition, out.tags.unwrap_or_default()))
}

/// Registers a revision cloned from `from`, with these containers and tags;
/// returns its full ARN. Every RegisterTaskDefinition field is carried over,
/// but inference accelerators, which ECS no longer accepts.
pub async fn register_clone(
    ecs: &Client,
    from: &TaskDefinition,
    containers: Vec<ContainerDefinition>,
    tags: Vec<Tag>,
) -> Result<String, DeployError> {
    let source = from.task_definition_arn().unwrap_or_default();
    let out = ecs
        .register_task_definition()
        .set_family(from.family.clone())
        .set_task_role_arn(from.task_role_arn.clone())
        .set_execution_role_arn(from.execution_role_arn.clone())
        .set_network_mode(from.network_mode.clone())
        .set_container_definitions(Some(containers))
        .set_volumes(from.volumes.clone())
        .set_placement_constraints(from.placement_constraints.clone())
        .set_requires_compatibilities(from.requires_compatibilities.clone())
        .set_cpu(from.cpu.clone())
        .set_memory(from.memory.clone())
        .set_tags((!tags.is_empty()).then_some(tags))
        .set_pid_mode(from.pid_mode.clone())
        .set_ipc_mode(from.ipc_mode.clone())
        .set_proxy_configuration(from.proxy_configuration.clone())
        .set_ephemeral_storage(from.ephemeral_storage.clone())
        .set_runtime_platform(from.runtime_platform.clone())
        .set_enable_fault_injection(from.enable_fault_injection)
        .send()
        .await
        .map_err(|e| ecs_error("RegisterTaskDefinition", source, e.into_service_error()))?;
    out.task_definition().and_then(TaskDefinition::task_definition_arn).map(str::to_owned).ok_or_else(|| {
        DeployError::Ecs(CallError {
            operation: "RegisterTaskDefinition",
            target: source.to_owned(),
            code: None,
            message: "the answer holds no task definition ARN".into(),
        })
    })
}

pub async fn update_service(
    ecs: &Client,
    cluster: &str,
    service: &str,
    task_definition_arn: &str,
    deployment_configuration: DeploymentConfiguration,
) -> Result<(), DeployError> {
    ecs.update_service()
        .cluster(cluster)
        .service(service)
        .task_definition(task_definition_arn)
        .deployment_configuration(deployment_configuration)
        .send()
        .await
        .map_err(|e| ecs_error("UpdateService", &format!("{cluster}/{service}"), e.into_service_error()))?;
    Ok(())
}

/// Sets one tag on a service.
pub async fn tag_service(ecs: &Client, service_arn: &str, key: &str, value: &str) -> Result<(), DeployError> {
    ecs.tag_resource()
        .resource_arn(service_arn)
        .tags(Tag::builder().key(key).value(value).build())
        .send()
        .await
        .map_err(|e| ecs_error("TagResource", service_arn, e.into_service_error()))?;
    Ok(())
}
