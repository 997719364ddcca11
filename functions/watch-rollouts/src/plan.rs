//! The plans: from what was observed, every write, notice and schedule a run
//! will make, each with its reason. No AWS calls here; `lib.rs` applies them.

use aws_sdk_ecs::types::Tag;
use chrono::{DateTime, Utc};
use nightshift::ecs::tag_value;
use nightshift::notify::{self, Channel, Notice};
use nightshift::quarantine::{self, QUARANTINE_TAG};
use nightshift::rollout::{RolloutPlan, ServiceId};
use nightshift::state::StateWrite;
use serde::Serialize;

use crate::PromotionReport;
use crate::announce::RolloutOutcome;
use crate::message::{self, Image};
use crate::observe::{Remembered, TagRecords};
use crate::outcome::{DeploymentStatus, Mark, Outcome, RolloutEnding, RolloutState, ToldRecord, is_rollback_reason};
use crate::promote::{self, Due, Settings, Settled};
use nightshift::identity::Identity;

/// A service as the plans read it: where it is, and its tags now.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceNow {
    pub id: ServiceId,
    pub arn: String,
    pub tags: Vec<Tag>,
}

impl ServiceNow {
    pub fn tag(&self, key: &str) -> Option<&str> {
        tag_value(&self.tags, key)
    }

    /// Its channels (`nightshift:notify`), or what is wrong with the tag.
    pub fn channels(&self) -> Result<Vec<Channel>, String> {
        notify::parse_channels(self.tag(notify::NOTIFY_TAG).unwrap_or_default())
            .map_err(|why| format!("{}: {why}", notify::NOTIFY_TAG))
    }
}

/// A notice for one service's channels.
#[derive(Debug, Clone, PartialEq)]
pub struct Telling {
    pub channels: Vec<Channel>,
    pub notice: Notice,
}

/// Tells the service's channels; a service without channels is told nothing,
/// one whose tag is wrong gets a warning instead.
pub fn telling(service: &ServiceNow, notice: Notice, warnings: &mut Vec<String>) -> Option<Telling> {
    match service.channels() {
        Ok(channels) if channels.is_empty() => None,
        Ok(channels) => Some(Telling { channels, notice }),
        Err(why) => {
            warnings.push(why);
            None
        }
    }
}

/// A one-time schedule of a promotion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedSchedule {
    /// The service promoted into.
    #[serde(flatten)]
    pub id: ServiceId,
    pub schedule: String,
    pub at: DateTime<Utc>,
    #[serde(skip)]
    pub due: Due,
}

/// A promotion scheduled (or, with `DRY_RUN`, that would be), as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scheduled {
    /// The service promoted into.
    #[serde(flatten)]
    pub id: ServiceId,
    pub schedule: String,
    pub at: DateTime<Utc>,
    /// The schedule existed already: a duplicate, nothing new scheduled.
    pub already: bool,
}

/// The state table writes a run makes, each a conditional write of one item.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StateWrites {
    /// Written whatever telling does (the quarantine, the carried-over records).
    pub always: Vec<StateWrite>,
    /// Written only when someone was told, or no one had to be (the told marks):
    /// a run that told no one fails and is retried, and tells again.
    pub once_told: Vec<StateWrite>,
}

/// What a rollout's outcome makes the run do, in this order: schedule the
/// promotions that follow it (a run that cannot is retried whole, before
/// anyone is told), tell, then write what it remembers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OutcomePlan {
    pub schedules: Vec<PlannedSchedule>,
    pub tellings: Vec<Telling>,
    pub state: StateWrites,
    /// Short digests the quarantine gains.
    pub quarantined: Vec<String>,
    pub warnings: Vec<String>,
    /// The outcome, put on the default event bus (`announce`).
    pub announce: Option<RolloutOutcome>,
}

/// A service that follows the one whose rollout succeeded, with its settings or what is wrong with them.
pub struct Follower {
    pub service: ServiceNow,
    pub settings: Result<Settings, String>,
}

