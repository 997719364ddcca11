//! Promotion: a service tagged `nightshift:promote-from=<cluster>/<service>`
//! gets, once the service it follows has run a revision long enough without a
//! failure, that revision's images, by digest. The decisions: when a
//! promotion is due, and, when it is, whether it may move and what. No AWS
//! calls here.

use aws_sdk_ecs::types::{ContainerDefinition, Tag};
use chrono::{DateTime, Duration, Utc};
use nightshift::ecs::tag_value;
use nightshift::image::ImageRef;
use nightshift::quarantine;
use nightshift::rollout::{ImageChange, ServiceId};
use nightshift::state::{Hold, hold_in_force};
use nightshift::window::{Tz, WeeklyWindows, zone_name};
use serde::{Deserialize, Serialize};

use crate::plan::{PlannedSchedule, PromotionResult, PromotionStep};

pub use nightshift::ecs::PROMOTE_FROM_TAG;
/// How long an image must have run upstream, without a failure, before it moves on.
pub const SOAK_TAG: &str = "nightshift:soak-minutes";
/// When promotions into the service may happen: `<days> <HH:MM>-<HH:MM>` in `TIMEZONE`.
pub const WINDOW_TAG: &str = "nightshift:promote-window";
pub const DEFAULT_SOAK_MINUTES: i64 = 30;
/// Thirty days: a soak longer than that is a typo.
const MAX_SOAK_MINUTES: i64 = 43_200;

/// The service a downstream follows: `[<account>:]<cluster>/<service>`; no
/// account (or this function's own) is a service of this account, another is
/// read through that account's read-only role (`READER_ROLE_NAME`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Followed {
    pub account: Option<String>,
    pub id: ServiceId,
}

impl Followed {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (account, rest) = match text.split_once(':') {
            None => (None, text),
            Some((account, rest)) if account.len() == 12 && account.chars().all(|c| c.is_ascii_digit()) => {
                (Some(account.to_owned()), rest)
            }
            Some((account, _)) => {
                return Err(format!(
                    "{text:?} is not [<account>:]<cluster>/<service>: {account:?} is not a 12-digit account id"
                ));
            }
        };
        let id = ServiceId::parse(rest).map_err(|_| format!("{text:?} is not [<account>:]<cluster>/<service>"))?;
        Ok(Self { account, id })
    }

    /// The account it is in, when that is not `own` (this function's; empty when unknown).
    pub fn elsewhere(&self, own: &str) -> Option<&str> {
        self.account.as_deref().filter(|a| *a != own && !own.is_empty())
    }

    /// Whether this names `id` in `account` (a service of this function's own account: `own`).
    pub fn is(&self, account: &str, id: &ServiceId, own: &str) -> bool {
        self.id == *id && self.account.as_deref().unwrap_or(own) == account
    }
}

impl std::fmt::Display for Followed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.account {
            Some(account) => write!(f, "{account}:{}", self.id),
            None => write!(f, "{}", self.id),
        }
    }
}

/// A downstream service's promotion settings, from its tags.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub from: Followed,
    pub soak: Duration,
    /// `None`: promotions may happen at any time.
    pub window: Option<WeeklyWindows>,
}

impl Settings {
    /// `None` when the service is not tagged `nightshift:promote-from`; else
    /// its settings, or what is wrong with its tags.
    pub fn of(tags: &[Tag], timezone: &Tz) -> Option<Result<Self, String>> {
        let from = tag_value(tags, PROMOTE_FROM_TAG)?;
        Some(Self::parse(from, tag_value(tags, SOAK_TAG), tag_value(tags, WINDOW_TAG), timezone))
    }

    fn parse(from: &str, soak: Option<&str>, window: Option<&str>, timezone: &Tz) -> Result<Self, String> {
        let from = Followed::parse(from).map_err(|why| format!("{PROMOTE_FROM_TAG}: {why}"))?;
        let soak = match soak.map(str::trim) {
            None => DEFAULT_SOAK_MINUTES,
            Some(text) => text.parse::<i64>().ok().filter(|m| (0..=MAX_SOAK_MINUTES).contains(m)).ok_or_else(|| {
                format!("{SOAK_TAG} is {text:?}, not a number of minutes from 0 to {MAX_SOAK_MINUTES}")
            })?,
        };
        let window = match window.map(str::trim).filter(|w| !w.is_empty()) {
            None => None,
            Some(text) => {
                Some(WeeklyWindows::parse(text, timezone.clone()).map_err(|why| format!("{WINDOW_TAG}: {why}"))?)
            }
        };
        Ok(Self { from, soak: Duration::minutes(soak), window })
    }
}

/// A promotion that is due: the schedule's input (`{"promotion": {...}}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Due {
    /// The service promoted into, `<cluster>/<service>`.
    pub service: String,
    /// The service it follows.
    pub from: String,
    /// The revision that succeeded upstream.
    pub task_definition: String,
    /// The upstream deployment that rolled it out (ECS `ecs-svc/…` or CodeDeploy `d-…`).
    pub deployment: String,
    /// When that deployment completed, as its event said: the soak runs from
    /// here. (ECS moves a deployment's `updatedAt` with every change of the
    /// desired count, so a service that scales would never soak by it.)
    /// Absent from schedules made before it was added: then `updatedAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
}

/// When the schedule runs: the end of the soak, never in the past (a late
/// event), and then the window's next opening.
pub fn due_at(completed: DateTime<Utc>, settings: &Settings, now: DateTime<Utc>) -> DateTime<Utc> {
    let due = (completed + settings.soak).max(now + Duration::minutes(1));
    let due = settings.window.as_ref().and_then(|w| w.next_open(due)).unwrap_or(due);
    round_up(due)
}

