//! `scale-to-zero`'s own decisions: whether the group sleeps, wakes or stays,
//! the sleep's steps, and the capacity a crossing wake took away. No AWS calls here.

use nightshift::scale::plan::{Decision, Member, MemberPlan, Need, Step, by_wake_order, plan_wake};

/// Sleep: in reverse wake order, remember each scalable target's capacity and
/// set it to 0..0, then the desired count to 0. Already asleep: nothing.
pub fn plan_sleep(members: &[Member]) -> Vec<MemberPlan> {
    by_wake_order(members)
        .into_iter()
        .rev()
        .filter(|&i| members[i].problem.is_none())
        .filter_map(|i| {
            let m = &members[i];
            let mut steps = Vec::new();
            if let Some((min, max)) = m.target
                && (min, max) != (0, 0)
            {
                // A target at 0..0 with a remembered capacity slept already; its memory stays.
                steps.push(Step::RememberCapacity { min, max });
                steps.push(Step::SetCapacity { min: 0, max: 0 });
            }
            if m.desired > 0 {
                steps.push(Step::SetDesired { count: 0 });
            }
            (!steps.is_empty()).then_some(MemberPlan { member: i, steps })
        })
        .collect()
}

/// `scale-to-zero`'s decision: sleep a group not needed that is up, wake a
/// needed group that sleeps, else nothing.
pub fn decide(need: &Need, members: &[Member]) -> (Decision, Vec<MemberPlan>) {
    if need.needed {
        let wake = plan_wake(members);
        if wake.is_empty() { (Decision::None, wake) } else { (Decision::Wake, wake) }
    } else {
        let sleep = plan_sleep(members);
        if sleep.is_empty() { (Decision::None, sleep) } else { (Decision::Sleep, sleep) }
    }
}

/// The capacity a sleep read, for a member whose memory of it another run
/// removed while this sleep put its target to 0..0 again (a wake that crossed
/// the sleep). `before` is the members as the sleep observed them.
pub fn recall_capacity(members: &mut [Member], before: &[Member]) {
    for m in members.iter_mut().filter(|m| m.remembered.is_none() && m.target == Some((0, 0))) {
        let read = before.iter().find(|b| b.arn == m.arn).and_then(|b| b.target).filter(|t| *t != (0, 0));
        m.remembered = read;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nightshift::scale::plan::wake_problems;

    fn member(service: &str, wake_order: i64, desired: i32) -> Member {
        Member {
            cluster: "dagster".into(),
            service: service.into(),
            arn: format!("arn:aws:ecs:eu-west-1:123456789012:service/dagster/{service}"),
            desired,
            awake_count: 1,
            wake_order,
            ..Member::default()
        }
    }

    #[test]
    fn sleep_goes_in_reverse_wake_order_and_remembers_the_capacity() {
        let mut code = member("code-location", 0, 1);
        code.target = Some((1, 4));
        let members = vec![member("webserver", 1, 1), code, member("daemon", 1, 2)];
        let plan = plan_sleep(&members);
        let order: Vec<&str> = plan.iter().map(|p| members[p.member].service.as_str()).collect();
        assert_eq!(order, ["webserver", "daemon", "code-location"]);
        assert_eq!(
            plan[2].steps,
            [
                Step::RememberCapacity { min: 1, max: 4 },
                Step::SetCapacity { min: 0, max: 0 },
                Step::SetDesired { count: 0 }
            ]
        );
        assert_eq!(plan[0].steps, [Step::SetDesired { count: 0 }]);
    }

    #[test]
    fn an_asleep_group_does_not_sleep_again_and_an_awake_one_does_not_wake_again() {
        let mut code = member("code-location", 0, 0);
        code.target = Some((0, 0));
        code.remembered = Some((1, 4));
        let asleep = vec![member("daemon", 1, 0), code];
        assert!(plan_sleep(&asleep).is_empty());
        let mut code = member("code-location", 0, 3);
        code.target = Some((1, 4));
        let awake = vec![member("daemon", 1, 1), code];
        assert!(plan_wake(&awake).is_empty(), "a service scaled past its awake count stays as it is");
    }

    #[test]
    fn the_decision_follows_the_need_and_the_state() {
        let need = |needed| Need { needed, reasons: vec![] };
        let awake = vec![member("daemon", 1, 1)];
        let asleep = vec![member("daemon", 1, 0)];
        assert_eq!(decide(&need(false), &awake).0, Decision::Sleep);
        assert_eq!(decide(&need(false), &asleep).0, Decision::None);
        assert_eq!(decide(&need(true), &asleep).0, Decision::Wake);
        assert_eq!(decide(&need(true), &awake).0, Decision::None);
    }

    #[test]
    fn a_member_with_unreadable_tags_is_left_alone() {
        let mut odd = member("odd", 0, 1);
        odd.problem = Some("nightshift:awake-count \"many\" is not a whole number".into());
        assert!(plan_sleep(std::slice::from_ref(&odd)).is_empty());
        odd.desired = 0;
        assert!(plan_wake(std::slice::from_ref(&odd)).is_empty());
    }

    #[test]
    fn a_target_at_zero_with_nothing_remembered_is_a_problem_unless_the_sleep_recalls_it() {
        let mut code = member("code-location", 0, 0);
        code.target = Some((0, 0));
        let mut members = vec![code.clone()];
        assert_eq!(
            wake_problems(&members),
            ["dagster/code-location: its scalable target is at 0..0 and no capacity is remembered \
              (nightshift:min-capacity, nightshift:max-capacity); set its capacity by hand"]
        );
        let mut before = code.clone();
        before.target = Some((1, 4));
        recall_capacity(&mut members, &[before]);
        assert_eq!(members[0].remembered, Some((1, 4)));
        assert!(wake_problems(&members).is_empty());
        assert_eq!(
            plan_wake(&members)[0].steps,
            [Step::SetCapacity { min: 1, max: 4 }, Step::ForgetCapacity, Step::SetDesired { count: 1 }]
        );
    }
}
