//! What a service runs, remembered on the service itself (tag
//! `nightshift:running`) so that a later push is decided from DescribeServices
//! alone: ECS does not say which images a service runs without reading its
//! task definition, and a Lambda is mostly cold when pushes arrive.
//!
//! The value is `<family>:<revision>` and then, for each container whose image
//! is in the service's own ECR registry, `<container>=<repository>[:<tag>][=<policy>]`,
//! separated by spaces (tag values allow no commas), at most 256 characters:
//! `api:7 app=shop/api:1.2.0 envoy=shop/envoy=patch rc=shop/rc:RC_1.0.0=glob:RC_@2A`.
//! The policy is the container's docker label `nightshift.deploy` when it has
//! one, with every character but letters, digits and `_.:/+-` written `@XX`
//! (its UTF-8 bytes in hex), since ECS tag values cannot hold `*`, `[`, `|`
//! and the like. A record whose revision is not the one the service runs is
//! stale and ignored.
//!
//! This module owns what a revision runs; the decisions in `plan` read it.

use aws_sdk_ecs::types::{ContainerDefinition, Service, Tag};
use nightshift::ecs::{tag_problem, tag_value};

use crate::policy::DEPLOY_LABEL;
use nightshift::image::{ImageRef, ecr_registry};

/// The service tag holding the record.
pub const RUNNING_TAG: &str = "nightshift:running";
/// Task-definition tag prefix recording the tag a container was deployed from.
pub use nightshift::ecs::IMAGE_TAG_PREFIX;

/// A label as the record holds it: `@XX` for each byte outside `[A-Za-z0-9_.:/+-]`.
fn escape(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    for c in label.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '/' | '+' | '-') {
            out.push(c);
        } else {
            let mut bytes = [0; 4];
            for b in c.encode_utf8(&mut bytes).bytes() {
                out.push_str(&format!("@{b:02X}"));
            }
        }
    }
    out
}

/// The label back from [`escape`]; `None` for a malformed escape.
fn unescape(recorded: &str) -> Option<String> {
    nightshift::percent::decode_escaped(recorded, '@', false).ok()
}

/// The tag a container runs: the one recorded on its revision when nightshift
/// deployed it (behind a digest), else its image's own.
pub fn running_tag(td_tags: &[Tag], container: &str, image: &ImageRef) -> Option<String> {
    nightshift::ecs::deployed_image_tag(td_tags, container).map(str::to_owned).or_else(|| image.tag.clone())
}

