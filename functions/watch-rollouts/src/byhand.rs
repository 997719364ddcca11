//! What a rollback and a quarantine by hand come to (`nightshift rollback`,
//! `nightshift quarantine`): pure decisions, from what was read.

use nightshift::quarantine;
use nightshift::rollout::ImageChange;
use serde::Serialize;

use crate::message::Image;

/// A rollback, decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollback {
    /// Roll these containers back to the images the revision before ran, and
    /// quarantine the digests the service runs now (those the revision before did not run).
    Go { changes: Vec<ImageChange>, image_tags: Vec<(String, String)>, quarantine: Vec<String> },
    /// Nothing to do, and why (a rollback asked again finds this).
    Already(String),
}

/// Back from `now` to `before` (each container's image, as the two revisions
/// name them). A revision before that runs a digest quarantined on the service
/// is not gone back to: that is what a rollback done already leaves (the
/// service runs the good revision, and the one "before" it is the bad one).
pub fn rollback(now: &[Image], before: &[Image], quarantined: &[String]) -> Rollback {
    if let Some(held) = before.iter().filter_map(|i| i.digest.as_deref()).find(|d| quarantine::held_in(quarantined, d))
    {
        return Rollback::Already(format!(
            "the revision before runs {}, which is quarantined on the service: it was rolled back already \
             (to go forward again: nightshift quarantine release, then nightshift deploy)",
            quarantine::short(held)
        ));
    }
    let mut changes = Vec::new();
    let mut image_tags = Vec::new();
    for running in now {
        let Some(back) = before.iter().find(|b| b.container == running.container) else { continue };
        if back.image == running.image {
            continue;
        }
        changes.push(ImageChange {
            container: running.container.clone(),
            from: running.image.clone(),
            to: back.image.clone(),
        });
        if let Some(tag) = &back.tag {
            image_tags.push((running.container.clone(), tag.clone()));
        }
    }
    if changes.is_empty() {
        return Rollback::Already(
            "the service runs the same images as the revision before: nothing to roll back".into(),
        );
    }
    let kept: Vec<&str> = before.iter().filter_map(|b| b.digest.as_deref()).collect();
    let mut quarantine: Vec<String> = changes
        .iter()
        .filter_map(|c| now.iter().find(|i| i.container == c.container)?.digest.clone())
        .filter(|d| !kept.contains(&d.as_str()))
        .collect();
    quarantine.dedup();
    Rollback::Go { changes, image_tags, quarantine }
}

/// One rollout in ECS's history of a service: the revision it deployed and those it replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastDeployment {
    pub target: Option<String>,
    pub sources: Vec<String>,
}

/// The revision that ran before `current`: what the newest rollout to
/// `current` replaced (`history` newest first).
pub fn revision_before(history: &[PastDeployment], current: &str) -> Option<String> {
    history
        .iter()
        .filter(|d| d.target.as_deref() == Some(current))
        .find_map(|d| d.sources.iter().find(|s| s.as_str() != current).cloned())
}

/// What a rollback, a quarantine or its release by hand came to, in the report (`by_hand`).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ByHandReport {
    /// `rollback`, `quarantine` or `unquarantine`.
    pub action: &'static str,
    /// `rolled back`, `already`, `quarantined`, `released`, `not quarantined`.
    pub result: String,
    pub why: String,
    pub by: String,
    /// The services it concerns: `<cluster>/<service>`.
    pub services: Vec<String>,
    /// The digests quarantined (or released).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub digests: Vec<String>,
    /// The services whose item it wrote (a second run writes none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
    /// The revision rolled back to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_task_definition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployed: Option<nightshift::rollout::Deployed>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(container: &str, repo: &str, digest: char, tag: &str) -> Image {
        let digest = format!("sha256:{}", digest.to_string().repeat(64));
        Image {
            container: container.into(),
            image: format!("1.dkr.ecr.eu-west-1.amazonaws.com/{repo}@{digest}"),
            tag: Some(tag.into()),
            digest: Some(digest),
        }
    }

    #[test]
    fn a_rollback_goes_back_to_the_images_before_and_quarantines_what_runs_now() {
        let now = [image("app", "shop", 'b', "1.4.0"), image("proxy", "envoy", 'e', "1.0")];
        let before = [image("app", "shop", 'a', "1.3.0"), image("proxy", "envoy", 'e', "1.0")];
        match rollback(&now, &before, &[]) {
            Rollback::Go { changes, image_tags, quarantine } => {
                assert_eq!(changes.len(), 1);
                assert_eq!((changes[0].container.as_str(), changes[0].to.as_str()), ("app", before[0].image.as_str()));
                assert_eq!(image_tags, vec![("app".to_owned(), "1.3.0".to_owned())]);
                assert_eq!(quarantine, vec![now[0].digest.clone().unwrap()]);
            }
            other => panic!("{other:?}"),
        }
        // Asked again: the service runs 'a' now, and the revision before it ('b') is quarantined.
        let quarantined = vec![now[0].digest.clone().unwrap()];
        assert!(
            matches!(rollback(&before, &now, &quarantined), Rollback::Already(why) if why.contains("rolled back already"))
        );
        assert!(matches!(rollback(&before, &before, &[]), Rollback::Already(why) if why.contains("same images")));
    }

    #[test]
    fn the_revision_before_is_what_the_newest_rollout_to_the_current_one_replaced() {
        let d = |target: &str, sources: &[&str]| PastDeployment {
            target: Some(target.into()),
            sources: sources.iter().map(|s| (*s).to_owned()).collect(),
        };
        let history = [d("td:3", &["td:2"]), d("td:2", &["td:1"]), d("td:3", &["td:1"])];
        assert_eq!(revision_before(&history, "td:3").as_deref(), Some("td:2"));
        assert_eq!(revision_before(&history, "td:2").as_deref(), Some("td:1"));
        assert_eq!(revision_before(&history, "td:9"), None);
        assert_eq!(revision_before(&[d("td:1", &[])], "td:1"), None);
    }
}
