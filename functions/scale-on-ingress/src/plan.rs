//! `scale-on-ingress`'s own decision: which services' recorded activity moves. No AWS calls here.

use chrono::{DateTime, Duration, Utc};
use nightshift::scale::plan::{Member, MemberPlan, Step};

/// The members whose recorded activity must move to `at`: never backwards,
/// and not when the stored time is less than a minute older.
pub fn plan_activity(members: &[Member], at: DateTime<Utc>) -> Vec<MemberPlan> {
    (0..members.len())
        .filter(|&i| members[i].problem.is_none())
        .filter(|&i| members[i].last_activity.is_none_or(|stored| at - stored >= Duration::minutes(1)))
        .map(|i| MemberPlan { member: i, steps: vec![Step::RecordActivity { at }] })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 3, 0, 0).unwrap()
    }

    fn member(service: &str, wake_order: i64, desired: i32) -> Member {
        Member { cluster: "dagster".into(), service: service.into(), desired, wake_order, ..Member::default() }
    }

    #[test]
    fn activity_moves_forward_only_and_at_most_once_a_minute() {
        let at = now();
        let with = |ago: Option<i64>| {
            let mut m = member("daemon", 1, 1);
            m.last_activity = ago.map(|s| at - Duration::seconds(s));
            m
        };
        let table = [(None, true), (Some(60), true), (Some(59), false), (Some(0), false), (Some(-300), false)];
        for (ago, writes) in table {
            assert_eq!(!plan_activity(&[with(ago)], at).is_empty(), writes, "stored {ago:?} s before");
        }
    }
}