/// What the outcome plan is decided on.
pub struct OutcomeInput<'a> {
    pub ending: &'a RolloutEnding,
    pub service: &'a ServiceNow,
    /// What nightshift remembers of the service.
    pub remembered: &'a Remembered,
    pub images: &'a [Image],
    /// The images of the revision the service ran before it (or, rolled back, runs again), when known:
    /// a failure quarantines only the digests that changed from them.
    pub previous_images: Option<&'a [Image]>,
    pub followers: &'a [Follower],
    /// When the rollout ended.
    pub ended: DateTime<Utc>,
    pub region: &'a str,
    /// This function's own account (empty when unknown).
    pub account: &'a str,
    /// The merge the rollout's revision is.
    pub identity: &'a Identity,
    /// `NOTIFY_LEVEL=all`: successes are told too.
    pub tell_successes: bool,
    pub now: DateTime<Utc>,
}

/// Plans what an outcome makes the run do.
pub fn plan_outcome(input: &OutcomeInput<'_>) -> OutcomePlan {
    let mut plan = OutcomePlan::default();
    let Some(outcome) = input.ending.outcome else {
        return plan;
    };
    let service = &input.service.arn;
    let mut always = carry_over(service, input.remembered.to_carry.as_ref());
    if outcome.quarantines() {
        let mut digests: Vec<String> = Vec::new();
        for digest in changed_digests(input.images, input.previous_images) {
            if !digests.contains(&digest) && !quarantine::held_in(&input.remembered.quarantine, &digest) {
                digests.push(digest);
            }
        }
        for digest in &digests {
            plan.quarantined.push(quarantine::short(digest));
            let reason = format!("{} in deployment {}", outcome.words(), input.ending.rollout);
            always.push(StateWrite::Quarantine { service: service.clone(), digest: digest.clone(), reason });
        }
    }
    if outcome == Outcome::Succeeded
        && let Some(task_definition) = &input.ending.task_definition
    {
        let rollout = Rollout {
            from: &input.service.id.to_string(),
            task_definition,
            deployment: &input.ending.rollout,
            ended: input.ended,
        };
        plan_promotions(&rollout, input.followers, input.region, input.now, &mut plan);
    }
    plan.announce = Some(RolloutOutcome {
        account: input.account.to_owned(),
        region: input.region.to_owned(),
        cluster: input.service.id.cluster.clone(),
        service: input.service.id.service.clone(),
        outcome,
        deployment: input.ending.rollout.clone(),
        revision: input.ending.task_definition.clone(),
        previous_revision: input.ending.previous.clone(),
        digests: input.images.iter().filter_map(|i| i.digest.clone()).collect(),
        completed_at: input.ended,
        identity: input.identity.clone(),
        promoted_from: input.service.tag(promote::PROMOTE_FROM_TAG).map(str::to_owned),
    });
    if outcome.is_failure() || input.tell_successes {
        let told = message::Told {
            outcome,
            cluster: &input.service.id.cluster,
            service: &input.service.id.service,
            region: input.region,
            task_definition: input.ending.task_definition.as_deref(),
            previous: input.ending.previous.as_deref(),
            images: input.images,
            why: &input.ending.why,
            took_seconds: took_seconds(input.ending, input.ended),
            quarantined: &plan.quarantined,
            identity: input.identity,
        };
        plan.tellings.extend(telling(input.service, message::notice(&told), &mut plan.warnings));
    }
    let once_told =
        input.ending.marks.iter().map(|(deployment, mark)| mark_write(service, deployment, *mark)).collect();
    plan.state = StateWrites { always, once_told };
    plan
}

/// A told mark's write: a told outcome replaces a rollback's own mark, never another told one.
fn mark_write(service: &str, deployment: &str, mark: Mark) -> StateWrite {
    let replaces = match mark {
        Mark::Told(_) => vec![Mark::Rollback.code().to_owned()],
        Mark::Rollback => Vec::new(),
    };
    StateWrite::Mark {
        service: service.to_owned(),
        deployment: deployment.to_owned(),
        mark: mark.code().to_owned(),
        replaces,
    }
}

