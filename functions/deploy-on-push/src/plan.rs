//! The decisions: which services follow the push, which containers change,
//! and the new task-definition revision. No AWS calls here.

use aws_sdk_ecs::types::{
    ContainerDefinition, DeploymentCircuitBreaker, DeploymentConfiguration, DeploymentControllerType, Service, Tag,
    TaskDefinition,
};
use nightshift::ecs::tag_value;
use serde::Serialize;

use crate::event::Push;
use crate::image::{ImageRef, ecr_registry};
use crate::policy::{DeployPolicy, Running, Verdict, could_take, decide};
use crate::record::{Record, service_registry};

/// The service tag that opts a service in, and holds its policy.
pub const DEPLOY_TAG: &str = "nightshift:deploy";
/// The service tag naming the containers to update (comma-separated).
pub const CONTAINERS_TAG: &str = "nightshift:containers";
/// Task-definition tag prefix recording the tag a container was deployed from.
pub const IMAGE_TAG_PREFIX: &str = "nightshift:image-tag/";

/// A service and its cluster, as the report names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceId {
    pub cluster: String,
    pub service: String,
}

impl ServiceId {
    pub fn of(service: &Service) -> Self {
        let cluster = service.cluster_arn().unwrap_or_default();
        Self {
            cluster: cluster.rsplit('/').next().unwrap_or(cluster).to_owned(),
            service: service.service_name().unwrap_or_default().to_owned(),
        }
    }
}

/// What to do with a described service before its task definition is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidate {
    /// Not tagged `nightshift:deploy`: not ours, not reported.
    NotFollowing,
    Skip(String),
    /// Its task definition must be read to decide.
    Examine,
}

/// Decides from the service alone: its tag, its controller, whether its policy
/// could take the pushed tag at all, and, when the service carries a record of
/// the revision it runs (`nightshift:running`), what its containers run.
pub fn triage(service: &Service, push: &Push, tag: &str) -> Candidate {
    let Some(policy) = tag_value(service.tags(), DEPLOY_TAG) else {
        return Candidate::NotFollowing;
    };
    let policy = match DeployPolicy::parse(policy) {
        Ok(policy) => policy,
        Err(why) => return Candidate::Skip(format!("policy not understood: {why}")),
    };
    match service.deployment_controller().map(|c| c.r#type()) {
        Some(DeploymentControllerType::CodeDeploy) => {
            return Candidate::Skip("deployed by CodeDeploy (the CODE_DEPLOY controller)".into());
        }
        Some(DeploymentControllerType::External) => {
            return Candidate::Skip("deployed by an external controller (EXTERNAL)".into());
        }
        _ => {}
    }
    if let Some(status) = service.status()
        && status != "ACTIVE"
    {
        return Candidate::Skip(format!("the service is {status}"));
    }
    if service.task_definition().is_none() {
        return Candidate::Skip("the service names no task definition".into());
    }
    if !could_take(&policy, tag) {
        return Candidate::Skip(format!("{policy} does not take {tag}"));
    }
    let registry = ecr_registry(&push.account, &push.region);
    match Record::current(service) {
        Some(record) if service_registry(service).as_deref() == Some(registry.as_str()) => {
            triage_by_record(service, &record, &policy, push, tag, &registry)
        }
        _ => Candidate::Examine,
    }
}

/// The decision of [`plan_service`], from the record: a container that could
/// take the push is examined (its digest is only in the task definition).
fn triage_by_record(
    service: &Service,
    record: &Record,
    policy: &DeployPolicy,
    push: &Push,
    tag: &str,
    registry: &str,
) -> Candidate {
    let named = named_containers(service);
    let in_record = |name: &str| record.containers.iter().any(|c| c.container == name);
    if named.as_ref().is_some_and(|named| !named.iter().all(|n| in_record(n))) {
        // A named container outside the registry, or missing: the task definition says which.
        return Candidate::Examine;
    }
    let mut reasons = Vec::new();
    for recorded in &record.containers {
        if recorded.repository != push.repository
            || named.as_ref().is_some_and(|named| !named.contains(&recorded.container.as_str()))
        {
            continue;
        }
        let running = Running { tag: recorded.tag.clone(), digest: None };
        match decide(policy, tag, &push.digest, &running) {
            Verdict::Deploy => return Candidate::Examine,
            Verdict::Skip(why) => reasons.push(format!("{}: {why}", recorded.container)),
        }
    }
    Candidate::Skip(skip_reason(reasons, registry, &push.repository))
}

