//! The decisions: whether a revision's checks run, and, once judged, what the
//! verdict changes (the record, the quarantine, the deployment's answer, a
//! rolling service's rollback, the notice). No AWS calls here.

use nightshift::notify::{Channel, Notice, Tone};
use nightshift::quarantine;
use nightshift::rollout::ServiceId;
use nightshift::state::{Memory, StateWrite};
use serde::Serialize;

use crate::suite::{Suite, Verdict};

/// The way in, as the plan needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Way {
    /// A CodeDeploy hook: answered with PutLifecycleEventHookExecutionStatus.
    CodeDeploy { deployment_id: String, execution_id: String },
    /// An ECS lifecycle hook: answered by the invocation's result.
    Ecs,
    /// A rolling service's completed deployment: rolled back by nightshift on failure.
    Rolling,
}

/// The revision being verified, on its service, as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub id: ServiceId,
    pub arn: String,
    /// Its channels (`nightshift:notify`), or what is wrong with the tag.
    pub channels: Result<Vec<Channel>, String>,
    /// The revision's task definition ARN.
    pub task_definition: String,
    /// The deployment verified: `d-…`, a service revision's ARN, or `ecs-svc/…`.
    pub deployment: String,
    /// Every digest the revision's containers are pinned to.
    pub digests: Vec<String>,
    /// The revision that ran before (a rolling service's rollback goes there), when known.
    pub previous: Option<String>,
    /// The digests of the revision before: only what changed from them is quarantined.
    pub previous_digests: Vec<String>,
    /// Tagged `nightshift:deploy` or `nightshift:promote-from`: a service nightshift rolls out, and may roll back.
    pub follows: bool,
    /// The merge the revision is (its `nightshift:pr`, `nightshift:commit`, `nightshift:source`).
    pub identity: nightshift::identity::Identity,
}

/// Before the checks: run them, or not, and why.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// Nothing to do: the reason.
    Skip(String),
    /// Failed without a request sent: the reason (a suite that is missing where a hook asks for one, or malformed).
    Fail(String),
    Run(Box<Suite>),
}

/// Whether the checks run. `suite`: `None` when the service has no suite
/// parameter, else the suite or why it is refused. `seconds_left`: what the
/// invocation has left, for a way in whose checks must end within it.
pub fn start(
    way: &Way,
    parameter: &str,
    suite: Option<Result<Suite, String>>,
    subject: &Subject,
    memory: &Memory,
    seconds_left: Option<u64>,
) -> Start {
    let suite = match (suite, way) {
        (None, Way::Rolling) => {
            return Start::Skip(format!("{} has no checks ({parameter} does not exist)", subject.id));
        }
        (None, _) => {
            return Start::Fail(format!(
                "{} has no check suite at {parameter}: a hook that checks nothing fails closed",
                subject.id
            ));
        }
        (Some(Err(why)), _) => return Start::Fail(why),
        (Some(Ok(suite)), _) => suite,
    };
    if *way == Way::Rolling
        && let Some(seen) = memory.verdict(&subject.task_definition)
        && seen.deployment == subject.deployment
    {
        let verdict = if seen.passed { "passed" } else { "failed" };
        return Start::Skip(format!("{} {verdict} its checks already: {}", subject.deployment, seen.why));
    }
    if let Some(left) = seconds_left
        && *way != Way::Ecs
    {
        // A round's requests take up to 10 s each; the margin covers the last round and the writes.
        let needs = suite.duration_seconds() + 30;
        if needs > left {
            return Start::Fail(format!(
                "the checks and bake of {parameter} last {} s, and this invocation has {left} s left: raise the \
                 function's timeout, or shorten samples, interval_seconds or bake_minutes (an ECS lifecycle hook \
                 can bake longer: it is invoked again)",
                suite.duration_seconds()
            ));
        }
    }
    Start::Run(Box::new(suite))
}

/// The answer a CodeDeploy hook gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HookAnswer {
    Succeeded,
    Failed,
}

impl HookAnswer {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }
}

/// What a verdict changes.
#[derive(Debug, Clone, PartialEq)]
pub struct VerdictPlan {
    /// The verdict, and on failure each changed digest held: one conditional write each.
    pub writes: Vec<StateWrite>,
    /// CodeDeploy's hook: (deployment, hook execution, status).
    pub answer: Option<(String, String, HookAnswer)>,
    /// A rolling service that failed goes back to this revision.
    pub rollback: Option<String>,
    /// Why a failed rolling service is not rolled back.
    pub no_rollback: Option<String>,
    /// Told to the service's channels (a verdict already recorded is not told again).
    pub notice: Option<(Vec<Channel>, Notice)>,
    pub warnings: Vec<String>,
}