/// Scheduler takes whole seconds; never round into the past.
pub fn round_up(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp() + i64::from(at.timestamp_subsec_nanos() > 0), 0).unwrap_or(at)
}

/// The schedule's name: the same upstream deployment, service and time give
/// the same name, so a duplicate outcome schedules nothing twice (Scheduler
/// refuses a second schedule of one name). Scheduler names: 1-64 of `[0-9a-zA-Z-_.]`.
pub fn schedule_name(service: &ServiceId, deployment: &str, at: Option<DateTime<Utc>>) -> String {
    named("promote", service, deployment, at)
}

/// A sleep check's schedule name (`sleep-…`, which the scheduler role's trust takes too), as [`schedule_name`].
pub fn sleep_schedule_name(service: &ServiceId, at: DateTime<Utc>) -> String {
    named("sleep", service, "sleep", Some(at))
}

fn named(prefix: &str, service: &ServiceId, deployment: &str, at: Option<DateTime<Utc>>) -> String {
    let mut hash = nightshift::hash::Fnv1a::default();
    for part in [service.cluster.as_str(), service.service.as_str(), deployment] {
        hash.write(part.as_bytes());
        hash.write(&[0]);
    }
    if let Some(at) = at {
        hash.write(&at.timestamp().to_be_bytes());
    }
    let readable: String = service
        .service
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '-' })
        .take(38)
        .collect();
    format!("{prefix}-{readable}-{:016x}", hash.finish())
}

/// The service promoted from, as AWS describes it now.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    /// The revision the service runs.
    pub task_definition: String,
    /// The deployment that put it there, when it completed; else why the
    /// service is not settled (a rollout in progress, a rollback).
    pub settled: Result<Settled, String>,
    /// A rollout or rollback is under way: it may settle soon.
    pub moving: bool,
    /// Its last rollout failed and the rollback completed: it runs again what it ran before.
    pub restored: bool,
    /// The digests quarantined on it (whole, or short as an older release's tag held them).
    pub quarantine: Vec<String>,
    /// Its revision's containers and the tag each was deployed from.
    pub containers: Vec<ContainerDefinition>,
    pub image_tags: Vec<(String, String)>,
    /// Its tasks RUNNING now, as ECS describes them.
    pub tasks: Vec<RunningTask>,
    /// Whether it has checks, and how its revision's went.
    pub checks: Checks,
}

/// A task RUNNING now: when it started, and the digests its containers run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningTask {
    pub started_at: DateTime<Utc>,
    pub digests: Vec<String>,
}

/// The upstream's checks (verify-rollout) of the revision it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checks {
    /// It has no check suite: nothing to wait for.
    None,
    Passed,
    /// Failed: why.
    Failed(String),
    /// It has a suite, and no verdict on this revision yet.
    Pending,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    pub deployment: String,
    pub completed_at: DateTime<Utc>,
}

/// The service promoted into, as AWS describes it now.
#[derive(Debug, Clone, PartialEq)]
pub struct Downstream {
    pub id: ServiceId,
    pub settings: Settings,
    /// The digests quarantined on it.
    pub quarantine: Vec<String>,
    pub containers: Vec<ContainerDefinition>,
}

/// What a promotion does.
#[derive(Debug, Clone, PartialEq)]
pub enum Promotion {
    /// Deploy these changes (each container pinned to the upstream's digest).
    Move { changes: Vec<ImageChange>, image_tags: Vec<(String, String)>, digests: Vec<String> },
    /// Not yet: the soak has not passed or the window is closed; schedule again then.
    Wait { until: DateTime<Utc>, why: String },
    /// The downstream already runs every digest.
    Already(String),
    /// Nothing moves, for this reason.
    Refuse(String),
}

/// How long a due promotion waits for its image to run upstream (and pass its checks) before it gives up.
pub const RUN_WAIT_LIMIT: chrono::Duration = chrono::Duration::days(7);
/// How soon a promotion whose image has not run upstream is checked again, when the soak is shorter.
pub const RUN_RETRY_MIN: chrono::Duration = chrono::Duration::minutes(10);

/// How soon a due promotion whose upstream is moving is tried again.
pub const MOVING_RETRY: chrono::Duration = chrono::Duration::minutes(10);
/// How long after the upstream's completion a due promotion waits for it to settle again.
pub const MOVING_WAIT_LIMIT: chrono::Duration = chrono::Duration::days(1);

/// A due promotion into a held service (`holds`: its own and the one on every
/// service) does not move: it waits for a hold's end, or is refused while the
/// hold lasts until released. A promotion by hand (`due` `None`) is not held.
pub fn held(due: Option<&Due>, holds: &[Hold], now: DateTime<Utc>) -> Option<Promotion> {
    due?;
    let hold = hold_in_force(holds, now)?;
    let until = hold.until.as_deref().and_then(|u| DateTime::parse_from_rfc3339(u).ok());
    Some(match until {
        Some(until) => Promotion::Wait { until: until.with_timezone(&Utc), why: hold.why() },
        None => Promotion::Refuse(format!("{}; promote by hand, or release the hold", hold.why())),
    })
}

