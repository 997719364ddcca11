//! The ECS calls: observe and apply, never decide.

use aws_sdk_ecs::Client;
use aws_sdk_ecs::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_ecs::types::{
    ContainerDefinition, DeploymentConfiguration, Service, ServiceField, Tag, TaskDefinition, TaskDefinitionField,
};

use crate::error::DeployError;

/// DescribeServices takes at most this many services.
pub const DESCRIBE_BATCH: usize = 10;

fn ecs_error<E>(operation: &'static str, target: &str, err: E) -> DeployError
where
    E: ProvideErrorMetadata + std::error::Error,
{
    DeployError::Ecs {
        operation,
        target: target.to_owned(),
        code: err.code().map(str::to_owned),
        message: err.message().map_or_else(|| DisplayErrorContext(&err).to_string(), str::to_owned),
    }
}

pub async fn list_clusters(ecs: &Client) -> Result<Vec<String>, DeployError> {
    let mut arns = Vec::new();
    let mut pages = ecs.list_clusters().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| ecs_error("ListClusters", "the account", e.into_service_error()))?;
        arns.extend(page.cluster_arns().iter().cloned());
    }
    Ok(arns)
}

pub async fn list_services(ecs: &Client, cluster: &str) -> Result<Vec<String>, DeployError> {
    let mut arns = Vec::new();
    let mut pages = ecs.list_services().cluster(cluster).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| ecs_error("ListServices", cluster, e.into_service_error()))?;
        arns.extend(page.service_arns().iter().cloned());
    }
    Ok(arns)
}

/// Describes the services with their tags, ten to a request.
pub async fn describe_services(ecs: &Client, cluster: &str, arns: &[String]) -> Result<Vec<Service>, DeployError> {
    let mut services = Vec::with_capacity(arns.len());
    for batch in arns.chunks(DESCRIBE_BATCH) {
        let out = ecs
            .describe_services()
            .cluster(cluster)
            .set_services(Some(batch.to_vec()))
            .include(ServiceField::Tags)
            .send()
            .await
            .map_err(|e| ecs_error("DescribeServices", cluster, e.into_service_error()))?;
        for failure in out.failures() {
            tracing::warn!(cluster, arn = ?failure.arn(), reason = ?failure.reason(), "service could not be described");
        }
        services.extend(out.services.unwrap_or_default());
    }
    Ok(services)
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
    let task_definition = out
        .task_definition
        .ok_or_else(|| DeployError::Ecs {
            operation: "DescribeTaskDefinition",
            target: arn.to_owned(),
            code: None,
            message: "the answer holds no task definition".into(),
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
    out.task_definition()
        .and_then(TaskDefinition::task_definition_arn)
        .map(str::to_owned)
        .ok_or_else(|| DeployError::Ecs {
            operation: "RegisterTaskDefinition",
            target: source.to_owned(),
            code: None,
            message: "the answer holds no task definition ARN".into(),
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
