//! The ECS reads every ECS function makes: a cluster's services, described
//! with their tags ten to a request.

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{Service, ServiceField, Tag};

use crate::aws::CallError;

/// DescribeServices takes at most this many services.
pub const DESCRIBE_BATCH: usize = 10;

/// The value of a tag, if the list has it.
pub fn tag_value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key() == Some(key)).and_then(Tag::value)
}

/// Every service ARN of the cluster.
pub async fn list_services(ecs: &Client, cluster: &str) -> Result<Vec<String>, CallError> {
    let mut arns = Vec::new();
    let mut pages = ecs.list_services().cluster(cluster).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| CallError::new("ListServices", cluster, e.into_service_error()))?;
        arns.extend(page.service_arns().iter().cloned());
    }
    Ok(arns)
}

/// The services (by ARN or name) with their tags, ten to a request. A service
/// ECS cannot describe is logged and left out.
pub async fn describe_services(ecs: &Client, cluster: &str, services: &[String]) -> Result<Vec<Service>, CallError> {
    let mut described = Vec::with_capacity(services.len());
    for batch in services.chunks(DESCRIBE_BATCH) {
        let out = ecs
            .describe_services()
            .cluster(cluster)
            .set_services(Some(batch.to_vec()))
            .include(ServiceField::Tags)
            .send()
            .await
            .map_err(|e| CallError::new("DescribeServices", cluster, e.into_service_error()))?;
        for failure in out.failures() {
            tracing::warn!(cluster, arn = ?failure.arn(), reason = ?failure.reason(), "service could not be described");
        }
        described.extend(out.services.unwrap_or_default());
    }
    Ok(described)
}