/// A container's own policy: its docker label `nightshift.deploy`, if set.
pub fn container_label(container: &ContainerDefinition) -> Option<&str> {
    container.docker_labels().and_then(|labels| labels.get(DEPLOY_LABEL)).map(String::as_str)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub container: String,
    pub repository: String,
    /// The tag it was deployed from; `None` when not known (an image pinned by digest alone).
    pub tag: Option<String>,
    /// Its docker label `nightshift.deploy`, as set; `None` without a label.
    pub policy: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningRecord {
    /// `family:revision`.
    pub revision: String,
    pub containers: Vec<Recorded>,
}

pub use nightshift::ecs::revision_of;

/// The ECR registry of the account and region a service lives in, from its ARN.
pub fn service_registry(service: &Service) -> Option<String> {
    let (region, account) = nightshift::aws::arn_region_and_account(service.service_arn()?);
    (!region.is_empty() && !account.is_empty()).then(|| ecr_registry(account, region))
}

impl RunningRecord {
    /// What a revision runs: its containers from `registry`, each with the tag
    /// recorded on the revision (`nightshift:image-tag/<container>`) or else
    /// the image's own tag.
    pub fn of(task_definition_arn: &str, containers: &[ContainerDefinition], td_tags: &[Tag], registry: &str) -> Self {
        let containers = containers
            .iter()
            .filter_map(|c| {
                let (name, image) = (c.name()?, c.image()?.parse::<ImageRef>().ok()?);
                if image.registry.as_deref() != Some(registry) {
                    return None;
                }
                let tag = running_tag(td_tags, name, &image);
                let policy = container_label(c).map(|label| label.trim().to_owned());
                Some(Recorded { container: name.to_owned(), repository: image.repository, tag, policy })
            })
            .collect();
        Self { revision: revision_of(task_definition_arn).to_owned(), containers }
    }

    /// The tag value; `None` when it would not fit in one.
    pub fn render(&self) -> Option<String> {
        let mut value = self.revision.clone();
        for c in &self.containers {
            value.push(' ');
            value.push_str(&c.container);
            value.push('=');
            value.push_str(&c.repository);
            if let Some(tag) = &c.tag {
                value.push(':');
                value.push_str(tag);
            }
            if let Some(policy) = &c.policy {
                value.push('=');
                value.push_str(&escape(policy));
            }
        }
        tag_problem(RUNNING_TAG, &value).is_none().then_some(value)
    }

    pub fn parse(value: &str) -> Option<Self> {
        let mut words = value.split(' ');
        let revision = words.next().filter(|r| r.contains(':'))?.to_owned();
        let containers = words
            .map(|word| {
                let mut parts = word.split('=');
                let (container, image) = (parts.next()?, parts.next()?);
                let policy = match parts.next() {
                    Some(escaped) if !escaped.is_empty() => Some(unescape(escaped)?),
                    Some(_) => return None,
                    None => None,
                };
                if parts.next().is_some() {
                    return None;
                }
                let (repository, tag) = match image.split_once(':') {
                    Some((repository, tag)) => (repository, Some(tag.to_owned())),
                    None => (image, None),
                };
                (!container.is_empty() && !repository.is_empty()).then(|| Recorded {
                    container: container.to_owned(),
                    repository: repository.to_owned(),
                    tag,
                    policy,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self { revision, containers })
    }

    /// The service's record, when it has one for the revision it runs now.
    pub fn current(service: &Service) -> Option<Self> {
        let record = Self::parse(tag_value(service.tags(), RUNNING_TAG)?)?;
        (record.revision == revision_of(service.task_definition()?)).then_some(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ECR: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
    const TD: &str = "arn:aws:ecs:eu-west-1:123456789012:task-definition/api:7";

    fn container(name: &str, image: &str) -> ContainerDefinition {
        ContainerDefinition::builder().name(name).image(image).build()
    }

    #[test]
    fn a_record_holds_the_revision_and_each_ecr_containers_repository_and_tag() {
        let labelled = |name: &str, image: &str, label: &str| {
            ContainerDefinition::builder().name(name).image(image).docker_labels(DEPLOY_LABEL, label).build()
        };
        let containers = [
            container("app", &format!("{ECR}/shop/api@sha256:aaaa")),
            labelled("envoy", &format!("{ECR}/shop/envoy:v1.30.1"), "patch"),
            container("nginx", "nginx:1.27"),
            container("bare", &format!("{ECR}/shop/bare@sha256:bbbb")),
            labelled("rc", &format!("{ECR}/shop/rc:RC_1.0.0"), "glob:RC_*"),
            labelled("n", &format!("{ECR}/shop/n:n-1"), "regex:n-[0-9]+|é@x"),
        ];
        let tags = [Tag::builder().key("nightshift:image-tag/app").value("1.2.0").build()];
        let record = RunningRecord::of(TD, &containers, &tags, ECR);
        let value = record.render().unwrap();
        assert_eq!(
            value,
            "api:7 app=shop/api:1.2.0 envoy=shop/envoy:v1.30.1=patch bare=shop/bare rc=shop/rc:RC_1.0.0=glob:RC_@2A \
             n=shop/n:n-1=regex:n-@5B0-9@5D+@7C@C3@A9@40x"
        );
        assert_eq!(nightshift::ecs::tag_problem(RUNNING_TAG, &value), None, "ECS takes the record");
        assert_eq!(RunningRecord::parse(&value), Some(record));
    }

    #[test]
    fn a_record_too_long_for_a_tag_is_not_kept_and_a_mangled_one_is_not_read() {
        let long = "x".repeat(120);
        let containers =
            [container("a", &format!("{ECR}/{long}:1.0.0")), container("b", &format!("{ECR}/{long}:1.0.0"))];
        assert_eq!(RunningRecord::of(TD, &containers, &[], ECR).render(), None);
        for mangled in [
            "",
            "api",
            "api:7 app",
            "api:7 =shop/api:1",
            "api:7 app=",
            "api:7 a=b:1=",
            "api:7 a=b=c=d",
            "api:7 a=b=@2",
            "api:7 a=b=@zz",
        ] {
            assert_eq!(RunningRecord::parse(mangled), None, "{mangled:?}");
        }
        assert_eq!(RunningRecord::parse("api:7").map(|r| r.containers.len()), Some(0));
    }

    #[test]
    fn only_the_record_of_the_running_revision_counts() {
        let service = |td: &str, record: &str| {
            Service::builder()
                .service_arn("arn:aws:ecs:eu-west-1:123456789012:service/shop/api")
                .task_definition(td)
                .tags(Tag::builder().key(RUNNING_TAG).value(record).build())
                .build()
        };
        assert!(RunningRecord::current(&service(TD, "api:7 app=shop/api:1.2.0")).is_some());
        assert_eq!(RunningRecord::current(&service(TD, "api:6 app=shop/api:1.1.0")), None);
        assert_eq!(service_registry(&service(TD, "")).as_deref(), Some(ECR));
    }
}
