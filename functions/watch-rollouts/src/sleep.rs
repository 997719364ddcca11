//! Lower environments go to sleep once promoted: a service tagged
//! `nightshift:sleep-after-promotion=true` is put to sleep (desired count 0,
//! its Application Auto Scaling target 0..0, what it ran with remembered in
//! the state table) once the digests it runs have reached every service that
//! follows it, here or in the accounts of `PROMOTE_TO_ACCOUNT_IDS`, and passed
//! there; its next rollout wakes it (`nightshift::rollout`). The decision. No AWS calls here.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::promote::Checks;

pub const SLEEP_TAG: &str = "nightshift:sleep-after-promotion";
/// How soon a sleep waiting for a follower's checks is decided again.
pub const RECHECK: Duration = Duration::minutes(10);
/// How long after its first check a sleep waits for the followers' checks.
pub const WAIT_LIMIT: Duration = Duration::days(1);

/// A check of a sleep to come, as its schedule's input: `{"sleep": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SleepCheck {
    /// The service that may sleep, `<cluster>/<service>`.
    pub service: String,
    /// When it was first checked: the wait ends a day later.
    pub since: DateTime<Utc>,
}

/// A service that follows the one that may sleep, as observed.
#[derive(Debug, Clone, PartialEq)]
pub struct FollowerNow {
    /// `[<account>:]<cluster>/<service>`.
    pub name: String,
    /// Each container's repository (registry and path) and the digest it runs, when pinned.
    pub images: Vec<(String, Option<String>)>,
    /// `Err`: its rollout is not done (why).
    pub settled: Result<(), String>,
    /// Its checks of the revision it runs.
    pub checks: Checks,
}

/// What the service that may sleep is now.
#[derive(Debug, Clone, PartialEq)]
pub struct SleeperNow<'a> {
    /// Its `nightshift:sleep-after-promotion`.
    pub tag: Option<&'a str>,
    pub desired: i32,
    /// It sleeps already (the state table says so).
    pub asleep: bool,
    /// Each container's repository and the digest it runs.
    pub images: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SleepPlan {
    Sleep(String),
    /// A follower's checks have not ended: decide again later.
    Wait(String),
    /// Not now (or not at all): why.
    Stay(String),
}

fn short(digest: &str) -> String {
    nightshift::quarantine::short(digest)
}

