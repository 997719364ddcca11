//! The ECS calls: observe and apply, never decide. Listing and describing a
//! cluster's services are `nightshift::ecs`'s.

use aws_sdk_ecs::Client;
use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::types::Tag;
use nightshift::aws::CallError;

use crate::error::DeployError;

fn ecs_error<E>(operation: &'static str, target: &str, err: E) -> DeployError
where
    E: ProvideErrorMetadata + std::error::Error,
{
    DeployError::Ecs(CallError::new(operation, target, err))
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