/// Decides a promotion: `due` is the schedule's (soak and window checked), `None` a promotion by hand.
pub fn decide(due: Option<&Due>, upstream: &Upstream, downstream: &Downstream, now: DateTime<Utc>) -> Promotion {
    let from = &downstream.settings.from;
    if let Some(due) = due
        && due.from != from.to_string()
    {
        return Promotion::Refuse(format!(
            "{} now follows {from} ({PROMOTE_FROM_TAG}), not {}: nothing promoted",
            downstream.id, due.from
        ));
    }
    let settled = match (&upstream.settled, due) {
        (Ok(settled), _) => Some(settled),
        // A later rollout failed and was rolled back: the revision that was due runs again, and is due again.
        (Err(_), Some(due)) if upstream.restored && upstream.task_definition == due.task_definition => None,
        // A rollout under way may fail and be rolled back: the due promotion waits for it (a day at most).
        (Err(why), Some(due)) if upstream.moving && due.completed_at.is_none_or(|at| now < at + MOVING_WAIT_LIMIT) => {
            return Promotion::Wait { until: now + MOVING_RETRY, why: format!("{from} is not settled yet: {why}") };
        }
        (Err(why), _) => return Promotion::Refuse(format!("{from} is not settled: {why}")),
    };
    if let Some(due) = due {
        if upstream.task_definition != due.task_definition {
            return Promotion::Refuse(format!(
                "{from} now runs {}, not {}: it changed since, and what it runs now is promoted after its own rollout",
                nightshift::ecs::revision_of(&upstream.task_definition),
                nightshift::ecs::revision_of(&due.task_definition)
            ));
        }
        if let Some(settled) = settled
            && settled.deployment != due.deployment
        {
            return Promotion::Refuse(format!(
                "{from} was deployed again since {} (now {}): a failure or rollback may have come between",
                due.deployment, settled.deployment
            ));
        }
    }
    let PromotedImages { changes, image_tags, digests } = match changes(upstream, downstream) {
        Ok(found) => found,
        Err(why) => return Promotion::Refuse(why),
    };
    // Only what moves is checked: a sidecar both run unchanged moves nowhere.
    let moving: Vec<String> =
        changes.iter().filter_map(|c| c.to.parse::<ImageRef>().ok().and_then(|i| i.digest)).collect();
    for digest in &moving {
        let short = quarantine::short(digest);
        if quarantine::held_in(&downstream.quarantine, digest) {
            return Promotion::Refuse(format!(
                "{short} is quarantined on {}: a rollout of it failed there",
                downstream.id
            ));
        }
        if quarantine::held_in(&upstream.quarantine, digest) {
            return Promotion::Refuse(format!("{short} is quarantined on {from}: a rollout of it failed there"));
        }
    }
    if changes.is_empty() {
        let shorts: Vec<String> = digests.iter().map(|d| quarantine::short(d)).collect();
        return Promotion::Already(format!("{} already runs {} from {from}", downstream.id, shorts.join(", ")));
    }
    if let Some(held) = ran_and_passed(due, upstream, downstream, &moving, now) {
        return held;
    }
    if let Some(due) = due {
        let completed = due.completed_at.or(settled.map(|s| s.completed_at)).unwrap_or(now);
        let soaked = completed + downstream.settings.soak;
        if soaked > now {
            let minutes = downstream.settings.soak.num_minutes();
            return Promotion::Wait {
                until: soaked,
                why: format!("{from} has run it since {completed}; the soak is {minutes} minutes"),
            };
        }
        if let Some(window) = &downstream.settings.window
            && let Some(open) = window.next_open(now)
            && open > now
        {
            let text = window.windows.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            return Promotion::Wait {
                until: open,
                why: format!("outside {WINDOW_TAG} {text} ({})", zone_name(&window.timezone)),
            };
        }
    }
    Promotion::Move { changes, image_tags, digests }
}

/// Only what ran and passed moves: the upstream's checks of its revision
/// passed (where it has checks), and its oldest task RUNNING every moving
/// digest started at least the soak ago. `None` when both hold; else a due
/// promotion waits (checked again every soak, for seven days after the
/// upstream's rollout) and one by hand is refused, saying why.
fn ran_and_passed(
    due: Option<&Due>,
    upstream: &Upstream,
    downstream: &Downstream,
    moving: &[String],
    now: DateTime<Utc>,
) -> Option<Promotion> {
    let from = &downstream.settings.from;
    let revision = nightshift::ecs::revision_of(&upstream.task_definition);
    let soak = downstream.settings.soak;
    let not_yet = |why: String| {
        let since = due.and_then(|d| d.completed_at).or(upstream.settled.as_ref().ok().map(|s| s.completed_at));
        if due.is_some() && since.is_some_and(|at| now >= at + RUN_WAIT_LIMIT) {
            return Promotion::Refuse(format!("{why}; given up after waiting {} days", RUN_WAIT_LIMIT.num_days()));
        }
        Promotion::Wait { until: now + soak.max(RUN_RETRY_MIN), why }
    };
    match &upstream.checks {
        Checks::Failed(why) => {
            return Some(Promotion::Refuse(format!("{revision} failed its checks on {from}: {why}")));
        }
        Checks::Pending => return Some(not_yet(format!("{revision} has not passed its checks on {from} yet"))),
        Checks::None | Checks::Passed => {}
    }
    let oldest = upstream
        .tasks
        .iter()
        .filter(|task| moving.iter().all(|digest| task.digests.contains(digest)))
        .map(|task| task.started_at)
        .min();
    let shorts: Vec<String> = moving.iter().map(|d| quarantine::short(d)).collect();
    match oldest {
        None => Some(not_yet(format!(
            "no task of {from} runs {}: it is asleep, scaled to 0 or never started one, and only what ran moves on",
            shorts.join(", ")
        ))),
        Some(started) if started + soak > now => {
            let why = format!(
                "{from}'s oldest task running {} started at {started}; the soak is {} minutes",
                shorts.join(", "),
                soak.num_minutes()
            );
            Some(Promotion::Wait { until: started + soak, why })
        }
        Some(_) => None,
    }
}

