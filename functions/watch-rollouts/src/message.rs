//! What is told about a rollout: the images it deployed and the notice. No AWS calls here.

use aws_sdk_ecs::types::{ContainerDefinition, Tag};
use nightshift::ecs::deployed_image_tag;
use nightshift::identity::Identity;
use nightshift::image::ImageRef;
use nightshift::notify::{Notice, Tone};
use serde::Serialize;

use nightshift::rollout::{Deployed, ServiceId};

use crate::outcome::Outcome;

/// One container's image in the revision rolled out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Image {
    pub container: String,
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// Each container's image: its digest when pinned by one, its tag from the
/// revision's `nightshift:image-tag/<container>` (else the reference's own).
pub fn images(containers: &[ContainerDefinition], td_tags: &[Tag]) -> Vec<Image> {
    containers
        .iter()
        .filter_map(|c| {
            let (name, image) = (c.name()?, c.image()?);
            // An image reference that cannot be parsed is still told, as it is written.
            let parsed = image.parse::<ImageRef>().ok();
            let digest = parsed.as_ref().and_then(|i| i.digest.clone());
            let own_tag = parsed.and_then(|i| i.tag);
            let tag = deployed_image_tag(td_tags, name).map(str::to_owned).or(own_tag);
            Some(Image { container: name.to_owned(), image: image.to_owned(), tag, digest })
        })
        .collect()
}

/// Everything a rollout notice says.
pub struct Told<'a> {
    pub outcome: Outcome,
    pub cluster: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub task_definition: Option<&'a str>,
    pub previous: Option<&'a str>,
    pub images: &'a [Image],
    pub why: &'a str,
    pub took_seconds: Option<i64>,
    pub quarantined: &'a [String],
    /// The merge the revision is.
    pub identity: &'a Identity,
}

/// `api:8` of a task definition ARN.
fn revision(arn: &str) -> &str {
    nightshift::ecs::revision_of(arn)
}

fn duration(seconds: i64) -> String {
    match (seconds / 60, seconds % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    }
}

/// The notice: what happened, where, which image, why, how long, and a link to the service.
pub fn notice(told: &Told) -> Notice {
    let at = format!("{}/{}", told.cluster, told.service);
    let new = told.task_definition.map(revision).unwrap_or("a new revision");
    let old = told.previous.map(revision);
    let (tone, summary) = match told.outcome {
        Outcome::Succeeded => (Tone::Success, format!("{at} runs {new} now.")),
        Outcome::Failed => {
            (Tone::Failure, format!("The rollout of {new} to {at} failed, and ECS did not roll it back."))
        }
        Outcome::RolledBack => (
            Tone::Failure,
            match old {
                Some(old) => format!("The rollout of {new} to {at} failed; ECS rolled the service back to {old}."),
                None => format!("The rollout of {new} to {at} failed; ECS rolled the service back."),
            },
        ),
        Outcome::RollbackFailed => {
            (Tone::Failure, format!("ECS could not roll {at} back to {new}: the service needs someone now."))
        }
    };
    let mut facts = vec![("Where".to_owned(), format!("service {} in cluster {}", told.service, told.cluster))];
    for image in told.images.iter().filter(|i| i.tag.is_some() || i.digest.is_some()) {
        let what = match (&image.tag, &image.digest) {
            (Some(tag), Some(digest)) => format!("{tag} ({digest})"),
            (Some(tag), None) => tag.clone(),
            (None, Some(digest)) => digest.clone(),
            (None, None) => image.image.clone(),
        };
        facts.push((format!("Image of {}", image.container), what));
    }
    facts.extend(told.identity.facts());
    if let Some(old) = old {
        facts.push(("Previous revision".into(), old.to_owned()));
    }
    facts.push(("Why".into(), told.why.to_owned()));
    if let Some(seconds) = told.took_seconds {
        facts.push(("Took".into(), duration(seconds)));
    }
    if !told.quarantined.is_empty() {
        facts.push((
            "Quarantined".into(),
            format!(
                "{} (never deployed to this service again: quarantined in the state table)",
                told.quarantined.join(" ")
            ),
        ));
    }
    let region = told.region;
    Notice {
        tone,
        title: format!("Rollout {}: {at}", told.outcome.words()),
        summary,
        facts,
        link: Some((
            "Open the service".into(),
            format!(
                "https://{region}.console.aws.amazon.com/ecs/v2/clusters/{}/services/{}/deployments?region={region}",
                told.cluster, told.service
            ),
        )),
    }
}

/// The console page of a service's deployments.
fn service_link(region: &str, id: &ServiceId) -> Option<(String, String)> {
    Some((
        "Open the service".into(),
        format!(
            "https://{region}.console.aws.amazon.com/ecs/v2/clusters/{}/services/{}/deployments?region={region}",
            id.cluster, id.service
        ),
    ))
}

