//! The ECS reads every ECS function makes (a cluster's services, described
//! with their tags ten to a request), and the rules every tag nightshift
//! writes must pass.

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{Service, ServiceField, Tag};

use crate::aws::CallError;

/// DescribeServices takes at most this many services.
pub const DESCRIBE_BATCH: usize = 10;

/// `family:revision` of a task definition ARN (or of `family:revision` itself).
pub fn revision_of(task_definition: &str) -> &str {
    last_segment(task_definition)
}

/// The name at the end of an ARN's path (`.../cluster/<name>`), or the text itself.
pub fn last_segment(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// Sets tags on an ECS resource: the one TagResource nightshift makes.
pub async fn tag_resource(ecs: &Client, arn: &str, tags: &[(String, String)]) -> Result<(), CallError> {
    let tags = tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build());
    ecs.tag_resource()
        .resource_arn(arn)
        .set_tags(Some(tags.collect()))
        .send()
        .await
        .map_err(|e| CallError::new("TagResource", arn, e.into_service_error()))?;
    Ok(())
}

/// The value of a tag, if the list has it.
pub fn tag_value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key() == Some(key)).and_then(Tag::value)
}

/// The service tag that opts a service in to deploy-on-push (and so to watch-rollouts), holding its policy.
pub const DEPLOY_TAG: &str = "nightshift:deploy";
/// The service tag naming the service a service is promoted from (`<cluster>/<service>`):
/// such a service follows that one's successful rollouts, not ECR pushes.
pub const PROMOTE_FROM_TAG: &str = "nightshift:promote-from";
/// deploy-on-push's tag on a revision it registers: `<prefix><container>` = the image tag it deployed.
pub const IMAGE_TAG_PREFIX: &str = "nightshift:image-tag/";

/// The image tag deploy-on-push recorded on a revision for a container (its image is pinned by digest).
pub fn deployed_image_tag<'a>(td_tags: &'a [Tag], container: &str) -> Option<&'a str> {
    tag_value(td_tags, &format!("{IMAGE_TAG_PREFIX}{container}"))
}

/// ECS takes at most this many tags on a resource (those starting `aws:` aside).
pub const MAX_TAGS: usize = 50;
/// ECS's longest tag key and value, in characters.
pub const MAX_KEY: usize = 128;
pub const MAX_VALUE: usize = 256;

/// Whether ECS takes the character in a tag key or value: its model's pattern
/// `[\p{L}\p{Z}\p{N}_.:/=+\-@]` (letters, separators, numbers, and `_.:/=+-@`).
fn tag_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | ':' | '/' | '=' | '+' | '-' | '@' | ' ') || {
        // \p{Z}: the space separators, line and paragraph separators (not tabs or newlines).
        matches!(
            c,
            '\u{a0}' | '\u{1680}' | '\u{2000}'
                ..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}'
        )
    }
}

/// Why ECS would refuse this tag, or `None` when it takes it.
pub fn tag_problem(key: &str, value: &str) -> Option<String> {
    let (key_len, value_len) = (key.chars().count(), value.chars().count());
    if key_len == 0 || key_len > MAX_KEY {
        return Some(format!("the tag key {key:?} has {key_len} characters; ECS takes 1 to {MAX_KEY}"));
    }
    if value_len > MAX_VALUE {
        return Some(format!("the value of tag {key} has {value_len} characters; ECS takes at most {MAX_VALUE}"));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Some(format!("the tag key {key:?} starts with aws:, which AWS reserves"));
    }
    if let Some(c) = key.chars().find(|c| !tag_char(*c)) {
        return Some(format!("the tag key {key:?} has {c:?}; ECS takes letters, numbers, spaces and _.:/=+-@"));
    }
    if let Some(c) = value.chars().find(|c| !tag_char(*c)) {
        return Some(format!("the value of tag {key} has {c:?}; ECS takes letters, numbers, spaces and _.:/=+-@"));
    }
    None
}