/// Sleeps when every follower that runs one of its repositories runs its
/// digest of it, is done rolling it out, and passed its checks (or has none).
pub fn decide(sleeper: &SleeperNow<'_>, followers: &[FollowerNow]) -> SleepPlan {
    match sleeper.tag.map(str::trim) {
        None => return SleepPlan::Stay(format!("not tagged {SLEEP_TAG}=true")),
        Some("true") => {}
        Some(other) => return SleepPlan::Stay(format!("{SLEEP_TAG} is {other:?}, not \"true\": it stays awake")),
    }
    if sleeper.asleep {
        return SleepPlan::Stay("asleep already".into());
    }
    if sleeper.desired == 0 {
        return SleepPlan::Stay("it runs no task already (desired count 0)".into());
    }
    if sleeper.images.is_empty() {
        return SleepPlan::Stay("its revision pins no image by digest: nothing to follow it".into());
    }
    let mut passed = Vec::new();
    let mut waiting = Vec::new();
    for follower in followers {
        let shared: Vec<&(String, String)> =
            sleeper.images.iter().filter(|(repo, _)| follower.images.iter().any(|(r, _)| r == repo)).collect();
        if shared.is_empty() {
            continue;
        }
        for (repo, digest) in &shared {
            let runs = follower.images.iter().any(|(r, d)| r == repo && d.as_deref() == Some(digest.as_str()));
            if !runs {
                return SleepPlan::Stay(format!("{} does not run {} yet", follower.name, short(digest)));
            }
        }
        if let Err(why) = &follower.settled {
            return SleepPlan::Stay(format!("{} is still rolling it out: {why}", follower.name));
        }
        match &follower.checks {
            Checks::Failed(why) => return SleepPlan::Stay(format!("{}'s checks failed: {why}", follower.name)),
            Checks::Pending => waiting.push(follower.name.clone()),
            Checks::None | Checks::Passed => passed.push(follower.name.clone()),
        }
    }
    if !waiting.is_empty() {
        return SleepPlan::Wait(format!("the checks of {} have not ended", waiting.join(", ")));
    }
    if passed.is_empty() {
        return SleepPlan::Stay("no service follows it (with one of its repositories)".into());
    }
    let digests: Vec<String> = sleeper.images.iter().map(|(_, d)| short(d)).collect();
    SleepPlan::Sleep(format!("{} promoted to {} and passed there", digests.join(" "), passed.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPO: &str = "210987654321.dkr.ecr.us-east-1.amazonaws.com/shop/api";
    const NEW: &str = "sha256:bbbbbbbbbbbbbbbb00000000000000000000000000000000000000000000000";
    const OLD: &str = "sha256:aaaaaaaaaaaaaaaa00000000000000000000000000000000000000000000000";

    fn sleeper(tag: Option<&str>) -> SleeperNow<'_> {
        SleeperNow { tag, desired: 2, asleep: false, images: vec![(REPO.into(), NEW.into())] }
    }

    fn follower(name: &str, digest: &str, settled: bool, checks: Checks) -> FollowerNow {
        FollowerNow {
            name: name.into(),
            images: vec![(REPO.into(), Some(digest.into())), ("public.ecr.aws/nginx/nginx".into(), None)],
            settled: if settled { Ok(()) } else { Err("2 deployments".into()) },
            checks,
        }
    }

    #[test]
    fn it_sleeps_once_every_follower_runs_its_digest_done_and_passed() {
        let prod = follower("123456789012:prod/shop", NEW, true, Checks::Passed);
        let qa = follower("qa/shop", NEW, true, Checks::None);
        let other = FollowerNow { images: vec![("elsewhere/x".into(), Some(OLD.into()))], ..prod.clone() };
        let table: [(SleeperNow<'_>, Vec<FollowerNow>, SleepPlan); 11] = [
            (
                sleeper(Some("true")),
                vec![prod.clone(), qa.clone(), other.clone()],
                SleepPlan::Sleep(
                    "sha256:bbbbbbbbbbbbbbbb promoted to 123456789012:prod/shop, qa/shop and passed there".into(),
                ),
            ),
            (
                sleeper(None),
                vec![prod.clone()],
                SleepPlan::Stay("not tagged nightshift:sleep-after-promotion=true".into()),
            ),
            (
                sleeper(Some("yes")),
                vec![prod.clone()],
                SleepPlan::Stay("nightshift:sleep-after-promotion is \"yes\", not \"true\": it stays awake".into()),
            ),
            (
                SleeperNow { asleep: true, ..sleeper(Some("true")) },
                vec![prod.clone()],
                SleepPlan::Stay("asleep already".into()),
            ),
            (
                SleeperNow { desired: 0, ..sleeper(Some("true")) },
                vec![prod.clone()],
                SleepPlan::Stay("it runs no task already (desired count 0)".into()),
            ),
            (
                sleeper(Some("true")),
                vec![prod.clone(), follower("qa/shop", OLD, true, Checks::None)],
                SleepPlan::Stay("qa/shop does not run sha256:bbbbbbbbbbbbbbbb yet".into()),
            ),
            (
                sleeper(Some("true")),
                vec![follower("qa/shop", NEW, false, Checks::None)],
                SleepPlan::Stay("qa/shop is still rolling it out: 2 deployments".into()),
            ),
            (
                sleeper(Some("true")),
                vec![follower("qa/shop", NEW, true, Checks::Failed("GET /health: 500".into()))],
                SleepPlan::Stay("qa/shop's checks failed: GET /health: 500".into()),
            ),
            (
                sleeper(Some("true")),
                vec![prod.clone(), follower("qa/shop", NEW, true, Checks::Pending)],
                SleepPlan::Wait("the checks of qa/shop have not ended".into()),
            ),
            (
                sleeper(Some("true")),
                vec![other],
                SleepPlan::Stay("no service follows it (with one of its repositories)".into()),
            ),
            (
                sleeper(Some("true")),
                vec![],
                SleepPlan::Stay("no service follows it (with one of its repositories)".into()),
            ),
        ];
        for (sleeper, followers, expected) in table {
            assert_eq!(decide(&sleeper, &followers), expected, "{sleeper:?}");
        }
    }
}