/// The containers `nightshift:containers` names, when it is set.
fn named_containers(service: &Service) -> Option<Vec<&str>> {
    tag_value(service.tags(), CONTAINERS_TAG).map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).collect())
}

/// The tag a container runs: the one recorded on its revision when nightshift
/// deployed it (behind a digest), else its image's own.
pub fn running_tag(td_tags: &[Tag], container: &str, image: &ImageRef) -> Option<String> {
    tag_value(td_tags, &format!("{IMAGE_TAG_PREFIX}{container}")).map(str::to_owned).or_else(|| image.tag.clone())
}

/// Why no container of a service takes the push.
fn skip_reason(reasons: Vec<String>, registry: &str, repository: &str) -> String {
    if reasons.is_empty() { format!("no container runs {registry}/{repository}") } else { reasons.join("; ") }
}

/// One container's change.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ImageChange {
    pub container: String,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ServicePlan {
    Skip(String),
    Deploy(Vec<ImageChange>),
}

/// Decides for a service whose task definition (with its tags) is known.
pub fn plan_service(
    service: &Service,
    task_definition: &TaskDefinition,
    td_tags: &[Tag],
    push: &Push,
    tag: &str,
) -> ServicePlan {
    let policy = match tag_value(service.tags(), DEPLOY_TAG).map(DeployPolicy::parse) {
        Some(Ok(policy)) => policy,
        Some(Err(why)) => return ServicePlan::Skip(format!("policy not understood: {why}")),
        None => return ServicePlan::Skip("not tagged nightshift:deploy".into()),
    };
    let registry = ecr_registry(&push.account, &push.region);
    let named = named_containers(service);
    let containers = task_definition.container_definitions();
    if let Some(named) = &named
        && let Some(missing) = named.iter().find(|n| !containers.iter().any(|c| c.name() == Some(**n)))
    {
        return ServicePlan::Skip(format!(
            "nightshift:containers names {missing:?}, which the task definition does not have"
        ));
    }
    let mut changes = Vec::new();
    let mut reasons = Vec::new();
    for container in containers {
        let (Some(name), Some(image)) = (container.name(), container.image()) else {
            continue;
        };
        if named.as_ref().is_some_and(|named| !named.contains(&name)) {
            continue;
        }
        let Ok(image_ref) = image.parse::<ImageRef>() else {
            reasons.push(format!("{name}: image {image:?} cannot be parsed"));
            continue;
        };
        if !image_ref.is_from(&registry, &push.repository) {
            continue;
        }
        let running = Running { tag: running_tag(td_tags, name, &image_ref), digest: image_ref.digest.clone() };
        match decide(&policy, tag, &push.digest, &running) {
            Verdict::Deploy => changes.push(ImageChange {
                container: name.to_owned(),
                from: image.to_owned(),
                to: ImageRef::pinned(&registry, &push.repository, &push.digest),
            }),
            Verdict::Skip(why) => reasons.push(format!("{name}: {why}")),
        }
    }
    if !changes.is_empty() {
        return ServicePlan::Deploy(changes);
    }
    ServicePlan::Skip(skip_reason(reasons, &registry, &push.repository))
}

/// The containers with their images changed; everything else as it was.
pub fn updated_containers(containers: &[ContainerDefinition], changes: &[ImageChange]) -> Vec<ContainerDefinition> {
    containers
        .iter()
        .map(|c| {
            let mut c = c.clone();
            if let Some(change) = changes.iter().find(|ch| c.name() == Some(ch.container.as_str())) {
                c.image = Some(change.to.clone());
            }
            c
        })
        .collect()
}

