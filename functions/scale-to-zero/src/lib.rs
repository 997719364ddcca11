//! `scale-to-zero`: every few minutes, puts the scale group to sleep when it is
//! not needed, and wakes it when it is (an awake window has begun).
//!
//! Parse (schedule) -> observe (services, scalable targets, runs) -> plan
//! (need, sleep or wake) -> apply -> report. Fail safe: if anything it must
//! read fails, nothing is scaled down.

use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use nightshift::Trigger;
use nightshift::scale::aws::{self as scale_aws, ScaleError, ServiceReport};
use nightshift::scale::plan::{self, Decision};
use nightshift::scale::{LeftAlone, ScaleGroup, left_alone};
use serde::Serialize;
use serde_json::Value;
use tracing::info;

pub const FUNCTION: &str = "scale-to-zero";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScaleToZeroReport {
    pub function: &'static str,
    pub dry_run: bool,
    pub trigger: Trigger,
    pub group: String,
    pub decision: Decision,
    pub needed: bool,
    /// Which conditions held, in words.
    pub reasons: Vec<String>,
    pub last_activity: Option<DateTime<Utc>>,
    pub runs_in_flight: Vec<String>,
    /// What was done (with `DRY_RUN`, would be done) to each service, in order.
    pub services: Vec<ServiceReport>,
    pub left_alone: Vec<LeftAlone>,
}

pub struct ScaleToZero {
    group: ScaleGroup,
}

impl ScaleToZero {
    pub fn new(group: ScaleGroup) -> Self {
        Self { group }
    }

    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<ScaleToZeroReport, ScaleError> {
        let trigger = Trigger::parse(&event.payload);
        let now = self.group.clock.now();
        // Every read comes first; any failure ends the run before anything changes.
        let members = scale_aws::observe_members(&self.group).await?;
        let runs = scale_aws::runs_in_flight(&self.group.ecs, &self.group.config.clusters).await?;
        let last_activity = plan::last_activity(&members);
        let need = plan::assess(now, &self.group.config.schedule, self.group.config.idle(), last_activity, Some(&runs));
        let (decision, plans) = plan::decide(&need, &members);
        info!(group = %self.group.config.group, ?decision, reasons = ?need.reasons, members = members.len(), "decision");
        let (services, failures) = scale_aws::execute(&self.group, &members, plans).await;
        let report = ScaleToZeroReport {
            function: FUNCTION,
            dry_run: self.group.config.dry_run,
            trigger,
            group: self.group.config.group.clone(),
            decision,
            needed: need.needed,
            reasons: need.reasons,
            last_activity,
            runs_in_flight: runs,
            services,
            left_alone: left_alone(&members),
        };
        nightshift::emit(FUNCTION, &report);
        if failures.is_empty() { Ok(report) } else { Err(ScaleError::Failed { failures }) }
    }
}