/// What a promotion moves into the downstream.
struct PromotedImages {
    /// Each changing container, pinned to the upstream's digest.
    changes: Vec<ImageChange>,
    /// The tag each changing container was deployed from upstream: (container, tag).
    image_tags: Vec<(String, String)>,
    /// Every digest concerned, changing or not.
    digests: Vec<String>,
}

/// Each downstream container that runs an image of a repository the upstream
/// runs, pinned to the upstream's digest; with the tag it was deployed from
/// and every digest concerned (changing or not).
fn changes(upstream: &Upstream, downstream: &Downstream) -> Result<PromotedImages, String> {
    let from = &downstream.settings.from;
    // Each upstream repository with its digest (and tag); two digests of one repository are ambiguous.
    let mut sources: Vec<(String, String, ImageRef, Option<String>)> = Vec::new();
    for container in &upstream.containers {
        let (Some(name), Some(image)) = (container.name(), container.image()) else { continue };
        let Ok(image) = image.parse::<ImageRef>() else { continue };
        let registry = image.registry.clone().unwrap_or_default();
        if let Some((_, _, other, _)) =
            sources.iter().find(|(r, repo, _, _)| *r == registry && *repo == image.repository)
        {
            if other.digest != image.digest {
                return Err(format!("{from} runs two images of {}: the one to promote is ambiguous", image.repository));
            }
            continue;
        }
        let tag = upstream.image_tags.iter().find(|(c, _)| c == name).map(|(_, t)| t.clone()).or(image.tag.clone());
        sources.push((registry, image.repository.clone(), image, tag));
    }
    let mut changes = Vec::new();
    let mut image_tags = Vec::new();
    let mut digests = Vec::new();
    // Repositories both run, but upstream by tag: left as they are (a shared sidecar, say).
    let mut by_tag = Vec::new();
    for container in &downstream.containers {
        let (Some(name), Some(current)) = (container.name(), container.image()) else { continue };
        let Ok(image) = current.parse::<ImageRef>() else { continue };
        let registry = image.registry.clone().unwrap_or_default();
        let Some((_, _, source, tag)) =
            sources.iter().find(|(r, repo, _, _)| *r == registry && *repo == image.repository)
        else {
            continue;
        };
        let Some(digest) = &source.digest else {
            by_tag.push(source.to_string());
            continue;
        };
        if !digests.contains(digest) {
            digests.push(digest.clone());
        }
        if image.digest.as_ref() == Some(digest) {
            continue;
        }
        changes.push(ImageChange {
            container: name.to_owned(),
            from: current.to_owned(),
            to: ImageRef::pinned(&registry, &image.repository, digest),
        });
        if let Some(tag) = tag {
            image_tags.push((name.to_owned(), tag.clone()));
        }
    }
    if digests.is_empty() && !by_tag.is_empty() {
        return Err(format!(
            "{from} runs {} by tag, not by digest: a promotion moves digests only (deploy-on-push pins them)",
            by_tag.join(", ")
        ));
    }
    if digests.is_empty() {
        return Err(format!("no container of {} runs an image of a repository {from} runs", downstream.id));
    }
    Ok(PromotedImages { changes, image_tags, digests })
}