/// The writes that carry an older release's tag records into the table, the
/// `carried#tags` item last (once it is there, the tags are not read again).
fn carry_over(service: &str, tags: Option<&TagRecords>) -> Vec<StateWrite> {
    let Some(tags) = tags else {
        return Vec::new();
    };
    let reason = format!("carried over from the tag {QUARANTINE_TAG}");
    let mut writes: Vec<StateWrite> = tags
        .quarantine
        .iter()
        .map(|digest| StateWrite::Quarantine {
            service: service.to_owned(),
            digest: digest.clone(),
            reason: reason.clone(),
        })
        .collect();
    writes.extend(tags.record.entries.iter().map(|(deployment, mark)| StateWrite::Mark {
        service: service.to_owned(),
        deployment: deployment.clone(),
        mark: mark.code().to_owned(),
        replaces: Vec::new(),
    }));
    writes.push(StateWrite::Carried { service: service.to_owned() });
    writes
}

/// The digests a rollout changed: those of its images the revision before did
/// not run (a sidecar both run is not the rollout's). Every digest when the
/// revision before is not known.
pub fn changed_digests(images: &[Image], previous: Option<&[Image]>) -> Vec<String> {
    let ran_before = |digest: &String| previous.is_some_and(|p| p.iter().any(|i| i.digest.as_ref() == Some(digest)));
    images.iter().filter_map(|i| i.digest.clone()).filter(|d| !ran_before(d)).collect()
}

/// How long the rollout took, when ECS or CodeDeploy still says when it started.
pub fn took_seconds(ending: &RolloutEnding, ended: DateTime<Utc>) -> Option<i64> {
    ending.started.map(|s| (ended - s).num_seconds().max(0))
}

/// A rollout that succeeded, as its followers' promotions are scheduled from it.
pub struct Rollout<'a> {
    /// The service it rolled out, as the followers' reports name it.
    pub from: &'a str,
    pub task_definition: &'a str,
    pub deployment: &'a str,
    pub ended: DateTime<Utc>,
}

/// The promotions an outcome another account announced schedules: one per
/// follower here, as for a rollout of this account's own.
pub fn plan_announced(detail: &RolloutOutcome, followers: &[Follower], now: DateTime<Utc>) -> OutcomePlan {
    let mut plan = OutcomePlan::default();
    if let (Outcome::Succeeded, Some(task_definition)) = (detail.outcome, &detail.revision) {
        let from = format!("{}:{}/{}", detail.account, detail.cluster, detail.service);
        let rollout =
            Rollout { from: &from, task_definition, deployment: &detail.deployment, ended: detail.completed_at };
        plan_promotions(&rollout, followers, &detail.region, now, &mut plan);
    }
    plan
}

/// One schedule per follower whose settings are right, due when its soak
/// ends (in its window); a follower whose tags are wrong is warned and told.
fn plan_promotions(
    rollout: &Rollout<'_>,
    followers: &[Follower],
    region: &str,
    now: DateTime<Utc>,
    plan: &mut OutcomePlan,
) {
    for follower in followers {
        let id = &follower.service.id;
        match &follower.settings {
            Ok(settings) => {
                let due = Due {
                    service: id.to_string(),
                    // As the follower names what it follows, which a promotion checks it still does.
                    from: settings.from.to_string(),
                    task_definition: rollout.task_definition.to_owned(),
                    deployment: rollout.deployment.to_owned(),
                    completed_at: Some(rollout.ended),
                };
                plan.schedules.push(PlannedSchedule {
                    id: id.clone(),
                    schedule: promote::schedule_name(id, rollout.deployment, None),
                    at: promote::due_at(rollout.ended, settings, now),
                    due,
                });
            }
            Err(why) => {
                plan.warnings.push(format!("{id}: promotion not scheduled: {why}"));
                let notice = message::promotion_refused(id, rollout.from, why, region);
                plan.tellings.extend(telling(&follower.service, notice, &mut plan.warnings));
            }
        }
    }
}

/// A CodeDeploy group's last attempted deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastDeployment {
    /// The group has deployed nothing yet.
    None,
    Succeeded {
        id: String,
        ended: Option<DateTime<Utc>>,
    },
    /// Not (yet) succeeded: its status, in CodeDeploy's words.
    Other {
        id: String,
        status: String,
    },
}

