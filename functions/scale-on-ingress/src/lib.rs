//! `scale-on-ingress`: files landing in the ingress bucket record the group's
//! last activity (`nightshift:last-activity`) and wake the group if it sleeps.
//!
//! Parse (S3 or EventBridge) -> observe (services, scalable targets) -> plan
//! (activity tags) -> apply -> observe again -> plan (wake) -> apply -> report.
//!
//! The wake is planned from what the group is after the activity is recorded:
//! a scale-to-zero that read the old activity and sleeps meanwhile either
//! sees the new one when it looks again after its sleep (and wakes the group),
//! or has finished before this second look, which then finds it asleep.

pub mod event;
pub mod plan;

use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use nightshift::scale::aws::{self as scale_aws, ScaleError, ServiceReport};
use nightshift::scale::plan::{self as group_plan, Decision};
use nightshift::scale::{LeftAlone, ScaleGroup, left_alone};
use serde::Serialize;
use serde_json::Value;
use tracing::info;

use event::IngressEvent;

pub const FUNCTION: &str = "scale-on-ingress";
/// Keys listed in the report; the rest are counted.
const KEYS_REPORTED: usize = 20;

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct IngressReport {
    pub function: &'static str,
    pub dry_run: bool,
    pub group: String,
    /// Set when the event had nothing to act on: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
    pub keys_total: usize,
    pub keys: Vec<String>,
    /// The activity time recorded: the latest event time, never after now.
    pub activity: Option<DateTime<Utc>>,
    /// Services whose `nightshift:last-activity` was (or would be) moved.
    pub activity_recorded: Vec<String>,
    pub decision: Option<Decision>,
    /// Whether the group is needed now (the ingress is recent, or a window is open).
    pub needed: bool,
    pub reasons: Vec<String>,
    pub services: Vec<ServiceReport>,
    pub left_alone: Vec<LeftAlone>,
    /// What the wake could not bring back (a scalable target at 0..0 with no capacity remembered).
    pub problems: Vec<String>,
}

impl nightshift::notify::Notable for IngressReport {
    fn notable(&self) -> Option<nightshift::notify::Notice> {
        if self.dry_run {
            return None;
        }
        let services: Vec<&scale_aws::ServiceReport> = self.services.iter().collect();
        scale_aws::notice(&self.group, &services, &self.reasons)
    }
}

impl nightshift::Measured for IngressReport {
    fn metrics(&self) -> Vec<nightshift::Metric> {
        use nightshift::Metric;
        let (slept, woken) = scale_aws::slept_and_woken(&self.services);
        // A needed group is woken here, or was up already; ingress never puts it to sleep.
        let mut metrics = vec![Metric::count("ServicesSlept", slept), Metric::count("ServicesWoken", woken)];
        // An ignored event did not look at the group.
        if self.ignored.is_none() {
            metrics.push(Metric::flag("GroupAwake", self.decision == Some(Decision::Wake) || self.needed));
        }
        metrics
    }
}

pub struct ScaleOnIngress {
    group: ScaleGroup,
}

impl ScaleOnIngress {
    pub fn new(group: ScaleGroup) -> Self {
        Self { group }
    }

    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<IngressReport, ScaleError> {
        nightshift::conclude(FUNCTION, self.run(event).await)
    }

    async fn run(&self, event: LambdaEvent<Value>) -> nightshift::Ran<IngressReport, ScaleError> {
        let mut report = IngressReport {
            function: FUNCTION,
            dry_run: self.group.config.dry_run,
            group: self.group.config.group.clone(),
            ..IngressReport::default()
        };
        let ingress =
            match event::parse(&event.payload, &self.group.config.ingress_prefix).map_err(ScaleError::InvalidEvent)? {
                IngressEvent::Ignored(why) => {
                    info!(reason = %why, "event ignored");
                    report.ignored = Some(why);
                    return Ok((report, None));
                }
                IngressEvent::Ingress(ingress) => ingress,
            };
        let now = self.group.clock.now();
        let at = ingress.at.min(now);
        report.keys_total = ingress.keys.len();
        report.keys = ingress.keys.into_iter().take(KEYS_REPORTED).collect();
        report.activity = Some(at);

        let members = scale_aws::observe_members(&self.group).await?;
        let activity = plan::plan_activity(&members, at);
        report.activity_recorded = activity.iter().map(|p| members[p.member].service.clone()).collect();
        let recorded = !activity.is_empty() && !self.group.config.dry_run;
        let (_, mut failures) = scale_aws::execute(&self.group, &members, activity).await;
        // A newly recorded activity: wake from the group as it is now, not as it was before.
        let members = if recorded { scale_aws::observe_members(&self.group).await? } else { members };

        // Ingress only ever wakes: runs in flight matter for sleeping, which is scale-to-zero's.
        let last = group_plan::last_activity(&members).max(Some(at));
        let need = group_plan::assess(now, &self.group.config.schedule, self.group.config.idle(), last, None);
        let wake = if need.needed { group_plan::plan_wake(&members) } else { Vec::new() };
        report.decision = Some(if wake.is_empty() { Decision::None } else { Decision::Wake });
        report.needed = need.needed;
        if need.needed {
            report.problems = group_plan::wake_problems(&members);
        }
        report.reasons = need.reasons;
        info!(group = %self.group.config.group, keys = report.keys_total, %at, decision = ?report.decision, "ingress");
        let (services, wake_failures) = scale_aws::execute(&self.group, &members, wake).await;
        failures.extend(wake_failures);
        report.services = services;
        report.left_alone = left_alone(&members);
        Ok((report, (!failures.is_empty()).then_some(ScaleError::Failed { failures })))
    }
}