/// What the verdict on `subject` changes, given what is remembered of the service.
pub fn after(way: &Way, subject: &Subject, verdict: &Verdict, memory: &Memory, running: &str) -> VerdictPlan {
    let mut plan = VerdictPlan {
        writes: Vec::new(),
        answer: None,
        rollback: None,
        no_rollback: None,
        notice: None,
        warnings: Vec::new(),
    };
    let recorded = memory
        .verdict(&subject.task_definition)
        .is_some_and(|seen| seen.passed == verdict.passed && seen.deployment == subject.deployment);
    if !recorded {
        plan.writes.push(StateWrite::Verdict {
            service: subject.arn.clone(),
            task_definition: subject.task_definition.clone(),
            passed: verdict.passed,
            deployment: subject.deployment.clone(),
            why: verdict.why.clone(),
        });
    }
    let held: Vec<String> = memory.quarantine.iter().map(|q| q.digest.clone()).collect();
    if !verdict.passed {
        let reason = format!("failed its checks in {}: {}", subject.deployment, verdict.why);
        for digest in changed(subject) {
            if !quarantine::held_in(&held, &digest) {
                plan.writes.push(StateWrite::Quarantine {
                    service: subject.arn.clone(),
                    digest,
                    reason: reason.clone(),
                });
            }
        }
    }
    if let Way::CodeDeploy { deployment_id, execution_id } = way {
        let status = if verdict.passed { HookAnswer::Succeeded } else { HookAnswer::Failed };
        plan.answer = Some((deployment_id.clone(), execution_id.clone(), status));
    }
    if *way == Way::Rolling && !verdict.passed {
        match rollback_to(subject, memory, &held, running) {
            Ok(to) => plan.rollback = to,
            Err(why) => plan.no_rollback = Some(why),
        }
    }
    if !recorded {
        match &subject.channels {
            Ok(channels) if !channels.is_empty() => {
                plan.notice = Some((channels.clone(), notice(subject, verdict, plan.rollback.as_deref())));
            }
            Ok(_) => {}
            Err(why) => plan.warnings.push(why.clone()),
        }
    }
    plan
}

/// The digests the revision changed from the one before (all of them when that one is not known).
fn changed(subject: &Subject) -> Vec<String> {
    let mut digests: Vec<String> = Vec::new();
    for digest in &subject.digests {
        if !subject.previous_digests.contains(digest) && !digests.contains(digest) {
            digests.push(digest.clone());
        }
    }
    digests
}

/// Where a failed rolling service goes: `Ok(None)` when it runs that already
/// (a second delivery, after the rollback); `Err` why it stays.
fn rollback_to(subject: &Subject, memory: &Memory, held: &[String], running: &str) -> Result<Option<String>, String> {
    if !subject.follows {
        return Err(format!(
            "{} is tagged neither nightshift:deploy nor nightshift:promote-from: nightshift rolls back only the \
             services it rolls out (its digests are quarantined)",
            subject.id
        ));
    }
    let Some(previous) = &subject.previous else {
        return Err(format!(
            "no revision ran on {} before {}: nothing to roll back to (its digests are quarantined)",
            subject.id,
            nightshift::ecs::revision_of(&subject.task_definition)
        ));
    };
    if running == previous {
        return Ok(None);
    }
    if running != subject.task_definition {
        return Err(format!(
            "{} runs {} now, neither the revision checked nor the one before: left as it is",
            subject.id,
            nightshift::ecs::revision_of(running)
        ));
    }
    if let Some(seen) = memory.verdict(previous)
        && !seen.passed
    {
        return Err(format!(
            "the revision before, {}, failed its checks too ({}): not rolled back to it",
            nightshift::ecs::revision_of(previous),
            seen.why
        ));
    }
    if let Some(digest) = subject.previous_digests.iter().find(|d| quarantine::held_in(held, d)) {
        return Err(format!(
            "the revision before, {}, runs {}, which is quarantined: not rolled back to it",
            nightshift::ecs::revision_of(previous),
            quarantine::short(digest)
        ));
    }
    Ok(Some(previous.clone()))
}

