//! The decisions: which services follow the push, which containers change,
//! whether the push is still the newest image for them, and the new
//! task-definition revision. No AWS calls here.

use std::collections::HashMap;

use aws_sdk_ecs::types::{DeploymentControllerType, Service, Tag, TaskDefinition};
use chrono::{DateTime, Utc};
use nightshift::ecs::{PROMOTE_FROM_TAG, tag_value};
use nightshift::quarantine::{self, QUARANTINE_TAG};
use nightshift::state::{DigestSeen, Hold, hold_in_force};

use crate::event::Push;
use crate::policy::{DeployPolicy, Running, ServicePolicy, Verdict, decide};
use crate::record::{RunningRecord, container_label, running_tag, service_registry};
use nightshift::image::{ImageRef, ecr_registry};

pub use nightshift::ecs::DEPLOY_TAG;
/// The service tag naming the containers to update (separated by spaces).
pub const CONTAINERS_TAG: &str = "nightshift:containers";

pub use nightshift::rollout::{ImageChange, ServiceId};

/// What to do with a described service before its task definition is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidate {
    /// Not tagged `nightshift:deploy`: not ours, not reported.
    NotFollowing,
    Skip(String),
    /// Its task definition must be read to decide.
    Examine,
}

/// The service's policy from its `nightshift:deploy` tag.
fn service_policy(service: &Service) -> Option<Result<ServicePolicy, String>> {
    tag_value(service.tags(), DEPLOY_TAG)
        .map(|v| ServicePolicy::parse(v).map_err(|why| format!("policy not understood: {why}")))
}

/// One container's policy: its docker label's, else the service's. `Ok(None)`:
/// the container does not follow (the service says `label` and it has none).
fn container_policy(service: &ServicePolicy, label: Option<&str>) -> Result<Option<DeployPolicy>, String> {
    match (label, service) {
        (Some(label), _) => DeployPolicy::parse(label)
            .map(Some)
            .map_err(|why| format!("docker label nightshift.deploy not understood: {why}")),
        (None, ServicePolicy::All(policy)) => Ok(Some(policy.clone())),
        (None, ServicePolicy::Label) => Ok(None),
    }
}

/// Why a push is not this function's to deploy, or `None`: it must come from
/// this function's own account (`own`: account and region, from its ARN; empty
/// when unknown) or one listed in `REGISTRY_ACCOUNT_IDS`, and from its region
/// (ECR forwards no push across regions).
pub fn foreign_push(push: &Push, own: (&str, &str), registries: &[String]) -> Option<String> {
    let (own_account, own_region) = own;
    if !own_region.is_empty() && push.region != own_region {
        return Some(format!(
            "the push is in {}; this function deploys in {own_region}, and only pushes to its own region's registries",
            push.region
        ));
    }
    if own_account.is_empty() || push.account == own_account || registries.contains(&push.account) {
        return None;
    }
    let listed = if registries.is_empty() { "empty".to_owned() } else { registries.join(",") };
    Some(format!(
        "the push came from account {}, which is neither this account ({own_account}) nor listed in REGISTRY_ACCOUNT_IDS ({listed}): nothing deployed",
        push.account
    ))
}

/// Whether a service follows pushes at all (before anything is read for it):
/// tagged `nightshift:deploy`, and not promoted from another service.
pub fn follows_pushes(service: &Service) -> bool {
    tag_value(service.tags(), PROMOTE_FROM_TAG).is_none() && tag_value(service.tags(), DEPLOY_TAG).is_some()
}

