//! `scale-to-zero`: every few minutes, puts the scale group to sleep when it is
//! not needed, and wakes it when it is (an awake window has begun).
//!
//! Parse (schedule) -> observe (services, scalable targets, runs) -> plan
//! (need, sleep or wake) -> apply -> report. Fail safe: if anything it must
//! read fails, nothing is scaled down.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use nightshift::scale::aws::{self as scale_aws, ScaleError, ServiceReport};
use nightshift::scale::plan::{self, Decision};
use nightshift::scale::{LeftAlone, ScaleConfig, left_alone};
use nightshift::{Clock, Trigger};
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
    config: ScaleConfig,
    ecs: aws_sdk_ecs::Client,
    scaling: aws_sdk_applicationautoscaling::Client,
    clock: Arc<dyn Clock>,
}

impl ScaleToZero {
    pub fn new(
        config: ScaleConfig,
        ecs: aws_sdk_ecs::Client,
        scaling: aws_sdk_applicationautoscaling::Client,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { config, ecs, scaling, clock }
    }

    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<ScaleToZeroReport, ScaleError> {
        let trigger = Trigger::parse(&event.payload);
        let now = self.clock.now();
        // Every read comes first; any failure ends the run before anything changes.
        let members = scale_aws::observe_members(&self.ecs, &self.scaling, &self.config).await?;
        let runs = scale_aws::runs_in_flight(&self.ecs, &self.config.clusters).await?;
        let last_activity = plan::last_activity(&members);
        let need = plan::assess(now, &self.config.schedule, self.config.idle(), last_activity, Some(&runs));
        let (decision, plans) = plan::decide(&need, &members);
        info!(group = %self.config.group, ?decision, reasons = ?need.reasons, members = members.len(), "decision");
        let (services, failures) =
            scale_aws::execute(&self.ecs, &self.scaling, &members, plans, self.config.dry_run).await;
        let report = ScaleToZeroReport {
            function: FUNCTION,
            dry_run: self.config.dry_run,
            trigger,
            group: self.config.group.clone(),
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
