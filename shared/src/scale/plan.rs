//! Is the group needed, and what sleeping or waking it takes. No AWS calls.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::window::WeeklyWindows;

/// A service of the group, as observed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Member {
    pub cluster: String,
    pub service: String,
    pub arn: String,
    pub desired: i32,
    /// `nightshift:awake-count`, default 1.
    pub awake_count: i32,
    /// `nightshift:wake-order`, default 0: lower wakes first and sleeps last.
    pub wake_order: i64,
    /// `nightshift:last-activity`.
    pub last_activity: Option<DateTime<Utc>>,
    /// `nightshift:min-capacity` and `nightshift:max-capacity`, set while asleep.
    pub remembered: Option<(i32, i32)>,
    /// The Application Auto Scaling target's (min, max), if it has one.
    pub target: Option<(i32, i32)>,
    /// Tags that could not be read, or no room for the tags nightshift would
    /// write; such a service is left alone.
    pub problem: Option<String>,
    /// How many tags the service carries (those starting `aws:` aside).
    pub tag_count: usize,
}

/// Whether the group is needed now, and every reason, in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Need {
    pub needed: bool,
    pub reasons: Vec<String>,
}

fn minutes(d: Duration) -> i64 {
    d.num_minutes()
}

/// The group is needed when now is inside an awake window, the last ingress
/// was less than `idle` ago, or a Dagster run is in flight. `runs` is `None`
/// when they were not looked at (waking on ingress does not need them).
pub fn assess(
    now: DateTime<Utc>,
    schedule: &WeeklyWindows,
    idle: Duration,
    last_activity: Option<DateTime<Utc>>,
    runs: Option<&[String]>,
) -> Need {
    let mut reasons = Vec::new();
    let mut needed = false;
    match schedule.window_at(now) {
        Some(window) => {
            needed = true;
            reasons.push(format!("inside {window} {}", crate::window::zone_name(&schedule.timezone)));
        }
        None if !schedule.windows.is_empty() => {
            reasons.push(format!("outside the awake windows ({})", crate::window::zone_name(&schedule.timezone)))
        }
        None => {}
    }
    match last_activity {
        Some(at) if now - at < idle => {
            needed = true;
            reasons.push(format!("ingress {} min ago < {}", minutes(now - at).max(0), minutes(idle)));
        }
        Some(at) => reasons.push(format!("idle {} min >= {}", minutes(now - at), minutes(idle))),
        None => reasons.push("no ingress recorded".into()),
    }
    match runs {
        Some([]) => reasons.push("no run in flight".into()),
        Some(runs) => {
            needed = true;
            reasons.extend(runs.iter().map(|run| format!("run {run} in flight")));
        }
        None => {}
    }
    Need { needed, reasons }
}

/// Marks the members that have no room for the tags nightshift would write
/// on them (ECS takes at most 50): the last activity, and the capacity a sleep
/// remembers. They are left alone rather than half done.
pub fn mark_tag_room(members: &mut [Member]) {
    for m in members.iter_mut().filter(|m| m.problem.is_none()) {
        let mut needed = usize::from(m.last_activity.is_none());
        if m.remembered.is_none() && m.target.is_some_and(|t| t != (0, 0)) {
            needed += 2;
        }
        if m.tag_count + needed > crate::ecs::MAX_TAGS {
            m.problem = Some(format!(
                "it carries {} tags and nightshift may need {needed} more; ECS allows {} on a service",
                m.tag_count,
                crate::ecs::MAX_TAGS
            ));
        }
    }
}

/// Members a wake cannot fully bring back: a scalable target at 0..0 with no
/// capacity remembered (someone set it so, or the memory was lost).
pub fn wake_problems(members: &[Member]) -> Vec<String> {
    members
        .iter()
        .filter(|m| m.problem.is_none() && m.target == Some((0, 0)) && m.remembered.is_none())
        .map(|m| {
            format!(
                "{}/{}: its scalable target is at 0..0 and no capacity is remembered \
                 (nightshift:min-capacity, nightshift:max-capacity); set its capacity by hand",
                m.cluster, m.service
            )
        })
        .collect()
}

/// The latest activity recorded on any member.
pub fn last_activity(members: &[Member]) -> Option<DateTime<Utc>> {
    members.iter().filter_map(|m| m.last_activity).max()
}

/// One change to one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    /// Tag the service with the target's awake capacity.
    RememberCapacity { min: i32, max: i32 },
    /// Register the scalable target with this capacity.
    SetCapacity { min: i32, max: i32 },
    /// Remove the remembered capacity tags.
    ForgetCapacity,
    /// Set the service's desired count.
    SetDesired { count: i32 },
    /// Tag the service with the time of the last ingress.
    RecordActivity { at: DateTime<Utc> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Sleep,
    Wake,
    None,
}

/// The steps for one member, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberPlan {
    pub member: usize,
    pub steps: Vec<Step>,
}

/// The members' indices in wake order (then cluster and service).
pub fn by_wake_order(members: &[Member]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&members[a], &members[b]);
        (a.wake_order, &a.cluster, &a.service).cmp(&(b.wake_order, &b.cluster, &b.service))
    });
    order
}