/// Decides from the service alone: its tag, its controller, whether the
/// pushed digest is quarantined on it (`quarantined`, from the state table),
/// and, when the service carries a record of the revision it runs
/// (`nightshift:running`), what its containers run and which policy each follows.
pub fn triage(service: &Service, push: &Push, tag: &str, quarantined: bool) -> Candidate {
    // A service promoted from another follows that one's rollouts (watch-rollouts), not pushes.
    if tag_value(service.tags(), PROMOTE_FROM_TAG).is_some() {
        return Candidate::NotFollowing;
    }
    let policy = match service_policy(service) {
        None => return Candidate::NotFollowing,
        Some(Err(why)) => return Candidate::Skip(why),
        Some(Ok(policy)) => policy,
    };
    // A blue/green service (CODE_DEPLOY) is decided as any other and deployed through CodeDeploy.
    if service.deployment_controller().map(|c| c.r#type()) == Some(&DeploymentControllerType::External) {
        return Candidate::Skip("deployed by an external controller (EXTERNAL)".into());
    }
    if let Some(status) = service.status()
        && status != "ACTIVE"
    {
        return Candidate::Skip(format!("the service is {status}"));
    }
    if service.task_definition().is_none() {
        return Candidate::Skip("the service names no task definition".into());
    }
    if quarantined {
        return Candidate::Skip(format!(
            "{} is quarantined on this service: a rollout of it failed or was rolled back",
            quarantine::short(&push.digest)
        ));
    }
    let registry = ecr_registry(&push.account, &push.region);
    match RunningRecord::current(service) {
        Some(record) if service_registry(service).as_deref() == Some(registry.as_str()) => {
            triage_by_record(service, &record, &policy, push, tag, &registry)
        }
        // Without a record the containers' labels are unknown: any of them could take the push.
        _ => Candidate::Examine,
    }
}

/// A service that follows the push is skipped while held (its own hold, or
/// the one on every service, not ended at `now`): no automatic rollout then.
pub fn unless_held(candidate: Candidate, holds: &[Hold], now: DateTime<Utc>) -> Candidate {
    match (candidate, hold_in_force(holds, now)) {
        (Candidate::NotFollowing, _) => Candidate::NotFollowing,
        (_, Some(hold)) => Candidate::Skip(hold.why()),
        (candidate, None) => candidate,
    }
}

/// Whether the pushed digest is quarantined on the service: held in the state
/// table, or, until the service's records are carried over, in the tag
/// `nightshift:quarantine` an older release kept.
pub fn is_quarantined(service: &Service, push: &Push, seen: &DigestSeen) -> bool {
    seen.quarantined
        || (!seen.carried
            && tag_value(service.tags(), QUARANTINE_TAG).is_some_and(|held| quarantine::holds(held, &push.digest)))
}

/// The decision of [`plan_service`], from the record: a container that could
/// take the push is examined (its digest is only in the task definition).
fn triage_by_record(
    service: &Service,
    record: &RunningRecord,
    policy: &ServicePolicy,
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
        let container = match container_policy(policy, recorded.policy.as_deref()) {
            Ok(Some(container)) => container,
            Ok(None) => continue,
            Err(why) => {
                reasons.push(format!("{}: {why}", recorded.container));
                continue;
            }
        };
        let running = Running { tag: recorded.tag.clone(), digest: None };
        match decide(&container, tag, &push.digest, &running) {
            Verdict::Deploy => return Candidate::Examine,
            Verdict::Skip(why) => reasons.push(format!("{}: {why}", recorded.container)),
        }
    }
    Candidate::Skip(skip_reason(reasons, policy, registry, &push.repository))
}

/// The containers `nightshift:containers` names (separated by spaces), when it is set.
fn named_containers(service: &Service) -> Option<Vec<&str>> {
    tag_value(service.tags(), CONTAINERS_TAG).map(|v| v.split_whitespace().collect())
}

/// Why no container of a service takes the push.
fn skip_reason(reasons: Vec<String>, policy: &ServicePolicy, registry: &str, repository: &str) -> String {
    match (reasons.is_empty(), policy) {
        (false, _) => reasons.join("; "),
        (true, ServicePolicy::Label) => {
            format!("no container of {registry}/{repository} carries the docker label nightshift.deploy")
        }
        (true, ServicePolicy::All(_)) => format!("no container runs {registry}/{repository}"),
    }
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
    let policy = match service_policy(service) {
        Some(Ok(policy)) => policy,
        Some(Err(why)) => return ServicePlan::Skip(why),
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
        let own = match container_policy(&policy, container_label(container)) {
            Ok(Some(own)) => own,
            Ok(None) => continue,
            Err(why) => {
                reasons.push(format!("{name}: {why}"));
                continue;
            }
        };
        let running = Running { tag: running_tag(td_tags, name, &image_ref), digest: image_ref.digest.clone() };
        match decide(&own, tag, &push.digest, &running) {
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
    ServicePlan::Skip(skip_reason(reasons, &policy, &registry, &push.repository))
}

/// An image of the pushed repository as ECR describes it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrImage {
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_at: DateTime<Utc>,
}

/// How a container's image is found in ECR: by its digest, else by its tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ImageId {
    Digest(String),
    Tag(String),
}

