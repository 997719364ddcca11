//! `scale-to-zero`: every few minutes, puts the scale group to sleep when it is
//! not needed, and wakes it when it is (an awake window has begun).
//!
//! Parse (schedule) -> observe (services, scalable targets, runs) -> plan
//! (need, sleep or wake) -> apply -> report. Fail safe: if anything it must
//! read fails, nothing is scaled down. A sleep that crossed an ingress (the
//! group's last activity moved while it ran) wakes the group again at once.

pub mod observe;
pub mod overrides;
pub mod plan;

use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use nightshift::Trigger;
use nightshift::scale::aws::{self as scale_aws, ScaleError, ServiceReport};
use nightshift::scale::plan::{self as group_plan, Decision};
use nightshift::scale::{LeftAlone, ScaleGroup, left_alone};
use nightshift::state::{StateTable, StateWrite};
use overrides::{OverrideReport, Rule};
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
    /// What a wake could not bring back (a scalable target at 0..0 with no capacity remembered).
    pub problems: Vec<String>,
    /// After a sleep: the group read again, and woken if ingress arrived meanwhile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_sleep: Option<AfterSleep>,
    /// An override by hand this run set (`{"override": {...}}`).
    #[serde(rename = "override", skip_serializing_if = "Option::is_none")]
    pub override_set: Option<OverrideReport>,
}

impl nightshift::notify::Notable for ScaleToZeroReport {
    fn notable(&self) -> Option<nightshift::notify::Notice> {
        let after = self.after_sleep.iter().flat_map(|a| &a.services);
        let services: Vec<&scale_aws::ServiceReport> = self.services.iter().chain(after).collect();
        if self.dry_run {
            return None;
        }
        scale_aws::notice(&self.group, &services, &self.reasons)
    }
}

impl nightshift::Measured for ScaleToZeroReport {
    fn metrics(&self) -> Vec<nightshift::Metric> {
        use nightshift::Metric;
        let after = self.after_sleep.iter().flat_map(|a| &a.services);
        let (slept, woken) = scale_aws::slept_and_woken(self.services.iter().chain(after));
        let awake = match self.decision {
            Decision::Wake => true,
            Decision::Sleep => self.after_sleep.as_ref().is_some_and(|a| a.woken),
            // Nothing to do: a needed group is up already, an unneeded one asleep already.
            Decision::None => self.needed,
        };
        vec![
            Metric::count("ServicesSlept", slept),
            Metric::count("ServicesWoken", woken),
            Metric::flag("GroupAwake", awake),
        ]
    }
}

/// The second look a sleep takes at the group once it has run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AfterSleep {
    pub last_activity: Option<DateTime<Utc>>,
    /// `true` when ingress arrived during the sleep, and the group was woken again.
    pub woken: bool,
    pub services: Vec<ServiceReport>,
}

pub struct ScaleToZero {
    group: ScaleGroup,
    /// Where overrides by hand are kept (`STATE_TABLE`); `None`: none are read or taken.
    state: Option<StateTable>,
}

impl ScaleToZero {
    pub fn new(group: ScaleGroup) -> Self {
        Self { group, state: None }
    }

    /// Reads (and takes) overrides by hand in this table.
    pub fn with_state(mut self, state: StateTable) -> Self {
        self.state = Some(state);
        self
    }

    /// Sets the override asked for (not with `DRY_RUN`); the override that rules now.
    async fn set_override(
        &self,
        asked: overrides::OverrideRequest,
        now: DateTime<Utc>,
    ) -> Result<(OverrideReport, nightshift::state::Override), ScaleError> {
        let group = &self.group.config.group;
        if asked.group != *group {
            return Err(ScaleError::InvalidEvent(format!(
                "override.group is {:?}, but this function scales the group {group:?} (SCALE_GROUP)",
                asked.group
            )));
        }
        let Some(state) = &self.state else {
            return Err(ScaleError::InvalidEvent(
                "overrides are kept in the state table, and STATE_TABLE is not set".into(),
            ));
        };
        let until = nightshift::state::ends_at(now, asked.minutes);
        let write = StateWrite::Override { group: group.clone(), awake: asked.awake, by: asked.by.clone(), until };
        let result = if self.group.config.dry_run {
            "would set"
        } else if state.write(&write, now).await? {
            "set"
        } else {
            "already"
        };
        let until = until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let report = OverrideReport {
            group: group.clone(),
            state: if asked.awake { "awake" } else { "asleep" },
            until: until.clone(),
            by: asked.by.clone(),
            result,
        };
        let stands = nightshift::state::Override {
            group: group.clone(),
            awake: asked.awake,
            by: asked.by,
            since: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            until,
        };
        Ok((report, stands))
    }

    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<ScaleToZeroReport, ScaleError> {
        let mut dry = None;
        let this =
            nightshift::config::dry_if_asked(self, self.group.config.dry_run, &event.payload, &mut dry, Self::dry_twin);
        nightshift::conclude(FUNCTION, this.run(event).await)
    }