fn notice(subject: &Subject, verdict: &Verdict, rollback: Option<&str>) -> Notice {
    let revision = nightshift::ecs::revision_of(&subject.task_definition).to_owned();
    let (tone, title) = if verdict.passed {
        (Tone::Success, format!("{} passed its checks: {revision}", subject.id))
    } else {
        (Tone::Failure, format!("{} failed its checks: {revision}", subject.id))
    };
    let mut facts = vec![("Service".to_owned(), subject.id.to_string()), ("Revision".to_owned(), revision)];
    let digests: Vec<String> = subject.digests.iter().map(|d| quarantine::short(d)).collect();
    if !digests.is_empty() {
        facts.push(("Digests".into(), digests.join(", ")));
    }
    facts.extend(subject.identity.facts());
    for failure in &verdict.failures {
        facts.push(("Failed".into(), failure.clone()));
    }
    if let Some(excerpt) = &verdict.excerpt {
        facts.push(("Answer".into(), excerpt.clone()));
    }
    if !verdict.passed {
        let next = match rollback {
            Some(to) => format!("rolled back to {}; the digests are quarantined", nightshift::ecs::revision_of(to)),
            None => "the deployment rolls back; the digests are quarantined".into(),
        };
        facts.push(("Then".into(), next));
    }
    Notice { tone, title, summary: verdict.why.clone(), facts, link: None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nightshift::state::{Quarantined, VerdictSeen};

    const TD8: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/api:8";
    const TD7: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/api:7";
    const NEW: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const OLD: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const SIDECAR: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
    const ARN: &str = "arn:aws:ecs:us-east-1:123456789012:service/shop/api";

    fn subject() -> Subject {
        Subject {
            id: ServiceId::parse("shop/api").unwrap(),
            arn: ARN.into(),
            channels: Ok(vec![Channel::parse("slack/ops").unwrap()]),
            task_definition: TD8.into(),
            deployment: "ecs-svc/1".into(),
            digests: vec![NEW.into(), SIDECAR.into()],
            previous: Some(TD7.into()),
            previous_digests: vec![OLD.into(), SIDECAR.into()],
            follows: true,
            identity: nightshift::identity::Identity { pr: Some("42".into()), ..Default::default() },
        }
    }

    fn suite() -> Suite {
        Suite::parse("/p", r#"{"target": "http://x", "requests": [{"name": "h", "path": "/"}]}"#).unwrap()
    }

    fn failed() -> Verdict {
        Verdict::failed("h: passed 0 of 3 (HTTP 500, not 2xx)")
    }

    fn passed() -> Verdict {
        Verdict { passed: true, why: "1 requests passed (3 samples)".into(), failures: vec![], excerpt: None }
    }

    #[test]
    fn whether_the_checks_run() {
        let memory = Memory::default();
        let done = Memory {
            verdicts: vec![VerdictSeen {
                task_definition: TD8.into(),
                passed: true,
                deployment: "ecs-svc/1".into(),
                why: "ok".into(),
            }],
            ..Memory::default()
        };
        let hook = Way::CodeDeploy { deployment_id: "d-1".into(), execution_id: "e".into() };
        let long = Suite { bake_minutes: 20, ..suite() };
        type Case<'a> = (&'a str, Way, Option<Result<Suite, String>>, &'a Memory, Option<u64>, &'a str);
        let table: Vec<Case> = vec![
            ("rolling without a suite", Way::Rolling, None, &memory, None, "skip: shop/api has no checks"),
            ("a hook without a suite", hook.clone(), None, &memory, None, "fail: shop/api has no check suite at /p"),
            ("a malformed suite", Way::Ecs, Some(Err("refused".into())), &memory, None, "fail: refused"),
            ("a suite", Way::Rolling, Some(Ok(suite())), &memory, Some(900), "run"),
            (
                "verified already",
                Way::Rolling,
                Some(Ok(suite())),
                &done,
                None,
                "skip: ecs-svc/1 passed its checks already",
            ),
            ("a hook runs again", hook.clone(), Some(Ok(suite())), &done, None, "run"),
            (
                "too long for the invocation",
                hook,
                Some(Ok(long.clone())),
                &memory,
                Some(900),
                "fail: the checks and bake of /p last 1204 s",
            ),
            ("an ECS hook bakes over invocations", Way::Ecs, Some(Ok(long)), &memory, Some(900), "run"),
        ];
        for (case, way, suite, memory, left, want) in table {
            let got = match start(&way, "/p", suite, &subject(), memory, left) {
                Start::Skip(why) => format!("skip: {why}"),
                Start::Fail(why) => format!("fail: {why}"),
                Start::Run(_) => "run".into(),
            };
            assert!(got.starts_with(want), "{case}: {got}");
        }
    }

    #[test]
    fn a_failed_rolling_revision_is_recorded_quarantined_where_it_changed_told_and_rolled_back() {
        let plan = after(&Way::Rolling, &subject(), &failed(), &Memory::default(), TD8);
        assert_eq!(plan.writes.len(), 2, "{:?}", plan.writes);
        assert!(
            matches!(&plan.writes[0], StateWrite::Verdict { passed: false, task_definition, .. } if task_definition == TD8)
        );
        // The sidecar both revisions run is not quarantined: it did not change.
        assert!(matches!(&plan.writes[1], StateWrite::Quarantine { digest, .. } if digest == NEW));
        assert_eq!(plan.rollback.as_deref(), Some(TD7));
        let (channels, notice) = plan.notice.unwrap();
        assert_eq!(channels.len(), 1);
        assert_eq!(notice.tone, Tone::Failure);
        assert!(notice.facts.iter().any(|(k, v)| k == "Then" && v.contains("rolled back to api:7")));
        assert!(notice.facts.iter().any(|(k, v)| k == "Merge" && v == "PR #42"), "the merge the revision is");
    }

    #[test]
    fn the_same_verdict_again_writes_and_tells_nothing_and_a_service_rolled_back_stays() {
        let memory = Memory {
            verdicts: vec![VerdictSeen {
                task_definition: TD8.into(),
                passed: false,
                deployment: "ecs-svc/1".into(),
                why: "x".into(),
            }],
            quarantine: vec![Quarantined { digest: NEW.into(), reason: "x".into() }],
            ..Memory::default()
        };
        let plan = after(&Way::Rolling, &subject(), &failed(), &memory, TD7);
        assert_eq!((plan.writes, plan.rollback, plan.notice), (vec![], None, None));
    }

    #[test]
    fn a_rollback_never_goes_to_a_revision_that_failed_or_is_quarantined_or_when_the_service_moved_on() {
        let failed_before = Memory {
            verdicts: vec![VerdictSeen {
                task_definition: TD7.into(),
                passed: false,
                deployment: "ecs-svc/0".into(),
                why: "bad".into(),
            }],
            ..Memory::default()
        };
        let held_before =
            Memory { quarantine: vec![Quarantined { digest: OLD.into(), reason: "x".into() }], ..Memory::default() };
        let first = Subject { previous: None, previous_digests: vec![], ..subject() };
        let untagged = Subject { follows: false, ..subject() };
        let table = [
            (untagged, &Memory::default(), TD8, "nightshift rolls back only the services it rolls out"),
            (subject(), &failed_before, TD8, "failed its checks too"),
            (subject(), &held_before, TD8, "which is quarantined"),
            (
                subject(),
                &Memory::default(),
                "arn:aws:ecs:us-east-1:123456789012:task-definition/api:9",
                "runs api:9 now",
            ),
            (first, &Memory::default(), TD8, "nothing to roll back to"),
        ];
        for (subject, memory, running, want) in table {
            let plan = after(&Way::Rolling, &subject, &failed(), memory, running);
            assert_eq!(plan.rollback, None);
            let why = plan.no_rollback.unwrap();
            assert!(why.contains(want), "{why}");
        }
    }

    #[test]
    fn a_hook_is_answered_by_its_verdict_and_a_pass_quarantines_nothing() {
        let hook = Way::CodeDeploy { deployment_id: "d-A".into(), execution_id: "e".into() };
        let plan = after(&hook, &subject(), &passed(), &Memory::default(), TD7);
        assert_eq!(plan.answer, Some(("d-A".into(), "e".into(), HookAnswer::Succeeded)));
        assert_eq!(plan.writes.len(), 1);
        assert_eq!(plan.rollback, None);
        let plan = after(&hook, &subject(), &failed(), &Memory::default(), TD7);
        assert_eq!(plan.answer.unwrap().2, HookAnswer::Failed);
        // CodeDeploy rolls its own deployment back: nightshift does not.
        assert_eq!((plan.rollback, plan.no_rollback), (None, None));
        let plan = after(&Way::Ecs, &subject(), &failed(), &Memory::default(), TD8);
        assert_eq!((plan.answer, plan.rollback), (None, None));
    }
}