/// How an upstream service's last rollout stands, as AWS describes it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamRollout {
    /// A blue/green service: its group's last attempted deployment.
    BlueGreen(LastDeployment),
    /// A service on the ECS controller: its deployments, and its told record.
    Ecs { deployments: Vec<crate::outcome::Deployment>, record: ToldRecord },
    /// Its CodeDeploy group could not be found or read.
    Unknown(String),
}

/// The upstream's last rollout, when it completed; else why it is not settled.
/// Whether a rollout or a rollback is under way upstream: it may settle soon.
pub fn moving(rollout: &UpstreamRollout) -> bool {
    match rollout {
        UpstreamRollout::Ecs { deployments, .. } => {
            deployments.len() > 1 || deployments.iter().any(|d| d.rollout_state == Some(RolloutState::InProgress))
        }
        UpstreamRollout::BlueGreen(LastDeployment::Other { status, .. }) => {
            matches!(status.as_str(), "Created" | "Queued" | "InProgress" | "Baking" | "Ready")
        }
        _ => false,
    }
}

/// Whether the upstream's last rollout failed and its rollback completed: it
/// runs again, alone, the revision it ran before that rollout.
pub fn restored(rollout: &UpstreamRollout) -> bool {
    let UpstreamRollout::Ecs { deployments, record } = rollout else {
        return false;
    };
    match deployments.as_slice() {
        [only] => {
            only.status == DeploymentStatus::Primary
                && only.rollout_state == Some(RolloutState::Completed)
                && (record.mark(&only.id) == Some(Mark::Rollback) || is_rollback_reason(&only.rollout_reason))
        }
        _ => false,
    }
}

pub fn settled(rollout: &UpstreamRollout, now: DateTime<Utc>) -> Result<Settled, String> {
    match rollout {
        UpstreamRollout::Unknown(why) => Err(why.clone()),
        UpstreamRollout::BlueGreen(LastDeployment::None) => Err("its CodeDeploy group has deployed nothing yet".into()),
        UpstreamRollout::BlueGreen(LastDeployment::Succeeded { id, ended }) => {
            Ok(Settled { deployment: id.clone(), completed_at: ended.unwrap_or(now) })
        }
        UpstreamRollout::BlueGreen(LastDeployment::Other { id, status }) => {
            Err(format!("its CodeDeploy deployment {id} is {status}"))
        }
        UpstreamRollout::Ecs { deployments, record } => {
            let primary = deployments
                .iter()
                .find(|d| d.status == DeploymentStatus::Primary)
                .ok_or("ECS lists no PRIMARY deployment")?;
            let deployment = primary.id.clone();
            match primary.rollout_state {
                Some(RolloutState::Completed) => {}
                None => return Err(format!("its rollout {deployment} is of unknown state")),
                Some(state) => return Err(format!("its rollout {deployment} is {}", state.as_str())),
            }
            if deployments.len() > 1 {
                return Err(format!("ECS lists {} deployments: a rollout is in progress", deployments.len()));
            }
            if record.mark(&deployment) == Some(Mark::Rollback) || is_rollback_reason(&primary.rollout_reason) {
                return Err(format!("its last rollout failed and {deployment} rolled it back"));
            }
            Ok(Settled { completed_at: primary.updated_at.unwrap_or(now), deployment })
        }
    }
}

/// What a promotion came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PromotionResult {
    Promoted,
    /// Scheduled again, for when its soak ends or its window opens.
    Waiting,
    /// The downstream runs it already, or its group deploys it already.
    Already,
    #[default]
    Refused,
    /// It could not start (the run fails and is retried).
    Failed,
}

/// What a promotion does once its service and the one it follows were read.
#[derive(Debug, Clone, PartialEq)]
pub enum PromotionStep {
    /// Roll these changes out.
    Roll { rollout: RolloutPlan, digests: Vec<String> },
    /// Schedule it again (a due promotion whose soak or window has not come).
    Reschedule { schedule: PlannedSchedule, why: String },
    /// Nothing moves: already, or refused (then the service's channels are told why).
    Stay { result: PromotionResult, why: String },
}