/// The new revision's tags: the running one's, less AWS's own, with the pushed
/// tag recorded for each updated container.
pub fn updated_tags(td_tags: &[Tag], changes: &[ImageChange], pushed_tag: &str) -> Vec<Tag> {
    let recorded: Vec<String> = changes.iter().map(|c| format!("{IMAGE_TAG_PREFIX}{}", c.container)).collect();
    let mut tags: Vec<Tag> = td_tags
        .iter()
        .filter(|t| t.key().is_some_and(|k| !k.starts_with("aws:") && !recorded.iter().any(|r| r == k)))
        .cloned()
        .collect();
    tags.extend(recorded.into_iter().map(|key| Tag::builder().key(key).value(pushed_tag).build()));
    tags
}

/// The service's deployment configuration with the circuit breaker on, with
/// rollback; every other setting as it was.
pub fn with_circuit_breaker(current: Option<&DeploymentConfiguration>) -> DeploymentConfiguration {
    let mut config = current.cloned().unwrap_or_else(|| DeploymentConfiguration::builder().build());
    config.deployment_circuit_breaker = Some(DeploymentCircuitBreaker::builder().enable(true).rollback(true).build());
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::DeploymentController;

    const ECR: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
    const NEW: &str = "sha256:bbbbbbbb";
    const OLD: &str = "sha256:aaaaaaaa";

    fn push() -> Push {
        Push {
            account: "123456789012".into(),
            region: "eu-west-1".into(),
            repository: "shop/api".into(),
            digest: NEW.into(),
            tag: Some("1.3.0".into()),
        }
    }

    fn tags(pairs: &[(&str, &str)]) -> Vec<Tag> {
        pairs.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect()
    }

    fn service(pairs: &[(&str, &str)], controller: Option<DeploymentControllerType>) -> Service {
        let mut b = Service::builder()
            .service_name("api")
            .cluster_arn("arn:aws:ecs:eu-west-1:123456789012:cluster/shop")
            .task_definition("arn:aws:ecs:eu-west-1:123456789012:task-definition/api:7")
            .set_tags(Some(tags(pairs)));
        if let Some(c) = controller {
            b = b.deployment_controller(DeploymentController::builder().r#type(c).build().unwrap());
        }
        b.build()
    }

    fn container(name: &str, image: &str) -> ContainerDefinition {
        ContainerDefinition::builder().name(name).image(image).build()
    }

    fn task_definition(containers: Vec<ContainerDefinition>) -> TaskDefinition {
        TaskDefinition::builder().family("api").revision(7).set_container_definitions(Some(containers)).build()
    }

    #[test]
    fn triage_needs_only_the_service() {
        use DeploymentControllerType::{CodeDeploy, Ecs, External};
        let table = [
            (vec![], None, Candidate::NotFollowing),
            (vec![(DEPLOY_TAG, "semver")], None, Candidate::Examine),
            (vec![(DEPLOY_TAG, "semver")], Some(Ecs), Candidate::Examine),
            (
                vec![(DEPLOY_TAG, "semver")],
                Some(CodeDeploy),
                Candidate::Skip("deployed by CodeDeploy (the CODE_DEPLOY controller)".into()),
            ),
            (
                vec![(DEPLOY_TAG, "semver")],
                Some(External),
                Candidate::Skip("deployed by an external controller (EXTERNAL)".into()),
            ),
            (vec![(DEPLOY_TAG, "glob:RC_*")], None, Candidate::Skip("glob:RC_* does not take 1.3.0".into())),
        ];
        let mut draining = service(&[(DEPLOY_TAG, "semver")], None);
        draining.status = Some("DRAINING".into());
        assert_eq!(triage(&draining, &push(), "1.3.0"), Candidate::Skip("the service is DRAINING".into()));
        for (pairs, controller, want) in table {
            assert_eq!(triage(&service(&pairs, controller), &push(), "1.3.0"), want, "{pairs:?}");
        }
        let Candidate::Skip(why) = triage(&service(&[(DEPLOY_TAG, "sometimes")], None), &push(), "1.3.0") else {
            panic!()
        };
        assert!(why.starts_with("policy not understood: \"sometimes\" is not a policy"), "{why}");
    }

    #[test]
    fn a_record_of_the_running_revision_decides_without_the_task_definition() {
        let with_record = |policy: &str, record: &str, extra: &[(&str, &str)], arn_account: &str| {
            let mut pairs = vec![(DEPLOY_TAG, policy), (crate::record::RUNNING_TAG, record)];
            pairs.extend_from_slice(extra);
            let mut s = service(&pairs, None);
            s.service_arn = Some(format!("arn:aws:ecs:eu-west-1:{arn_account}:service/shop/api"));
            s
        };
        let skip = |why: &str| Candidate::Skip(why.to_owned());
        // (policy, record, more service tags, the service's account, decision)
        type Row<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str, Candidate);
        let table: [Row; 9] = [
            ("semver", "api:7 app=shop/api:1.2.0", &[], "123456789012", Candidate::Examine),
            (
                "semver",
                "api:7 app=shop/api:1.3.0",
                &[],
                "123456789012",
                skip("app: 1.3.0 is not newer than the running 1.3.0"),
            ),
            ("patch", "api:7 app=shop/api:1.2.0", &[], "123456789012", skip("app: 1.3.0 is outside patch of 1.2.0")),
            ("track", "api:7 app=shop/api:latest", &[], "123456789012", skip("app: tracks latest, not 1.3.0")),
            (
                "semver",
                "api:7 app=shop/api-v2:1.2.0",
                &[],
                "123456789012",
                skip(&format!("no container runs {ECR}/shop/api")),
            ),
            // A stale record (another revision), a named container it lacks, another account: read the task definition.
            ("semver", "api:6 app=shop/api-v2:1.2.0", &[], "123456789012", Candidate::Examine),
            ("semver", "api:7 app=shop/api:1.3.0", &[(CONTAINERS_TAG, "sidecar")], "123456789012", Candidate::Examine),
            (
                "semver",
                "api:7 app=shop/api:1.3.0",
                &[(CONTAINERS_TAG, "app")],
                "123456789012",
                skip("app: 1.3.0 is not newer than the running 1.3.0"),
            ),
            ("semver", "api:7 app=shop/api:1.3.0", &[], "999999999999", Candidate::Examine),
        ];
        for (policy, record, extra, account, want) in table {
            assert_eq!(
                triage(&with_record(policy, record, extra, account), &push(), "1.3.0"),
                want,
                "{policy} {record} {extra:?}"
            );
        }
    }

    #[test]
    fn only_containers_of_the_pushed_repository_change() {
        let td = task_definition(vec![
            container("api", &format!("{ECR}/shop/api:1.2.0")),
            container("sidecar", &format!("{ECR}/shop/api-v2:1.2.0")),
            container("proxy", "public.ecr.aws/nginx/nginx:1.25"),
        ]);
        let plan = plan_service(&service(&[(DEPLOY_TAG, "semver")], None), &td, &[], &push(), "1.3.0");
        assert_eq!(
            plan,
            ServicePlan::Deploy(vec![ImageChange {
                container: "api".into(),
                from: format!("{ECR}/shop/api:1.2.0"),
                to: format!("{ECR}/shop/api@{NEW}"),
            }])
        );
    }

    #[test]
    fn the_recorded_tag_is_the_running_version() {
        // The image is pinned by digest; the tag it came from is on the task definition.
        let td = task_definition(vec![container("api", &format!("{ECR}/shop/api@{OLD}"))]);
        let svc = service(&[(DEPLOY_TAG, "semver")], None);
        let newer = tags(&[("nightshift:image-tag/api", "1.2.0")]);
        assert!(matches!(plan_service(&svc, &td, &newer, &push(), "1.3.0"), ServicePlan::Deploy(_)));
        let older = tags(&[("nightshift:image-tag/api", "1.4.0")]);
        assert_eq!(
            plan_service(&svc, &td, &older, &push(), "1.3.0"),
            ServicePlan::Skip("api: 1.3.0 is older than the running 1.4.0".into())
        );
    }

    #[test]
    fn the_digest_already_running_is_not_deployed_again() {
        let td = task_definition(vec![container("api", &format!("{ECR}/shop/api@{NEW}"))]);
        let plan = plan_service(
            &service(&[(DEPLOY_TAG, "semver")], None),
            &td,
            &tags(&[("nightshift:image-tag/api", "1.3.0")]),
            &push(),
            "1.3.0",
        );
        assert_eq!(plan, ServicePlan::Skip(format!("api: already runs {NEW}")));
    }

    #[test]
    fn named_containers_limit_the_change_and_must_exist() {
        let td = task_definition(vec![
            container("api", &format!("{ECR}/shop/api:1.2.0")),
            container("worker", &format!("{ECR}/shop/api:1.2.0")),
        ]);
        let only_worker = service(&[(DEPLOY_TAG, "semver"), (CONTAINERS_TAG, " worker ")], None);
        let ServicePlan::Deploy(changes) = plan_service(&only_worker, &td, &[], &push(), "1.3.0") else { panic!() };
        assert_eq!(changes.iter().map(|c| c.container.as_str()).collect::<Vec<_>>(), ["worker"]);
        let unknown = service(&[(DEPLOY_TAG, "semver"), (CONTAINERS_TAG, "api,web")], None);
        assert_eq!(
            plan_service(&unknown, &td, &[], &push(), "1.3.0"),
            ServicePlan::Skip("nightshift:containers names \"web\", which the task definition does not have".into())
        );
    }

    #[test]
    fn a_service_running_another_repository_is_skipped_with_the_reason() {
        let td = task_definition(vec![container("api", &format!("{ECR}/shop/api-v2:1.2.0"))]);
        assert_eq!(
            plan_service(&service(&[(DEPLOY_TAG, "semver")], None), &td, &[], &push(), "1.3.0"),
            ServicePlan::Skip(format!("no container runs {ECR}/shop/api"))
        );
    }

    #[test]
    fn the_new_revision_keeps_every_other_setting_and_records_the_tag() {
        let sidecar = ContainerDefinition::builder().name("proxy").image("nginx:1.25").cpu(64).essential(false).build();
        let api = ContainerDefinition::builder().name("api").image(format!("{ECR}/shop/api:1.2.0")).memory(512).build();
        let changes =
            vec![ImageChange { container: "api".into(), from: String::new(), to: format!("{ECR}/shop/api@{NEW}") }];
        let updated = updated_containers(&[api.clone(), sidecar.clone()], &changes);
        assert_eq!(updated[1], sidecar);
        assert_eq!(updated[0].memory(), Some(512));
        assert_eq!(updated[0].image(), Some(format!("{ECR}/shop/api@{NEW}").as_str()));

        let old =
            tags(&[("team", "shop"), ("aws:cloudformation:stack-name", "x"), ("nightshift:image-tag/api", "1.2.0")]);
        let new = updated_tags(&old, &changes, "1.3.0");
        assert_eq!(new, tags(&[("team", "shop"), ("nightshift:image-tag/api", "1.3.0")]));
    }

    #[test]
    fn the_circuit_breaker_is_turned_on_and_the_rest_is_kept() {
        let current = DeploymentConfiguration::builder().maximum_percent(150).minimum_healthy_percent(50).build();
        let config = with_circuit_breaker(Some(&current));
        assert_eq!((config.maximum_percent, config.minimum_healthy_percent), (Some(150), Some(50)));
        let breaker = config.deployment_circuit_breaker.unwrap();
        assert!(breaker.enable && breaker.rollback);
        assert!(with_circuit_breaker(None).deployment_circuit_breaker.is_some());
    }
}