/// What a promotion that must wait does: a due one is scheduled again for
/// then; one by hand waits for nothing, and is refused with the reason.
pub fn reschedule(due: Option<&Due>, id: &ServiceId, until: DateTime<Utc>, why: String) -> PromotionStep {
    let Some(due) = due else {
        return PromotionStep::Stay { result: PromotionResult::Refused, why };
    };
    let schedule = PlannedSchedule {
        id: id.clone(),
        schedule: schedule_name(id, &due.deployment, Some(until)),
        at: until,
        due: due.clone(),
    };
    PromotionStep::Reschedule { schedule, why }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const ECR: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
    const GOOD: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const OLD: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const TD: &str = "arn:aws:ecs:eu-west-1:123456789012:task-definition/shop-staging:3";

    fn utc(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap()
    }

    fn container(name: &str, image: &str) -> ContainerDefinition {
        ContainerDefinition::builder().name(name).image(image).build()
    }

    fn settings(soak: Option<&str>, window: Option<&str>) -> Settings {
        Settings::parse("staging/shop", soak, window, &Tz::UTC).unwrap()
    }

    fn upstream() -> Upstream {
        Upstream {
            task_definition: TD.into(),
            settled: Ok(Settled { deployment: "ecs-svc/1".into(), completed_at: utc(27, 10, 0) }),
            moving: false,
            restored: false,
            quarantine: Vec::new(),
            containers: vec![container("app", &format!("{ECR}/shop@{GOOD}")), container("log", "fluent/fluent-bit:3")],
            image_tags: vec![("app".into(), "1.4.0".into())],
            // A task has run the digest since the upstream's rollout completed.
            tasks: vec![RunningTask { started_at: utc(27, 10, 0), digests: vec![GOOD.into()] }],
            checks: Checks::None,
        }
    }

    fn downstream(settings: Settings) -> Downstream {
        Downstream {
            id: ServiceId::parse("qa/shop").unwrap(),
            settings,
            quarantine: Vec::new(),
            containers: vec![container("web", &format!("{ECR}/shop@{OLD}")), container("log", "fluent/fluent-bit:3")],
        }
    }

    fn due() -> Due {
        Due {
            service: "qa/shop".into(),
            from: "staging/shop".into(),
            task_definition: TD.into(),
            deployment: "ecs-svc/1".into(),
            completed_at: None,
        }
    }

    fn moved() -> Promotion {
        Promotion::Move {
            changes: vec![ImageChange {
                container: "web".into(),
                from: format!("{ECR}/shop@{OLD}"),
                to: format!("{ECR}/shop@{GOOD}"),
            }],
            image_tags: vec![("web".into(), "1.4.0".into())],
            digests: vec![GOOD.into()],
        }
    }

    #[test]
    fn a_due_promotion_into_a_held_service_waits_for_the_holds_end_and_one_by_hand_goes() {
        use chrono::TimeZone;
        let now = Utc.with_ymd_and_hms(2026, 12, 5, 22, 0, 0).unwrap();
        let due = Due {
            service: "prod/shop".into(),
            from: "qa/shop".into(),
            task_definition: "arn:td/shop-qa:2".into(),
            deployment: "ecs-svc/1".into(),
            completed_at: None,
        };
        let hold = |until: Option<&str>| Hold {
            service: "all".into(),
            reason: "freeze".into(),
            by: "ana".into(),
            since: "2026-12-05T21:00:00Z".into(),
            until: until.map(str::to_owned),
        };
        let end = Utc.with_ymd_and_hms(2026, 12, 6, 8, 0, 0).unwrap();
        assert_eq!(
            held(Some(&due), &[hold(Some("2026-12-06T08:00:00Z"))], now),
            Some(Promotion::Wait {
                until: end,
                why: "every service is held until 2026-12-06T08:00:00Z by ana: freeze".into()
            })
        );
        assert_eq!(
            held(Some(&due), &[hold(None)], now),
            Some(Promotion::Refuse(
                "every service is held until released by ana: freeze; promote by hand, or release the hold".into()
            ))
        );
        assert_eq!(held(None, &[hold(None)], now), None, "by hand is not held");
        assert_eq!(held(Some(&due), &[hold(Some("2026-12-05T21:00:00Z"))], now), None, "ended");
        assert_eq!(held(Some(&due), &[], now), None);
    }

    #[test]
    fn a_followed_service_may_name_its_account_and_a_tag_without_one_is_this_accounts() {
        let there = Followed::parse("111122223333:staging/shop").unwrap();
        assert_eq!((there.account.as_deref(), there.id.to_string().as_str()), (Some("111122223333"), "staging/shop"));
        assert_eq!(there.to_string(), "111122223333:staging/shop");
        assert_eq!(there.elsewhere("123456789012"), Some("111122223333"));
        assert_eq!(there.elsewhere("111122223333"), None, "its own account is no other account");
        let here = Followed::parse("staging/shop").unwrap();
        assert_eq!((here.account.as_deref(), here.elsewhere("123456789012")), (None, None));
        let id = ServiceId::parse("staging/shop").unwrap();
        assert!(Followed::parse("staging/shop").unwrap().is("123456789012", &id, "123456789012"));
        assert!(Followed::parse("123456789012:staging/shop").unwrap().is("123456789012", &id, "123456789012"));
        assert!(!Followed::parse("staging/shop").unwrap().is("111122223333", &id, "123456789012"));
        assert!(there.is("111122223333", &id, "123456789012"));
    }

    #[test]
    fn settings_come_from_the_tags_with_clear_errors() {
        let tags = |pairs: &[(&str, &str)]| -> Vec<Tag> {
            pairs.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect()
        };
        assert_eq!(Settings::of(&tags(&[("nightshift:deploy", "semver")]), &Tz::UTC), None);
        let s = Settings::of(&tags(&[(PROMOTE_FROM_TAG, "staging/shop")]), &Tz::UTC).unwrap().unwrap();
        assert_eq!((s.from.to_string(), s.soak, s.window), ("staging/shop".into(), Duration::minutes(30), None));
        let s = Settings::of(
            &tags(&[(PROMOTE_FROM_TAG, "qa/shop"), (SOAK_TAG, "0"), (WINDOW_TAG, "Mon-Fri 09:00-16:00")]),
            &Tz::UTC,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (s.soak, s.window.unwrap().windows[0].to_string()),
            (Duration::zero(), "Mon-Fri 09:00-16:00".into())
        );
        let table = [
            ((PROMOTE_FROM_TAG, "shop"), "nightshift:promote-from: \"shop\" is not [<account>:]<cluster>/<service>"),
            (
                (PROMOTE_FROM_TAG, "1234:staging/shop"),
                "nightshift:promote-from: \"1234:staging/shop\" is not [<account>:]<cluster>/<service>: \"1234\" is not a 12-digit account id",
            ),
            ((SOAK_TAG, "half an hour"), "nightshift:soak-minutes is \"half an hour\", not a number of minutes"),
            ((SOAK_TAG, "-5"), "nightshift:soak-minutes is \"-5\""),
            ((WINDOW_TAG, "weekdays 9-5"), "nightshift:promote-window: \"weekdays 9-5\""),
        ];
        for ((key, value), want) in table {
            let mut pairs = vec![(PROMOTE_FROM_TAG, "staging/shop")];
            pairs.retain(|(k, _)| *k != key);
            pairs.push((key, value));
            let err = Settings::of(&tags(&pairs), &Tz::UTC).unwrap().unwrap_err();
            assert!(err.starts_with(want), "{key}={value}: {err}");
        }
    }

    #[test]
    fn a_due_promotion_moves_the_upstream_digest_once_soaked() {
        let d = downstream(settings(None, None));
        // Soaked (30 minutes after 10:00): the digest moves, with its tag, and the sidecar stays.
        assert_eq!(decide(Some(&due()), &upstream(), &d, utc(27, 10, 30)), moved());
        // Not yet: wait for the end of the soak.
        match decide(Some(&due()), &upstream(), &d, utc(27, 10, 29)) {
            Promotion::Wait { until, why } => {
                assert_eq!(until, utc(27, 10, 30));
                assert!(why.contains("the soak is 30 minutes"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        // By hand, the deployment's soak is not checked, but what ran is: its oldest task started at 10:00.
        assert!(matches!(decide(None, &upstream(), &d, utc(27, 10, 1)), Promotion::Wait { why, .. }
            if why.contains("oldest task running")));
        assert_eq!(decide(None, &upstream(), &d, utc(27, 10, 30)), moved());
        // Already there: nothing to do.
        let mut there = d.clone();
        there.containers[0] = container("web", &format!("{ECR}/shop@{GOOD}"));
        assert!(matches!(decide(Some(&due()), &upstream(), &there, utc(27, 11, 0)), Promotion::Already(why)
            if why == "qa/shop already runs sha256:1111111111111111 from staging/shop"));
    }

    #[test]
    fn the_window_holds_a_promotion_until_it_opens_across_midnight_and_daylight_saving() {
        // 2026-11-27 is a Friday.
        let table = [
            // Inside the window: moves.
            ("Mon-Fri 09:00-16:00", Tz::UTC, utc(27, 11, 0), None),
            // After Friday's close: Monday 09:00.
            ("Mon-Fri 09:00-16:00", Tz::UTC, utc(27, 17, 0), Some(utc(30, 9, 0))),
            // A window across midnight, after its end: the same evening.
            ("Daily 22:00-02:00", Tz::UTC, utc(27, 12, 0), Some(utc(27, 22, 0))),
            ("Daily 22:00-02:00", Tz::UTC, utc(28, 1, 0), None),
        ];
        for (window, tz, now, want) in table {
            let mut s = settings(Some("0"), None);
            s.window = Some(WeeklyWindows::parse(window, tz).unwrap());
            let got = decide(Some(&due()), &upstream(), &downstream(s), now);
            match (want, got) {
                (None, Promotion::Move { .. }) => {}
                (Some(want), Promotion::Wait { until, why }) => {
                    assert_eq!(until, want, "{window} at {now}");
                    assert!(why.starts_with("outside nightshift:promote-window"), "{why}");
                }
                (want, got) => panic!("{window} at {now}: want {want:?}, got {got:?}"),
            }
        }
        // In New York the clocks went back on 1 November 2026: 09:00 EST is 14:00 UTC (13:00 before).
        let ny = nightshift::window::zone("America/New_York").unwrap();
        let mut s = settings(Some("0"), None);
        s.window = Some(WeeklyWindows::parse("Mon-Fri 09:00-16:00", ny).unwrap());
        let mut early = upstream();
        early.settled = Ok(Settled {
            deployment: "ecs-svc/1".into(),
            completed_at: Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap(),
        });
        early.tasks[0].started_at = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
        let at = |now| match decide(Some(&due()), &early, &downstream(s.clone()), now) {
            Promotion::Wait { until, .. } => until,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            at(Utc.with_ymd_and_hms(2026, 10, 29, 22, 0, 0).unwrap()),
            Utc.with_ymd_and_hms(2026, 10, 30, 13, 0, 0).unwrap()
        );
        assert_eq!(
            at(Utc.with_ymd_and_hms(2026, 10, 30, 22, 0, 0).unwrap()),
            Utc.with_ymd_and_hms(2026, 11, 2, 14, 0, 0).unwrap()
        );
    }

    #[test]
    fn the_soak_runs_from_the_completion_the_event_carried_not_from_the_deployments_last_change() {
        // Given staging's rollout completed at 10:00 (its event said so), and staging scaled at 11:50,
        // which moved its deployment's updatedAt
        let mut u = upstream();
        u.settled = Ok(Settled { deployment: "ecs-svc/1".into(), completed_at: utc(27, 11, 50) });
        let d = downstream(settings(None, None));
        let due = Due { completed_at: Some(utc(27, 10, 0)), ..due() };
        // When the promotion comes due at 12:00, then 30 minutes have soaked, and it moves
        assert_eq!(decide(Some(&due), &u, &d, utc(27, 12, 0)), moved());
        // And a schedule made before the completion was carried soaks from updatedAt, as it did
        assert!(matches!(decide(Some(&self::due()), &u, &d, utc(27, 12, 0)), Promotion::Wait { .. }));
    }

    #[test]
    fn a_sidecar_both_run_unchanged_and_quarantined_downstream_does_not_hold_the_promotion() {
        // Given a sidecar of the shop's registry pinned at one digest on both sides, which an earlier
        // failure quarantined on qa, and a new app digest upstream
        const SIDECAR: &str = "sha256:5555555555555555555555555555555555555555555555555555555555555555";
        let mut u = upstream();
        u.containers.push(container("proxy", &format!("{ECR}/proxy@{SIDECAR}")));
        let mut d = downstream(settings(None, None));
        d.containers.push(container("proxy", &format!("{ECR}/proxy@{SIDECAR}")));
        d.quarantine = vec![quarantine::short(SIDECAR)];
        // When it is promoted by hand, then the app moves: only what changes is checked
        let Promotion::Move { changes, .. } = decide(None, &u, &d, utc(27, 12, 0)) else { panic!("it moves") };
        assert_eq!(changes.iter().map(|c| c.container.as_str()).collect::<Vec<_>>(), ["web"]);
        // And a quarantined digest that would move still holds it
        d.quarantine = vec![quarantine::short(GOOD)];
        assert!(
            matches!(decide(None, &u, &d, utc(27, 12, 0)), Promotion::Refuse(why) if why.contains("quarantined on qa/shop"))
        );
    }

    #[test]
    fn a_due_promotion_waits_for_a_moving_upstream_and_is_due_again_once_a_later_rollout_is_rolled_back() {
        let d = downstream(settings(None, None));
        let now = utc(27, 12, 0);
        // A later rollout under way upstream: try again in ten minutes, for a day at most
        let mut moving = upstream();
        moving.settled = Err("its rollout ecs-svc/3 is IN_PROGRESS".into());
        moving.moving = true;
        assert_eq!(
            decide(Some(&due()), &moving, &d, now),
            Promotion::Wait {
                until: now + MOVING_RETRY,
                why: "staging/shop is not settled yet: its rollout ecs-svc/3 is IN_PROGRESS".into()
            }
        );
        let mut stale = due();
        stale.completed_at = Some(now - MOVING_WAIT_LIMIT);
        assert!(matches!(decide(Some(&stale), &moving, &d, now), Promotion::Refuse(_)));
        assert!(matches!(decide(None, &moving, &d, now), Promotion::Refuse(_)), "by hand: refused, as before");
        // That rollout failed and was rolled back to the revision that was due: it moves
        let mut restored = upstream();
        restored.settled = Err("its last rollout failed and ecs-svc/4 rolled it back".into());
        restored.restored = true;
        let mut soaked = due();
        soaked.completed_at = Some(utc(27, 10, 0));
        assert!(matches!(decide(Some(&soaked), &restored, &d, now), Promotion::Move { .. }));
        // ... but not when the rollback restored another revision
        let mut elsewhere = restored.clone();
        elsewhere.task_definition = TD.replace(":3", ":2");
        assert!(matches!(decide(Some(&due()), &elsewhere, &d, now), Promotion::Refuse(_)));
    }

    #[test]
    fn nothing_moves_when_the_upstream_changed_failed_or_is_quarantined() {
        let d = downstream(settings(None, None));
        let now = utc(27, 12, 0);
        let refused = |u: &Upstream, d: &Downstream, due: Option<&Due>| match decide(due, u, d, now) {
            Promotion::Refuse(why) => why,
            other => panic!("{other:?}"),
        };
        // A newer revision upstream.
        let mut newer = upstream();
        newer.task_definition = TD.replace(":3", ":4");
        assert!(
            refused(&newer, &d, Some(&due())).starts_with("staging/shop now runs shop-staging:4, not shop-staging:3")
        );
        // The same revision, but deployed again since (a rollback to it, say).
        let mut again = upstream();
        again.settled = Ok(Settled { deployment: "ecs-svc/2".into(), completed_at: utc(27, 11, 0) });
        assert!(refused(&again, &d, Some(&due())).contains("was deployed again since ecs-svc/1 (now ecs-svc/2)"));
        // A rollout in progress, or rolled back: even by hand.
        let mut busy = upstream();
        busy.settled = Err("its rollout ecs-svc/3 is IN_PROGRESS".into());
        assert_eq!(refused(&busy, &d, None), "staging/shop is not settled: its rollout ecs-svc/3 is IN_PROGRESS");
        assert!(refused(&busy, &d, Some(&due())).starts_with("staging/shop is not settled"), "due, not moving");
        // Quarantined downstream (it failed there before), or upstream.
        let mut held = d.clone();
        held.quarantine = vec!["sha256:1111111111111111".into()];
        assert_eq!(
            refused(&upstream(), &held, None),
            "sha256:1111111111111111 is quarantined on qa/shop: a rollout of it failed there"
        );
        let mut held_up = upstream();
        held_up.quarantine = vec!["sha256:9999999999999999".into(), "sha256:1111111111111111".into()];
        assert!(refused(&held_up, &d, Some(&due())).contains("quarantined on staging/shop"));
        // The downstream now follows another service.
        let mut other = d.clone();
        other.settings.from = Followed::parse("staging/other").unwrap();
        assert!(refused(&upstream(), &other, Some(&due())).starts_with("qa/shop now follows staging/other"));
        // Unpinned upstream, no shared repository, two digests of one repository.
        let mut by_tag = upstream();
        by_tag.containers[0] = container("app", &format!("{ECR}/shop:1.4.0"));
        assert_eq!(
            refused(&by_tag, &d, None),
            format!(
                "staging/shop runs {ECR}/shop:1.4.0, fluent/fluent-bit:3 by tag, not by digest: a promotion moves \
                     digests only (deploy-on-push pins them)"
            )
        );
        let mut unrelated = d.clone();
        unrelated.containers = vec![container("web", &format!("{ECR}/billing@{OLD}"))];
        assert_eq!(
            refused(&upstream(), &unrelated, None),
            "no container of qa/shop runs an image of a repository staging/shop runs"
        );
        let mut two = upstream();
        two.containers.push(container("worker", &format!("{ECR}/shop@{OLD}")));
        assert!(refused(&two, &d, None).contains("runs two images of shop"));
    }

    #[test]
    fn only_what_ran_for_the_whole_soak_and_passed_its_checks_moves() {
        let now = utc(27, 12, 0);
        let due = Due { completed_at: Some(utc(27, 10, 0)), ..due() };
        let task =
            |started: DateTime<Utc>, digest: &str| RunningTask { started_at: started, digests: vec![digest.into()] };
        let with = |tasks: Vec<RunningTask>, checks: Checks| Upstream { tasks, checks, ..upstream() };
        let soak = settings(Some("30"), None);
        let later = |minutes: i64| now + Duration::minutes(minutes);
        type Case<'a> = (&'a str, Upstream, Option<&'a Due>, DateTime<Utc>, Result<(), String>);
        let table: Vec<Case> = vec![
            ("a task ran it for the soak", with(vec![task(utc(27, 10, 5), GOOD)], Checks::Passed), Some(&due), now, Ok(())),
            ("no checks, and ran", with(vec![task(utc(27, 10, 5), GOOD)], Checks::None), Some(&due), now, Ok(())),
            (
                "asleep: no task at all",
                with(vec![], Checks::None),
                Some(&due),
                now,
                Err(format!("wait until {}: no task of staging/shop runs sha256:1111111111111111", later(30))),
            ),
            (
                "only tasks of the revision before",
                with(vec![task(utc(20, 0, 0), OLD)], Checks::None),
                Some(&due),
                now,
                Err(format!("wait until {}: no task of staging/shop runs", later(30))),
            ),
            (
                "woken ten minutes ago",
                with(vec![task(utc(27, 11, 50), GOOD)], Checks::None),
                Some(&due),
                now,
                Err(format!("wait until {}: staging/shop's oldest task running sha256:1111111111111111 started at", utc(27, 12, 20))),
            ),
            (
                "seven days without a task",
                with(vec![], Checks::None),
                Some(&due),
                utc(27, 10, 0) + Duration::days(7),
                Err("refuse: no task of staging/shop runs sha256:1111111111111111: it is asleep, scaled to 0 or never started one, and only what ran moves on; given up after waiting 7 days".into()),
            ),
            (
                "checks still to come",
                with(vec![task(utc(27, 10, 5), GOOD)], Checks::Pending),
                Some(&due),
                now,
                Err(format!("wait until {}: shop-staging:3 has not passed its checks on staging/shop yet", later(30))),
            ),
            (
                "checks failed",
                with(vec![task(utc(27, 10, 5), GOOD)], Checks::Failed("health: passed 0 of 3".into())),
                Some(&due),
                now,
                Err("refuse: shop-staging:3 failed its checks on staging/shop: health: passed 0 of 3".into()),
            ),
            (
                "by hand, asleep",
                with(vec![], Checks::None),
                None,
                now,
                Err(format!("wait until {}: no task of staging/shop runs", later(30))),
            ),
        ];
        for (case, upstream, due, now, want) in table {
            let got = match decide(due, &upstream, &downstream(soak.clone()), now) {
                Promotion::Move { .. } => Ok(()),
                Promotion::Wait { until, why } => Err(format!("wait until {until}: {why}")),
                Promotion::Refuse(why) => Err(format!("refuse: {why}")),
                Promotion::Already(why) => Err(format!("already: {why}")),
            };
            match (&got, &want) {
                (Err(got), Err(want)) => assert!(got.starts_with(want.as_str()), "{case}: {got}"),
                _ => assert_eq!(got, want, "{case}"),
            }
        }
        // By hand, a promotion that must wait is refused with the reason.
        let step = reschedule(None, &ServiceId::parse("qa/shop").unwrap(), now, "no task".into());
        assert_eq!(step, PromotionStep::Stay { result: PromotionResult::Refused, why: "no task".into() });
    }

    #[test]
    fn the_schedule_runs_after_the_soak_in_the_window_never_in_the_past() {
        let s = settings(None, None);
        assert_eq!(due_at(utc(27, 10, 0), &s, utc(27, 10, 1)), utc(27, 10, 30));
        // A late outcome: a minute from now.
        assert_eq!(due_at(utc(27, 10, 0), &s, utc(27, 12, 0)), utc(27, 12, 1));
        // Outside the window: when it opens.
        let w = settings(Some("60"), Some("Mon-Fri 09:00-16:00"));
        assert_eq!(due_at(utc(27, 15, 30), &w, utc(27, 15, 31)), utc(30, 9, 0));
        // Sub-second times round up, never into the past.
        let odd = utc(27, 10, 0) + Duration::milliseconds(1500);
        assert_eq!(due_at(odd, &settings(Some("0"), None), utc(27, 9, 0)), utc(27, 10, 0) + Duration::seconds(2));
    }

    #[test]
    fn a_schedule_name_is_stable_readable_and_what_scheduler_takes() {
        let qa = ServiceId::parse("qa/shop").unwrap();
        let a = schedule_name(&qa, "ecs-svc/1", None);
        assert_eq!(a, schedule_name(&qa, "ecs-svc/1", None));
        assert!(a.starts_with("promote-shop-") && a.len() <= 64, "{a}");
        assert_ne!(a, schedule_name(&qa, "ecs-svc/2", None));
        assert_ne!(a, schedule_name(&ServiceId::parse("prod/shop").unwrap(), "ecs-svc/1", None));
        assert_ne!(a, schedule_name(&qa, "ecs-svc/1", Some(utc(30, 9, 0))));
        let long = ServiceId { cluster: "c".into(), service: format!("a/b c{}", "x".repeat(300)) };
        let name = schedule_name(&long, "d-ABCDEFGHI", None);
        assert!(name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)), "{name}");
        let sleep = sleep_schedule_name(&qa, utc(30, 9, 0));
        assert!(sleep.starts_with("sleep-shop-") && sleep.len() <= 64, "{sleep}");
    }
}