    /// This function as with `DRY_RUN`, for one run asked to change nothing (`"dryRun": true`).
    fn dry_twin(&self) -> Self {
        let group = ScaleGroup {
            config: nightshift::scale::ScaleConfig { dry_run: true, ..self.group.config.clone() },
            ecs: self.group.ecs.clone(),
            scaling: self.group.scaling.clone(),
            clock: self.group.clock.clone(),
        };
        Self { group, state: self.state.clone() }
    }

    async fn run(&self, event: LambdaEvent<Value>) -> nightshift::Ran<ScaleToZeroReport, ScaleError> {
        let trigger = Trigger::parse(&event.payload).map_err(ScaleError::InvalidEvent)?;
        let asked = overrides::parse(&event.payload).map_err(ScaleError::InvalidEvent)?;
        let now = self.group.clock.now();
        let (override_set, found) = match asked {
            Some(asked) => {
                let (report, stands) = self.set_override(asked, now).await?;
                (Some(report), Some(stands))
            }
            None => match &self.state {
                Some(state) => {
                    let found = state.override_of(&self.group.config.group).await;
                    (None, found?)
                }
                None => (None, None),
            },
        };
        let rule = overrides::rule(found.as_ref(), now);
        // Every read comes first; any failure ends the run before anything changes.
        let members = scale_aws::observe_members(&self.group).await?;
        let runs = observe::runs_in_flight(&self.group.ecs, &self.group.config.clusters).await?;
        let last_activity = group_plan::last_activity(&members);
        let config = &self.group.config;
        let no_windows =
            nightshift::window::WeeklyWindows { windows: Vec::new(), timezone: config.schedule.timezone.clone() };
        let schedule = if matches!(rule, Rule::Asleep(_)) { &no_windows } else { &config.schedule };
        let mut need = group_plan::assess(now, schedule, config.idle(), last_activity, Some(&runs));
        match rule {
            Rule::Awake(why) => {
                need.needed = true;
                need.reasons.insert(0, why);
            }
            Rule::Asleep(why) => need.reasons.insert(0, why),
            Rule::Windows => {}
        }
        let (decision, plans) = plan::decide(&need, &members);
        info!(group = %self.group.config.group, ?decision, reasons = ?need.reasons, members = members.len(), "decision");
        let problems = if decision == Decision::Wake { group_plan::wake_problems(&members) } else { Vec::new() };
        let (services, mut failures) = scale_aws::execute(&self.group, &members, plans).await;
        let after_sleep = if decision == Decision::Sleep && !self.group.config.dry_run {
            let (after, wake_failures) = self.wake_if_ingress_crossed(&members, last_activity).await?;
            failures.extend(wake_failures);
            Some(after)
        } else {
            None
        };
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
            problems,
            after_sleep,
            override_set,
        };
        Ok((report, (!failures.is_empty()).then_some(ScaleError::Failed { failures })))
    }

    /// scale-on-ingress may record activity while this sleep runs, and wake
    /// what it finds asleep before this sleep has finished. So once the sleep
    /// is done the group is read again: when its last activity has moved, the
    /// whole group wakes, each target restored to the capacity remembered or,
    /// where a crossing wake took that memory away, the capacity read before.
    async fn wake_if_ingress_crossed(
        &self,
        before: &[nightshift::scale::Member],
        decided_on: Option<DateTime<Utc>>,
    ) -> Result<(AfterSleep, Vec<String>), ScaleError> {
        let mut members = scale_aws::observe_members(&self.group).await?;
        let last_activity = group_plan::last_activity(&members);
        if last_activity <= decided_on {
            return Ok((AfterSleep { last_activity, woken: false, services: Vec::new() }, Vec::new()));
        }
        plan::recall_capacity(&mut members, before);
        info!(group = %self.group.config.group, ?last_activity, "ingress arrived during the sleep; waking again");
        let (services, failures) = scale_aws::execute(&self.group, &members, group_plan::plan_wake(&members)).await;
        Ok((AfterSleep { last_activity, woken: true, services }, failures))
    }
}