/// A promotion that did not move: why, and how to promote by hand.
pub fn promotion_refused(id: &ServiceId, from: &str, why: &str, region: &str) -> Notice {
    Notice {
        tone: Tone::Failure,
        title: format!("Promotion held: {id}"),
        summary: format!("Nothing was promoted from {from} to {id}."),
        facts: vec![
            ("Where".into(), format!("service {} in cluster {}", id.service, id.cluster)),
            ("From".into(), from.to_string()),
            ("Why".into(), why.to_owned()),
            (
                "By hand".into(),
                format!("invoke watch-rollouts with {{\"promote\": \"{id}\"}} once {from} runs what should move on"),
            ),
        ],
        link: service_link(region, id),
    }
}

/// A promotion started (told at `NOTIFY_LEVEL=all`).
pub fn promotion_started(deployed: &Deployed, from: &str, region: &str) -> Notice {
    let id = &deployed.id;
    let mut facts = vec![
        ("Where".into(), format!("service {} in cluster {}", id.service, id.cluster)),
        ("From".into(), from.to_owned()),
    ];
    for change in &deployed.images {
        facts.push((format!("Image of {}", change.container), change.to.clone()));
    }
    facts.extend(deployed.identity.facts());
    let new = deployed.new_task_definition.as_deref().map(revision).unwrap_or("a new revision");
    Notice {
        tone: Tone::Info,
        title: format!("Promotion started: {id}"),
        summary: format!("{id} is rolling out {new}, with what {from} ran without a failure."),
        facts,
        link: service_link(region, id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nightshift::notify::{slack_message, teams_message};
    use serde_json::json;

    const DIGEST: &str = "sha256:7f5b0c0e0d7a6a4bd2c1e5f3a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0";

    fn rolled_back() -> Notice {
        let images = images(
            &[
                ContainerDefinition::builder()
                    .name("app")
                    .image(format!("123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/api@{DIGEST}"))
                    .build(),
                ContainerDefinition::builder().name("proxy").image("public.ecr.aws/nginx/nginx:1.25").build(),
            ],
            &[Tag::builder().key("nightshift:image-tag/app").value("1.3.0").build()],
        );
        notice(&Told {
            outcome: Outcome::RolledBack,
            cluster: "shop",
            service: "api",
            region: "eu-west-1",
            task_definition: Some("arn:aws:ecs:eu-west-1:123456789012:task-definition/api:8"),
            previous: Some("arn:aws:ecs:eu-west-1:123456789012:task-definition/api:7"),
            images: &images,
            why: "ECS deployment circuit breaker: tasks failed to start.",
            took_seconds: Some(372),
            quarantined: &["sha256:7f5b0c0e0d7a6a4b".to_owned()],
            identity: &Identity::default(),
        })
    }

    #[test]
    fn a_rollback_is_told_with_where_which_image_why_and_how_long() {
        let n = rolled_back();
        assert_eq!(n.title, "Rollout rolled back: shop/api");
        assert_eq!(n.summary, "The rollout of api:8 to shop/api failed; ECS rolled the service back to api:7.");
        let facts: Vec<(&str, &str)> = n.facts.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            facts,
            [
                ("Where", "service api in cluster shop"),
                ("Image of app", format!("1.3.0 ({DIGEST})").as_str()),
                ("Image of proxy", "1.25"),
                ("Previous revision", "api:7"),
                ("Why", "ECS deployment circuit breaker: tasks failed to start."),
                ("Took", "6 min 12 s"),
                (
                    "Quarantined",
                    "sha256:7f5b0c0e0d7a6a4b (never deployed to this service again: quarantined in the state table)"
                ),
            ]
        );
    }

    #[test]
    fn golden_slack_and_teams_messages_of_a_rollback() {
        let slack = slack_message(&rolled_back());
        assert_eq!(
            slack["blocks"][0],
            json!({"type": "header", "text": {"type": "plain_text", "text": "Rollout rolled back: shop/api"}})
        );
        assert_eq!(
            slack["blocks"][1]["text"]["text"],
            ":red_circle: The rollout of api:8 to shop/api failed; ECS rolled the service back to api:7."
        );
        assert_eq!(
            slack["blocks"][2]["fields"][1],
            json!({"type": "mrkdwn", "text": format!("*Image of app*\n1.3.0 ({DIGEST})")})
        );
        assert_eq!(
            slack["blocks"][3]["elements"][0]["url"],
            "https://eu-west-1.console.aws.amazon.com/ecs/v2/clusters/shop/services/api/deployments?region=eu-west-1"
        );
        let teams = teams_message(&rolled_back());
        let card = &teams["attachments"][0]["content"];
        assert_eq!(card["body"][0]["color"], "Attention");
        assert_eq!(card["body"][2]["facts"][5], json!({"title": "Took", "value": "6 min 12 s"}));
        assert_eq!(card["actions"][0]["title"], "Open the service");
    }
}