/// Wake: in wake order, restore each remembered capacity, then set the
/// desired count to the awake count. Services already up are left as they are.
pub fn plan_wake(members: &[Member]) -> Vec<MemberPlan> {
    by_wake_order(members)
        .into_iter()
        .filter(|&i| members[i].problem.is_none())
        .filter_map(|i| {
            let m = &members[i];
            let mut steps = Vec::new();
            if let Some((min, max)) = m.remembered {
                if m.target.is_some() {
                    steps.push(Step::SetCapacity { min, max });
                }
                steps.push(Step::ForgetCapacity);
            }
            if m.desired == 0 && m.awake_count > 0 {
                steps.push(Step::SetDesired { count: m.awake_count });
            }
            (!steps.is_empty()).then_some(MemberPlan { member: i, steps })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::{Tz, zone};
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 3, 0, 0).unwrap() // a Saturday night
    }

    fn member(service: &str, wake_order: i64, desired: i32) -> Member {
        Member {
            cluster: "dagster".into(),
            service: service.into(),
            arn: format!("arn:aws:ecs:eu-west-1:123456789012:service/dagster/{service}"),
            desired,
            awake_count: 1,
            wake_order,
            last_activity: None,
            remembered: None,
            target: None,
            problem: None,
            tag_count: 3,
        }
    }

    fn no_windows() -> WeeklyWindows {
        WeeklyWindows::parse("", Tz::UTC).unwrap()
    }

    #[test]
    fn the_group_is_needed_for_a_window_recent_ingress_or_a_run_and_says_which() {
        let idle = Duration::minutes(30);
        let london = WeeklyWindows::parse("Sat 02:00-04:00", zone("Europe/London").unwrap()).unwrap();
        // (schedule, minutes since the last ingress, runs in flight, needed, reasons)
        type Row<'a> = (&'a WeeklyWindows, Option<i64>, &'a [&'a str], bool, &'a [&'a str]);
        let table: [Row; 6] = [
            (&no_windows(), None, &[], false, &["no ingress recorded", "no run in flight"]),
            (&no_windows(), Some(42), &[], false, &["idle 42 min >= 30", "no run in flight"]),
            (&no_windows(), Some(30), &[], false, &["idle 30 min >= 30", "no run in flight"]),
            (&no_windows(), Some(29), &[], true, &["ingress 29 min ago < 30", "no run in flight"]),
            (&no_windows(), Some(600), &["7f3a"], true, &["idle 600 min >= 30", "run 7f3a in flight"]),
            (
                &london,
                Some(600),
                &[],
                true,
                &["inside Sat 02:00-04:00 Europe/London", "idle 600 min >= 30", "no run in flight"],
            ),
        ];
        for (schedule, ago, runs, needed, reasons) in table {
            let runs: Vec<String> = runs.iter().map(|r| (*r).to_owned()).collect();
            let need = assess(now(), schedule, idle, ago.map(|m| now() - Duration::minutes(m)), Some(&runs));
            assert_eq!(
                need,
                Need { needed, reasons: reasons.iter().map(|r| (*r).to_owned()).collect() },
                "{ago:?} {runs:?}"
            );
        }
        let unread = assess(now(), &no_windows(), idle, Some(now()), None);
        assert_eq!(unread.reasons, ["ingress 0 min ago < 30"], "runs not looked at are not reported");
    }

    #[test]
    fn wake_goes_in_wake_order_and_restores_the_capacity() {
        let mut code = member("code-location", 0, 0);
        code.target = Some((0, 0));
        code.remembered = Some((1, 4));
        let mut web = member("webserver", 1, 0);
        web.awake_count = 2;
        let members = vec![web, member("daemon", 1, 0), code];
        let plan = plan_wake(&members);
        let order: Vec<&str> = plan.iter().map(|p| members[p.member].service.as_str()).collect();
        assert_eq!(order, ["code-location", "daemon", "webserver"]);
        assert_eq!(
            plan[0].steps,
            [Step::SetCapacity { min: 1, max: 4 }, Step::ForgetCapacity, Step::SetDesired { count: 1 }]
        );
        assert_eq!(plan[2].steps, [Step::SetDesired { count: 2 }]);
    }

    #[test]
    fn a_service_without_room_for_nightshifts_tags_is_left_alone() {
        // (tags it carries, its target, remembered, last activity known, left alone?)
        let table = [
            (47, Some((1, 4)), None, false, false),
            (48, Some((1, 4)), None, false, true),
            (48, Some((1, 4)), None, true, false),
            (49, None, None, false, false),
            (50, None, None, false, true),
            (50, Some((0, 0)), Some((1, 4)), true, false),
        ];
        for (tags, target, remembered, active, alone) in table {
            let mut m = member("daemon", 1, 1);
            (m.tag_count, m.target, m.remembered) = (tags, target, remembered);
            m.last_activity = active.then(now);
            let mut members = [m];
            mark_tag_room(&mut members);
            assert_eq!(members[0].problem.is_some(), alone, "{tags} {target:?} {remembered:?} {active}");
        }
    }
}