/// The tags that count towards [`MAX_TAGS`]: those starting `aws:` do not.
pub fn counted_tags(tags: &[Tag]) -> usize {
    tags.iter().filter_map(Tag::key).filter(|k| !k.to_ascii_lowercase().starts_with("aws:")).count()
}

/// Why setting these keys on a resource that carries `current` would take it
/// past [`MAX_TAGS`]; keys it has already are replaced, not added.
pub fn tag_count_problem(current: &[Tag], keys: &[&str]) -> Option<String> {
    let counted = |k: &str| !k.to_ascii_lowercase().starts_with("aws:");
    let have = counted_tags(current);
    let mut new: Vec<&str> = keys.iter().copied().filter(|k| counted(k) && tag_value(current, k).is_none()).collect();
    new.sort_unstable();
    new.dedup();
    (have + new.len() > MAX_TAGS)
        .then(|| format!("it carries {have} tags and needs {} more; ECS allows {MAX_TAGS} on a resource", new.len()))
}

/// Every cluster of the account and region.
pub async fn list_clusters(ecs: &Client) -> Result<Vec<String>, CallError> {
    let mut arns = Vec::new();
    let mut pages = ecs.list_clusters().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| CallError::new("ListClusters", "the account", e.into_service_error()))?;
        arns.extend(page.cluster_arns().iter().cloned());
    }
    Ok(arns)
}

/// Every service of these clusters, described with its tags; when none are
/// named, of every cluster of the account and region.
pub async fn services_in(ecs: &Client, clusters: &[String]) -> Result<Vec<Service>, CallError> {
    let clusters = if clusters.is_empty() { list_clusters(ecs).await? } else { clusters.to_vec() };
    let mut services = Vec::new();
    for cluster in &clusters {
        let arns = list_services(ecs, cluster).await?;
        services.extend(describe_services(ecs, cluster, &arns).await?);
    }
    Ok(services)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_checked_as_ecs_checks_them() {
        let ok = [
            ("nightshift:deploy", "semver"),
            ("nightshift:running", "api:7 app=shop/api:1.2.0 envoy=shop/envoy@sha256"),
            ("nightshift:last-activity", "2026-11-27T03:00:00Z"),
            ("équipe", "données 2"),
            ("k", ""),
        ];
        for (k, v) in ok {
            assert_eq!(tag_problem(k, v), None, "{k}={v}");
        }
        let refused = [
            ("nightshift:deploy", "glob:RC_*", "has '*'"),
            ("nightshift:containers", "app,worker", "has ','"),
            ("nightshift:deploy", "regex:a|b", "has '|'"),
            ("tab", "a\tb", "has '\\t'"),
            ("aws:owner", "me", "starts with aws:"),
            ("AWS:owner", "me", "starts with aws:"),
            ("", "x", "ECS takes 1 to 128"),
        ];
        for (k, v, why) in refused {
            let problem = tag_problem(k, v).unwrap_or_default();
            assert!(problem.contains(why), "{k}={v}: {problem}");
        }
        assert!(tag_problem(&"k".repeat(129), "").is_some());
        assert!(tag_problem("k", &"v".repeat(257)).is_some());
        assert_eq!(tag_problem(&"k".repeat(128), &"v".repeat(256)), None);
    }

    #[test]
    fn no_resource_is_taken_past_fifty_tags() {
        let tags =
            |n: usize| (0..n).map(|i| Tag::builder().key(format!("k{i}")).value("v").build()).collect::<Vec<_>>();
        assert_eq!(tag_count_problem(&tags(48), &["a", "b"]), None);
        assert_eq!(
            tag_count_problem(&tags(49), &["a", "b"]).as_deref(),
            Some("it carries 49 tags and needs 2 more; ECS allows 50 on a resource")
        );
        assert_eq!(tag_count_problem(&tags(50), &["k3"]), None, "a key it has is replaced");
        let mut with_aws = tags(50);
        with_aws[0] = Tag::builder().key("aws:cloudformation:stack-name").value("s").build();
        assert_eq!(tag_count_problem(&with_aws, &["new"]), None, "aws: tags do not count");
    }
}
