//! What deploy-on-push tells a service's channels (`nightshift:notify`): a
//! push it refused because the digest is quarantined, and, at
//! `NOTIFY_LEVEL=all`, each rollout it started. No AWS calls here.

use nightshift::notify::{Notice, Tone};
use nightshift::quarantine;

use crate::Deployed;
use crate::event::Push;
use crate::plan::ServiceId;

fn console(region: &str, id: &ServiceId) -> (String, String) {
    (
        "Open the service".into(),
        format!(
            "https://{region}.console.aws.amazon.com/ecs/v2/clusters/{}/services/{}?region={region}",
            id.cluster, id.service
        ),
    )
}

fn pushed(push: &Push) -> String {
    format!("{}:{} ({})", push.repository, push.tag.as_deref().unwrap_or("untagged"), push.digest)
}

/// A push not deployed to a service because its digest is quarantined there.
pub fn refused(id: &ServiceId, push: &Push, identity: Option<&nightshift::identity::Identity>) -> Notice {
    let short = quarantine::short(&push.digest);
    Notice {
        tone: Tone::Info,
        title: format!("Push refused: {}/{}", id.cluster, id.service),
        summary: format!(
            "{short} was rolled back from {}/{} before, so deploy-on-push did not deploy it again.",
            id.cluster, id.service
        ),
        facts: vec![
            ("Where".into(), format!("service {} in cluster {}", id.service, id.cluster)),
            ("Image".into(), pushed(push)),
            ("Why".into(), format!("{short} is quarantined on the service, in the state table")),
            (
                "To release it".into(),
                format!(
                    "delete the item quarantine#{} of the service from the state table (README: The state table)",
                    push.digest
                ),
            ),
        ]
        .into_iter()
        .chain(identity.map(|i| i.facts()).unwrap_or_default())
        .collect(),
        link: Some(console(&push.region, id)),
    }
}

/// A rollout deploy-on-push started: old and new image of each container.
pub fn started(deployed: &Deployed, push: &Push) -> Notice {
    let id = &deployed.id;
    let how = match &deployed.codedeploy {
        Some(c) => format!(
            "CodeDeploy deployment {} ({}, group {}/{})",
            c.deployment_id.as_deref().unwrap_or("not created"),
            c.deployment_config,
            c.application,
            c.deployment_group
        ),
        None => "ECS rolling update, with the circuit breaker's rollback".into(),
    };
    let mut facts = vec![("Where".into(), format!("service {} in cluster {}", id.service, id.cluster))];
    for change in &deployed.images {
        facts.push((format!("Image of {}", change.container), format!("{} → {}", change.from, change.to)));
    }
    facts.push(("Pushed".into(), pushed(push)));
    facts.extend(deployed.identity.facts());
    facts.push(("How".into(), how));
    let revision = |arn: &str| nightshift::ecs::revision_of(arn).to_owned();
    Notice {
        tone: Tone::Info,
        title: format!("Rollout started: {}/{}", id.cluster, id.service),
        summary: format!(
            "{}/{} goes from {} to {}.",
            id.cluster,
            id.service,
            revision(&deployed.old_task_definition),
            deployed.new_task_definition.as_deref().map_or_else(|| "a new revision".to_owned(), revision)
        ),
        facts,
        link: Some(console(&push.region, id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::ImageChange;

    fn push() -> Push {
        Push {
            account: "123456789012".into(),
            region: "eu-west-1".into(),
            repository: "shop/api".into(),
            digest: "sha256:7f5b0c0e0d7a6a4bd2c1e5f3a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0".into(),
            tag: Some("1.3.1".into()),
        }
    }

    #[test]
    fn a_refused_push_says_which_digest_where_and_how_to_release_it() {
        let id = ServiceId { cluster: "shop".into(), service: "api".into() };
        let notice = refused(&id, &push(), None);
        assert_eq!(notice.title, "Push refused: shop/api");
        assert_eq!(
            notice.summary,
            "sha256:7f5b0c0e0d7a6a4b was rolled back from shop/api before, so deploy-on-push did not deploy it again."
        );
        assert_eq!(
            notice.facts[3],
            (
                "To release it".into(),
                "delete the item quarantine#sha256:7f5b0c0e0d7a6a4bd2c1e5f3a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0 \
                 of the service from the state table (README: The state table)"
                    .into()
            )
        );
        assert_eq!(
            notice.link.unwrap().1,
            "https://eu-west-1.console.aws.amazon.com/ecs/v2/clusters/shop/services/api?region=eu-west-1"
        );
    }

    #[test]
    fn a_started_rollout_shows_old_and_new_image() {
        let deployed = Deployed {
            id: ServiceId { cluster: "shop".into(), service: "api".into() },
            controller: crate::Controller::Ecs,
            old_task_definition: "arn:aws:ecs:eu-west-1:123456789012:task-definition/api:7".into(),
            new_task_definition: Some("arn:aws:ecs:eu-west-1:123456789012:task-definition/api:8".into()),
            images: vec![ImageChange {
                container: "app".into(),
                from: "r/shop/api:1.3.0".into(),
                to: "r/shop/api@sha256:7f5b".into(),
            }],
            codedeploy: None,
            identity: nightshift::identity::Identity {
                pr: Some("42".into()),
                commit: Some("1a2b3c4d5e6f7a8b".into()),
                ..Default::default()
            },
            woke: None,
        };
        let notice = started(&deployed, &push());
        assert_eq!(
            (notice.title.as_str(), notice.summary.as_str()),
            ("Rollout started: shop/api", "shop/api goes from api:7 to api:8.")
        );
        assert_eq!(notice.facts[1], ("Image of app".into(), "r/shop/api:1.3.0 → r/shop/api@sha256:7f5b".into()));
        assert_eq!(notice.facts[3], ("Merge".into(), "PR #42, commit 1a2b3c4d5e6f".into()));
        assert_eq!(notice.facts[4], ("How".into(), "ECS rolling update, with the circuit breaker's rollback".into()));
    }
}