impl ImageId {
    /// The image a container reference names; a reference with neither tag nor digest means `latest`.
    pub fn of_reference(reference: &str) -> Option<Self> {
        let image = reference.parse::<ImageRef>().ok()?;
        Some(match (image.digest, image.tag) {
            (Some(digest), _) => Self::Digest(digest),
            (None, Some(tag)) => Self::Tag(tag),
            (None, None) => Self::Tag("latest".into()),
        })
    }
}

/// What ECR holds now of the images a push's changes concern; `None` for an
/// image ECR does not have (any more).
pub type EcrImages = HashMap<ImageId, Option<EcrImage>>;

/// The ECR images to look at for these changes: the pushed digest, and what each container runs.
pub fn images_to_check(push: &Push, changes: &[&ImageChange]) -> Vec<ImageId> {
    let mut ids = vec![ImageId::Digest(push.digest.clone())];
    for id in changes.iter().filter_map(|c| ImageId::of_reference(&c.from)) {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// Never backwards, whatever order the events come in: the pushed image must
/// still be in ECR and still carry the pushed tag, and what a container runs
/// must not have been pushed after it. `Err` says why not.
pub fn still_newest(push: &Push, tag: &str, change: &ImageChange, images: &EcrImages) -> Result<(), String> {
    let Some(Some(pushed)) = images.get(&ImageId::Digest(push.digest.clone())) else {
        return Err(format!("{} no longer exists in ECR", push.digest));
    };
    if !pushed.tags.iter().any(|t| t == tag) {
        return Err(format!("{tag} no longer names this image in ECR: a later push moved it"));
    }
    let running = ImageId::of_reference(&change.from).and_then(|id| images.get(&id).cloned().flatten());
    match running {
        Some(running) if running.pushed_at > pushed.pushed_at => Err(format!(
            "the running image was pushed at {}, after this push ({})",
            running.pushed_at.to_rfc3339(),
            pushed.pushed_at.to_rfc3339()
        )),
        _ => Ok(()),
    }
}

/// The changes of a plan that keep every container moving forward; the
/// others become reasons.
pub fn keep_forward(plan: ServicePlan, push: &Push, tag: &str, images: &EcrImages) -> ServicePlan {
    let ServicePlan::Deploy(changes) = plan else {
        return plan;
    };
    let mut reasons = Vec::new();
    let kept: Vec<ImageChange> = changes
        .into_iter()
        .filter(|change| match still_newest(push, tag, change, images) {
            Ok(()) => true,
            Err(why) => {
                reasons.push(format!("{}: {why}", change.container));
                false
            }
        })
        .collect();
    if kept.is_empty() { ServicePlan::Skip(reasons.join("; ")) } else { ServicePlan::Deploy(kept) }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_held_service_takes_no_push_until_its_hold_ends_or_is_released() {
        use chrono::TimeZone;
        let now = Utc.with_ymd_and_hms(2026, 12, 5, 22, 0, 0).unwrap();
        let hold = |service: &str, until: Option<&str>| Hold {
            service: service.into(),
            reason: "incident 42".into(),
            by: "arn:aws:sts::123456789012:assumed-role/oncall/ana".into(),
            since: "2026-12-05T21:00:00Z".into(),
            until: until.map(str::to_owned),
        };
        let arn = "arn:aws:ecs:eu-west-1:123456789012:service/shop/api";
        let table: [(Candidate, Vec<Hold>, Candidate); 6] = [
            (Candidate::Examine, vec![], Candidate::Examine),
            (
                Candidate::Examine,
                vec![hold(arn, None)],
                Candidate::Skip(
                    "the service is held until released by arn:aws:sts::123456789012:assumed-role/oncall/ana: incident 42"
                        .into(),
                ),
            ),
            (
                Candidate::Examine,
                vec![hold("all", Some("2026-12-05T23:00:00Z"))],
                Candidate::Skip(
                    "every service is held until 2026-12-05T23:00:00Z by arn:aws:sts::123456789012:assumed-role/oncall/ana: incident 42"
                        .into(),
                ),
            ),
            // Ended: the next push goes through, whatever the table has not expired yet.
            (Candidate::Examine, vec![hold(arn, Some("2026-12-05T21:59:59Z"))], Candidate::Examine),
            (Candidate::NotFollowing, vec![hold("all", None)], Candidate::NotFollowing),
            (Candidate::Skip("x".into()), vec![hold(arn, Some("2026-12-05T22:00:01Z"))], {
                Candidate::Skip(
                    "the service is held until 2026-12-05T22:00:01Z by arn:aws:sts::123456789012:assumed-role/oncall/ana: incident 42"
                        .into(),
                )
            }),
        ];
        for (candidate, holds, expected) in table {
            assert_eq!(unless_held(candidate, &holds, now), expected, "{holds:?}");
        }
    }

    #[test]
    fn a_push_is_taken_from_this_account_or_a_listed_registry_and_from_this_region_only() {
        let push = |account: &str, region: &str| Push {
            account: account.into(),
            region: region.into(),
            repository: "shop/api".into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            tag: Some("1.0.0".into()),
        };
        let listed = vec!["210987654321".to_owned()];
        let own = ("123456789012", "eu-west-1");
        let table: [(Push, &[String], Option<&str>); 6] = [
            (push("123456789012", "eu-west-1"), &[], None),
            (push("210987654321", "eu-west-1"), &listed, None),
            (
                push("210987654321", "eu-west-1"),
                &[],
                Some(
                    "account 210987654321, which is neither this account (123456789012) nor listed in REGISTRY_ACCOUNT_IDS (empty)",
                ),
            ),
            (push("333333333333", "eu-west-1"), &listed, Some("nor listed in REGISTRY_ACCOUNT_IDS (210987654321)")),
            (
                push("210987654321", "us-east-1"),
                &listed,
                Some("the push is in us-east-1; this function deploys in eu-west-1"),
            ),
            (push("123456789012", "eu-west-1"), &listed, None),
        ];
        for (push, registries, why) in table {
            let found = foreign_push(&push, own, registries);
            match why {
                None => assert_eq!(found, None, "{push:?}"),
                Some(why) => assert!(found.as_deref().is_some_and(|f| f.contains(why)), "{found:?}"),
            }
        }
        assert_eq!(
            foreign_push(&push("333333333333", "eu-west-1"), ("", ""), &[]),
            None,
            "own place unknown: not checked"
        );
    }
    use super::*;
    use aws_sdk_ecs::types::ContainerDefinition;
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
        let held = format!("sha256:0000000000000000 {}", quarantine::short(NEW));
        let table = [
            (vec![], None, Candidate::NotFollowing),
            (vec![(DEPLOY_TAG, "semver")], None, Candidate::Examine),
            (vec![(DEPLOY_TAG, "semver")], Some(Ecs), Candidate::Examine),
            // Blue/green: decided as any other, deployed through CodeDeploy.
            (vec![(DEPLOY_TAG, "semver")], Some(CodeDeploy), Candidate::Examine),
            (
                vec![(DEPLOY_TAG, "semver")],
                Some(External),
                Candidate::Skip("deployed by an external controller (EXTERNAL)".into()),
            ),
            // Without a record, a container's docker label could take any tag: read the task definition.
            (vec![(DEPLOY_TAG, "label")], None, Candidate::Examine),
            // A digest rolled back from this service never comes back, whatever its tag.
            (
                vec![(DEPLOY_TAG, "semver"), (QUARANTINE_TAG, held.as_str())],
                None,
                Candidate::Skip(format!(
                    "{} is quarantined on this service: a rollout of it failed or was rolled back",
                    quarantine::short(NEW)
                )),
            ),
            (vec![(DEPLOY_TAG, "semver"), (QUARANTINE_TAG, "sha256:0000000000000000")], None, Candidate::Examine),
            // Promoted from another service: it follows that one's rollouts, not pushes.
            (vec![(DEPLOY_TAG, "semver"), (PROMOTE_FROM_TAG, "staging/shop")], None, Candidate::NotFollowing),
        ];
        let mut draining = service(&[(DEPLOY_TAG, "semver")], None);
        draining.status = Some("DRAINING".into());
        assert_eq!(triage(&draining, &push(), "1.3.0", false), Candidate::Skip("the service is DRAINING".into()));
        for (pairs, controller, want) in table {
            // Nothing held in the table: an older release's tag still counts, until carried over.
            let s = service(&pairs, controller);
            let quarantined = is_quarantined(&s, &push(), &DigestSeen::default());
            assert_eq!(triage(&s, &push(), "1.3.0", quarantined), want, "{pairs:?}");
        }
        let Candidate::Skip(why) = triage(&service(&[(DEPLOY_TAG, "sometimes")], None), &push(), "1.3.0", false) else {
            panic!()
        };
        assert!(why.starts_with("policy not understood: \"sometimes\" is not a policy"), "{why}");
        let Candidate::Skip(why) = triage(&service(&[(DEPLOY_TAG, "glob:RC_")], None), &push(), "1.3.0", false) else {
            panic!()
        };
        assert!(why.contains("docker label nightshift.deploy"), "{why}");
    }

    #[test]
    fn the_quarantine_is_the_tables_and_an_older_releases_tag_counts_until_carried_over() {
        let tagged = service(&[(DEPLOY_TAG, "semver"), (QUARANTINE_TAG, &quarantine::short(NEW))], None);
        let plain = service(&[(DEPLOY_TAG, "semver")], None);
        let seen = |quarantined, carried| DigestSeen { quarantined, carried, asleep: None, holds: vec![] };
        assert!(is_quarantined(&plain, &push(), &seen(true, false)));
        assert!(is_quarantined(&plain, &push(), &seen(true, true)));
        assert!(!is_quarantined(&plain, &push(), &seen(false, false)));
        assert!(is_quarantined(&tagged, &push(), &seen(false, false)), "not carried over yet: the tag is read");
        assert!(!is_quarantined(&tagged, &push(), &seen(false, true)), "carried over (and released since): not read");
        assert!(follows_pushes(&plain));
        assert!(!follows_pushes(&service(&[(DEPLOY_TAG, "semver"), (PROMOTE_FROM_TAG, "staging/shop")], None)));
        assert!(!follows_pushes(&service(&[], None)));
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
        let table: [Row; 13] = [
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
            // A container's own policy from its docker label, as the record keeps it
            (
                "semver",
                "api:7 app=shop/api:1.2.0=patch",
                &[],
                "123456789012",
                skip("app: 1.3.0 is outside patch of 1.2.0"),
            ),
            (
                "label",
                "api:7 app=shop/api:1.2.0",
                &[],
                "123456789012",
                skip(&format!("no container of {ECR}/shop/api carries the docker label nightshift.deploy")),
            ),
            ("label", "api:7 app=shop/api:1.2.0=minor", &[], "123456789012", Candidate::Examine),
            // A glob label, escaped in the record
            (
                "label",
                "api:7 app=shop/api:RC_1.2.0=glob:RC_@2A",
                &[],
                "123456789012",
                skip("app: 1.3.0 does not match glob:RC_*"),
            ),
        ];
        for (policy, record, extra, account, want) in table {
            assert_eq!(
                triage(&with_record(policy, record, extra, account), &push(), "1.3.0", false),
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
        let two = service(&[(DEPLOY_TAG, "semver"), (CONTAINERS_TAG, "api worker")], None);
        let ServicePlan::Deploy(changes) = plan_service(&two, &td, &[], &push(), "1.3.0") else { panic!() };
        assert_eq!(changes.len(), 2);
        let unknown = service(&[(DEPLOY_TAG, "semver"), (CONTAINERS_TAG, "api web")], None);
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

    fn labelled(name: &str, image: &str, label: &str) -> ContainerDefinition {
        ContainerDefinition::builder().name(name).image(image).docker_labels("nightshift.deploy", label).build()
    }

    #[test]
    fn a_docker_label_is_its_containers_policy() {
        let rc = |t: &str| format!("{ECR}/shop/api:{t}");
        let push_rc = Push { tag: Some("RC_1.5.0".into()), ..push() };
        // (service policy, containers, deployed containers, or the reason)
        let td = task_definition(vec![
            labelled("rc", &rc("RC_1.4.0"), "glob:RC_*"),
            labelled("nightly", &rc("nightly-1"), "regex:nightly-[0-9]+"),
            container("plain", &rc("1.2.0")),
        ]);
        let deployed = |policy: &str, tag: &str, p: &Push| match plan_service(
            &service(&[(DEPLOY_TAG, policy)], None),
            &td,
            &[],
            p,
            tag,
        ) {
            ServicePlan::Deploy(changes) => changes.into_iter().map(|c| c.container).collect::<Vec<_>>().join(" "),
            ServicePlan::Skip(why) => format!("skip: {why}"),
        };
        assert_eq!(deployed("label", "RC_1.5.0", &push_rc), "rc");
        assert_eq!(deployed("semver", "RC_1.5.0", &push_rc), "rc", "plain takes semver, and RC_ is another prefix");
        let push_nightly = Push { tag: Some("nightly-2".into()), ..push() };
        assert_eq!(deployed("label", "nightly-2", &push_nightly), "nightly");
        assert_eq!(
            deployed("label", "1.3.0", &push()),
            "skip: rc: 1.3.0 does not match glob:RC_*; nightly: 1.3.0 does not match regex:nightly-[0-9]+"
        );
        assert_eq!(deployed("semver", "1.3.0", &push()).split(' ').next(), Some("plain"));
        let broken = task_definition(vec![labelled("rc", &rc("RC_1.4.0"), "glob:")]);
        let ServicePlan::Skip(why) =
            plan_service(&service(&[(DEPLOY_TAG, "label")], None), &broken, &[], &push_rc, "RC_1.5.0")
        else {
            panic!()
        };
        assert_eq!(why, "rc: docker label nightshift.deploy not understood: glob: needs a pattern");
    }

    fn ecr_image(digest: &str, tags: &[&str], at: i64) -> Option<EcrImage> {
        Some(EcrImage {
            digest: digest.into(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            pushed_at: DateTime::<Utc>::from_timestamp(at, 0).unwrap(),
        })
    }

    #[test]
    fn a_push_never_moves_a_container_backwards() {
        let change = |from: &str| ImageChange { container: "app".into(), from: from.into(), to: String::new() };
        let by_digest = format!("{ECR}/shop/api@{OLD}");
        let by_tag = format!("{ECR}/shop/api:latest");
        let pushed = ImageId::Digest(NEW.into());
        // (pushed image in ECR, what the container runs, its image in ECR, verdict)
        type Row = (Option<EcrImage>, String, ImageId, Option<EcrImage>, Result<(), &'static str>);
        let table: Vec<Row> = vec![
            (
                ecr_image(NEW, &["1.3.0"], 200),
                by_digest.clone(),
                ImageId::Digest(OLD.into()),
                ecr_image(OLD, &["1.2.0"], 100),
                Ok(()),
            ),
            (
                ecr_image(NEW, &["1.3.0"], 100),
                by_digest.clone(),
                ImageId::Digest(OLD.into()),
                ecr_image(OLD, &["1.2.0"], 200),
                Err(
                    "app: the running image was pushed at 1970-01-01T00:03:20+00:00, after this push (1970-01-01T00:01:40+00:00)",
                ),
            ),
            (
                None,
                by_digest.clone(),
                ImageId::Digest(OLD.into()),
                ecr_image(OLD, &[], 100),
                Err("app: sha256:bbbbbbbb no longer exists in ECR"),
            ),
            (
                ecr_image(NEW, &[], 200),
                by_tag.clone(),
                ImageId::Tag("latest".into()),
                ecr_image(OLD, &["latest"], 300),
                Err("app: 1.3.0 no longer names this image in ECR: a later push moved it"),
            ),
            // The running image is gone from ECR: nothing says it is newer
            (ecr_image(NEW, &["1.3.0"], 200), by_digest.clone(), ImageId::Digest(OLD.into()), None, Ok(())),
            // Running by tag, and the tag names the pushed image now: it was pushed no later
            (
                ecr_image(NEW, &["1.3.0", "latest"], 200),
                by_tag.clone(),
                ImageId::Tag("latest".into()),
                ecr_image(NEW, &["1.3.0", "latest"], 200),
                Ok(()),
            ),
        ];
        for (pushed_image, from, running_id, running_image, want) in table {
            let images: EcrImages = [(pushed.clone(), pushed_image), (running_id, running_image)].into_iter().collect();
            let plan = keep_forward(ServicePlan::Deploy(vec![change(&from)]), &push(), "1.3.0", &images);
            let got = match &plan {
                ServicePlan::Deploy(_) => Ok(()),
                ServicePlan::Skip(why) => Err(why.as_str()),
            };
            assert_eq!(got, want, "{from}");
        }
        assert_eq!(
            images_to_check(&push(), &[&change(&by_digest), &change(&by_tag), &change(&by_digest)]),
            [pushed, ImageId::Digest(OLD.into()), ImageId::Tag("latest".into())]
        );
        assert_eq!(ImageId::of_reference(&format!("{ECR}/shop/api")), Some(ImageId::Tag("latest".into())));
    }
}