/// The notice of a promotion (`promoted`: what it came to): why it was refused,
/// or (at `NOTIFY_LEVEL=all`) that it started.
pub fn promotion_notice(id: &ServiceId, promoted: &PromotionReport, region: &str, tell_starts: bool) -> Option<Notice> {
    let from = promoted.from.clone().unwrap_or_else(|| id.to_string());
    match (promoted.result, &promoted.deployed) {
        (PromotionResult::Refused, _) => {
            let mut notice = message::promotion_refused(id, &from, &promoted.why, region);
            notice.facts.extend(promoted.identity.as_ref().map(Identity::facts).unwrap_or_default());
            Some(notice)
        }
        (PromotionResult::Promoted, Some(deployed)) if tell_starts => {
            Some(message::promotion_started(deployed, &from, region))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Deployment;
    use chrono::TimeZone;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 12, minute, 0).unwrap()
    }

    fn deployment(id: &str, status: &str, state: &str, reason: &str) -> Deployment {
        Deployment {
            id: id.into(),
            status: DeploymentStatus::parse(status),
            rollout_state: RolloutState::parse(state),
            rollout_reason: reason.into(),
            task_definition: "arn:aws:ecs:eu-west-1:123456789012:task-definition/shop:3".into(),
            created_at: Some(at(0)),
            updated_at: Some(at(5)),
        }
    }

    #[test]
    fn an_upstream_is_settled_only_when_its_last_rollout_completed_alone_and_was_no_rollback() {
        let ecs = |deployments: Vec<Deployment>, record: &str| UpstreamRollout::Ecs {
            deployments,
            record: ToldRecord::parse(record),
        };
        let done = deployment("ecs-svc/1", "PRIMARY", "COMPLETED", "");
        let blue_green = UpstreamRollout::BlueGreen;
        let ok = |deployment: &str, minute| Ok(Settled { deployment: deployment.into(), completed_at: at(minute) });
        let table = [
            (ecs(vec![done.clone()], ""), ok("ecs-svc/1", 5)),
            (ecs(vec![], ""), Err("ECS lists no PRIMARY deployment".to_owned())),
            (
                ecs(vec![deployment("ecs-svc/1", "PRIMARY", "IN_PROGRESS", "")], ""),
                Err("its rollout ecs-svc/1 is IN_PROGRESS".into()),
            ),
            (
                ecs(vec![done.clone(), deployment("ecs-svc/0", "ACTIVE", "COMPLETED", "")], ""),
                Err("ECS lists 2 deployments: a rollout is in progress".into()),
            ),
            (
                ecs(vec![done.clone()], "ecs-svc/1=rollback"),
                Err("its last rollout failed and ecs-svc/1 rolled it back".into()),
            ),
            (
                ecs(
                    vec![deployment("ecs-svc/1", "PRIMARY", "COMPLETED", "rolling back to deploymentId ecs-svc/0")],
                    "",
                ),
                Err("its last rollout failed and ecs-svc/1 rolled it back".into()),
            ),
            (blue_green(LastDeployment::None), Err("its CodeDeploy group has deployed nothing yet".into())),
            (blue_green(LastDeployment::Succeeded { id: "d-1".into(), ended: Some(at(7)) }), ok("d-1", 7)),
            (blue_green(LastDeployment::Succeeded { id: "d-1".into(), ended: None }), ok("d-1", 30)),
            (
                blue_green(LastDeployment::Other { id: "d-2".into(), status: "InProgress".into() }),
                Err("its CodeDeploy deployment d-2 is InProgress".into()),
            ),
            (UpstreamRollout::Unknown("CodeDeploy refused".into()), Err("CodeDeploy refused".into())),
        ];
        for (rollout, want) in table {
            assert_eq!(settled(&rollout, at(30)), want, "{rollout:?}");
        }
        // Under way, a rollout may settle soon; a completed rollback runs again what ran before it
        let in_progress = ecs(vec![deployment("ecs-svc/2", "PRIMARY", "IN_PROGRESS", ""), done.clone()], "");
        assert!(moving(&in_progress) && !restored(&in_progress));
        let rolled_back = ecs(vec![done.clone()], "ecs-svc/1=rollback");
        assert!(restored(&rolled_back) && !moving(&rolled_back));
        assert!(!restored(&ecs(vec![done.clone()], "")) && !moving(&ecs(vec![done.clone()], "")));
        let busy = blue_green(LastDeployment::Other { id: "d-2".into(), status: "InProgress".into() });
        assert!(moving(&busy));
        assert!(!moving(&blue_green(LastDeployment::Other { id: "d-2".into(), status: "Failed".into() })));
    }

    fn service(tags: &[(&str, &str)]) -> ServiceNow {
        ServiceNow {
            id: ServiceId { cluster: "shop".into(), service: "api".into() },
            arn: "arn:aws:ecs:eu-west-1:123456789012:service/shop/api".into(),
            tags: tags.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect(),
        }
    }

    fn ending(outcome: Option<Outcome>) -> RolloutEnding {
        RolloutEnding {
            outcome,
            rollout: "ecs-svc/2".into(),
            task_definition: Some("arn:aws:ecs:eu-west-1:123456789012:task-definition/shop:3".into()),
            previous: None,
            started: Some(at(0)),
            marks: outcome.map(|o| vec![("ecs-svc/2".to_owned(), Mark::Told(o))]).unwrap_or_default(),
            why: "why".into(),
        }
    }

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn plan(ending: &RolloutEnding, service: &ServiceNow, followers: &[Follower], tell_successes: bool) -> OutcomePlan {
        plan_remembering(ending, service, followers, tell_successes, &Remembered::default())
    }

    fn plan_remembering(
        ending: &RolloutEnding,
        service: &ServiceNow,
        followers: &[Follower],
        tell_successes: bool,
        remembered: &Remembered,
    ) -> OutcomePlan {
        let images = [Image {
            container: "app".into(),
            image: format!("r/shop@{DIGEST}"),
            tag: None,
            digest: Some(DIGEST.into()),
        }];
        plan_outcome(&OutcomeInput {
            ending,
            service,
            remembered,
            images: &images,
            previous_images: None,
            followers,
            ended: at(5),
            region: "eu-west-1",
            account: "123456789012",
            identity: &Identity::default(),
            tell_successes,
            now: at(6),
        })
    }

    #[test]
    fn an_outcome_plans_its_quarantine_notice_marks_and_schedules_before_anything_is_written() {
        let told = service(&[("nightshift:deploy", "semver"), ("nightshift:notify", "slack/team")]);
        // A failure: quarantined, told, marked once told
        let failed = plan(&ending(Some(Outcome::RolledBack)), &told, &[], false);
        assert_eq!(failed.quarantined, ["sha256:1111111111111111"]);
        assert_eq!(failed.tellings.len(), 1);
        assert_eq!(
            failed.state.always,
            [StateWrite::Quarantine {
                service: told.arn.clone(),
                digest: DIGEST.into(),
                reason: "rolled back in deployment ecs-svc/2".into()
            }]
        );
        assert_eq!(
            failed.state.once_told,
            [StateWrite::Mark {
                service: told.arn.clone(),
                deployment: "ecs-svc/2".into(),
                mark: "rolled-back".into(),
                replaces: vec!["rollback".into()]
            }]
        );
        // Held already (whole, or short as an older release's tag held it): not written again
        for held in [DIGEST.to_owned(), quarantine::short(DIGEST)] {
            let remembered = Remembered { quarantine: vec![held], ..Remembered::default() };
            let again = plan_remembering(&ending(Some(Outcome::Failed)), &told, &[], false, &remembered);
            assert!(again.state.always.is_empty() && again.quarantined.is_empty());
        }
        // A success at NOTIFY_LEVEL=failures: no notice, no quarantine, the mark only
        let quiet = plan(&ending(Some(Outcome::Succeeded)), &told, &[], false);
        assert!(quiet.tellings.is_empty() && quiet.quarantined.is_empty());
        assert_eq!(quiet.state.always, []);
        assert_eq!(quiet.state.once_told.len(), 1);
        // Nothing to tell: nothing planned
        assert_eq!(plan(&ending(None), &told, &[], true), OutcomePlan::default());
        // A success with a follower whose soak is 10 minutes, and one whose tags are wrong
        let follower = |name: &str| ServiceNow {
            id: ServiceId { cluster: "qa".into(), service: name.into() },
            ..service(&[("nightshift:notify", "teams/qa")])
        };
        let settings = Settings {
            from: crate::promote::Followed { account: None, id: told.id.clone() },
            soak: chrono::Duration::minutes(10),
            window: None,
        };
        let followers = [
            Follower { service: follower("api"), settings: Ok(settings) },
            Follower { service: follower("bad"), settings: Err("nightshift:soak-minutes is \"x\"".into()) },
        ];
        let chained = plan(&ending(Some(Outcome::Succeeded)), &told, &followers, false);
        assert_eq!(chained.schedules.len(), 1);
        assert_eq!((chained.schedules[0].id.to_string(), chained.schedules[0].at), ("qa/api".into(), at(15)));
        assert_eq!(chained.schedules[0].due.deployment, "ecs-svc/2");
        assert_eq!(chained.warnings, ["qa/bad: promotion not scheduled: nightshift:soak-minutes is \"x\""]);
        assert_eq!(chained.tellings.len(), 1, "the follower with wrong tags is told");
    }

    #[test]
    fn an_older_releases_tag_records_are_carried_over_once_the_carried_mark_last() {
        let told = service(&[("nightshift:deploy", "semver")]);
        let tags = TagRecords {
            quarantine: vec!["sha256:aaaaaaaaaaaaaaaa".into()],
            record: ToldRecord::parse("ecs-svc/1=failed ecs-svc/0=rollback"),
        };
        let remembered = Remembered {
            quarantine: tags.quarantine.clone(),
            record: tags.record.clone(),
            to_carry: Some(tags),
            verdicts: vec![],
        };
        let carried = plan_remembering(&ending(Some(Outcome::Succeeded)), &told, &[], false, &remembered);
        let arn = told.arn.clone();
        assert_eq!(
            carried.state.always,
            [
                StateWrite::Quarantine {
                    service: arn.clone(),
                    digest: "sha256:aaaaaaaaaaaaaaaa".into(),
                    reason: "carried over from the tag nightshift:quarantine".into()
                },
                StateWrite::Mark {
                    service: arn.clone(),
                    deployment: "ecs-svc/1".into(),
                    mark: "failed".into(),
                    replaces: vec![]
                },
                StateWrite::Mark {
                    service: arn.clone(),
                    deployment: "ecs-svc/0".into(),
                    mark: "rollback".into(),
                    replaces: vec![]
                },
                StateWrite::Carried { service: arn }
            ]
        );
    }

    #[test]
    fn a_failure_quarantines_only_the_digests_it_changed() {
        let image = |container: &str, digest: &str| Image {
            container: container.into(),
            image: format!("r/{container}@{digest}"),
            tag: None,
            digest: Some(digest.into()),
        };
        let sidecar = "sha256:5555555555555555555555555555555555555555555555555555555555555555";
        let failed = [image("app", DIGEST), image("proxy", sidecar)];
        let before = [
            image("app", "sha256:2222222222222222222222222222222222222222222222222222222222222222"),
            image("proxy", sidecar),
        ];
        assert_eq!(changed_digests(&failed, Some(&before)), [DIGEST]);
        assert_eq!(changed_digests(&failed, None), [DIGEST, sidecar], "the revision before unknown: all");
        assert!(changed_digests(&before, Some(&before)).is_empty());
    }

    #[test]
    fn a_service_with_no_room_for_another_tag_still_keeps_its_quarantine_and_marks() {
        let many: Vec<(String, String)> = (0..50).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        let full: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let planned = plan(&ending(Some(Outcome::Failed)), &service(&full), &[], false);
        assert_eq!((planned.state.always.len(), planned.state.once_told.len()), (1, 1));
        assert_eq!(planned.quarantined, ["sha256:1111111111111111"]);
        assert!(planned.warnings.is_empty(), "{:?}", planned.warnings);
    }
}
