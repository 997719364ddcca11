//! The decision: how an ECS rollout ended, from one deployment event and the
//! service as ECS describes it now, and whether that was told already (the
//! record `nightshift:told` on the service). No AWS calls here.
//!
//! ECS sends, for a rollout: IN_PROGRESS, then COMPLETED, or FAILED (with the
//! circuit breaker), after which, with rollback on, it starts a rollback: a
//! new deployment IN_PROGRESS whose reason says "rolling back to deploymentId
//! …", ending COMPLETED or FAILED. Events come twice and out of order.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The service tag in which an older release recorded which deployments'
/// outcomes were told (read until carried into the state table).
pub const TOLD_TAG: &str = "nightshift:told";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    #[serde(rename = "succeeded")]
    Succeeded,
    #[serde(rename = "failed")]
    Failed,
    #[serde(rename = "rolled back")]
    RolledBack,
    #[serde(rename = "rollback failed")]
    RollbackFailed,
}

impl Outcome {
    pub fn words(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::RolledBack => "rolled back",
            Self::RollbackFailed => "rollback failed",
        }
    }

    /// As the record writes it.
    fn code(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::RolledBack => "rolled-back",
            Self::RollbackFailed => "rollback-failed",
        }
    }

    /// Whether the rollout's images go to quarantine.
    pub fn quarantines(self) -> bool {
        matches!(self, Self::Failed | Self::RolledBack)
    }

    /// Told at `NOTIFY_LEVEL=failures` too.
    pub fn is_failure(self) -> bool {
        !matches!(self, Self::Succeeded)
    }
}

/// What the record says of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Told(Outcome),
    /// A rollback deployment: its completion tells nothing (the rolled-back outcome did).
    Rollback,
}

impl Mark {
    /// As the state table (and an older release's tag) writes it.
    pub fn code(self) -> &'static str {
        match self {
            Self::Told(outcome) => outcome.code(),
            Self::Rollback => "rollback",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Some(match code {
            "succeeded" => Self::Told(Outcome::Succeeded),
            "failed" => Self::Told(Outcome::Failed),
            "rolled-back" => Self::Told(Outcome::RolledBack),
            "rollback-failed" => Self::Told(Outcome::RollbackFailed),
            "rollback" => Self::Rollback,
            _ => return None,
        })
    }
}

/// The told marks of a service: the state table's, else an older release's
/// tag (`<deployment id>=<mark>` entries, the most recent first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToldRecord {
    pub entries: Vec<(String, Mark)>,
}

impl ToldRecord {
    pub fn parse(value: &str) -> Self {
        let entries = value
            .split_whitespace()
            .filter_map(|entry| {
                let (id, code) = entry.rsplit_once('=')?;
                Some((id.to_owned(), Mark::parse(code)?))
            })
            .collect();
        Self { entries }
    }

    pub fn mark(&self, id: &str) -> Option<Mark> {
        self.entries.iter().find(|(i, _)| i == id).map(|(_, m)| *m)
    }

    fn told(&self, id: &str) -> bool {
        matches!(self.mark(id), Some(Mark::Told(_)))
    }

    /// The record with `marks` put first, replacing those deployments' earlier marks.
    pub fn with(&self, marks: &[(String, Mark)]) -> Self {
        let mut entries: Vec<(String, Mark)> = marks.to_vec();
        entries.extend(self.entries.iter().filter(|(id, _)| !marks.iter().any(|(m, _)| m == id)).cloned());
        Self { entries }
    }
}

/// An ECS deployment's place in its service, as DescribeServices names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentStatus {
    /// PRIMARY: the newest, the one the service moves to.
    Primary,
    /// ACTIVE: an older one that still runs tasks.
    Active,
    /// INACTIVE, or a status this code does not know.
    Other,
}

impl DeploymentStatus {
    pub fn parse(status: &str) -> Self {
        match status {
            "PRIMARY" => Self::Primary,
            "ACTIVE" => Self::Active,
            _ => Self::Other,
        }
    }
}

/// How far an ECS deployment's rollout got, as DescribeServices names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutState {
    InProgress,
    Completed,
    Failed,
}

impl RolloutState {
    /// `None` for a state this code does not know (or none at all).
    pub fn parse(state: &str) -> Option<Self> {
        match state {
            "IN_PROGRESS" => Some(Self::InProgress),
            "COMPLETED" => Some(Self::Completed),
            "FAILED" => Some(Self::Failed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
        }
    }
}

/// How a CodeDeploy deployment ended: the event's `detail.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeDeployEndState {
    Success,
    Failure,
    Stop,
}

impl CodeDeployEndState {
    /// `None` for a state that is no deployment's end (START, READY, ...).
    pub fn parse(state: &str) -> Option<Self> {
        match state {
            "SUCCESS" => Some(Self::Success),
            "FAILURE" => Some(Self::Failure),
            "STOP" => Some(Self::Stop),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "SUCCESS",
            Self::Failure => "FAILURE",
            Self::Stop => "STOP",
        }
    }
}

/// One of the service's deployments, as DescribeServices gives it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub id: String,
    pub status: DeploymentStatus,
    /// `None`: ECS does not say (or says something this code does not know).
    pub rollout_state: Option<RolloutState>,
    pub rollout_reason: String,
    pub task_definition: String,
    pub created_at: Option<DateTime<Utc>>,
    /// When ECS last changed it (for a completed rollout: when it completed).
    pub updated_at: Option<DateTime<Utc>>,
}

/// The event's `detail.eventName`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcsEvent {
    InProgress,
    Completed,
    Failed,
}

/// How a rollout ended, and what to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutEnding {
    /// `None`: nothing to tell (a duplicate, a rollout not ended, a rollback's completion).
    pub outcome: Option<Outcome>,
    /// The deployment whose outcome it is.
    pub rollout: String,
    /// The revision that rollout deployed, when ECS still says.
    pub task_definition: Option<String>,
    /// The revision the service ran before it (or, rolled back, runs again), when ECS still says.
    pub previous: Option<String>,
    /// When the rollout started, when ECS still says.
    pub started: Option<DateTime<Utc>>,
    /// What to add to the record (empty: nothing to write).
    pub marks: Vec<(String, Mark)>,
    /// Why, in a line, for the report.
    pub why: String,
}

/// Whether a deployment's reason says the circuit breaker is rolling back.
pub fn is_rollback_reason(reason: &str) -> bool {
    reason.contains("rolling back to")
}

/// Decides from one ECS deployment event (`id`, the event's reason) and the
/// service now: its deployments, whether its circuit breaker rolls back, and
/// the record of what was told.
pub fn decide(
    event: EcsEvent,
    id: &str,
    reason: &str,
    deployments: &[Deployment],
    rolls_back: bool,
    record: &ToldRecord,
) -> RolloutEnding {
    let find = |id: &str| deployments.iter().find(|d| d.id == id);
    let this = find(id);
    let nothing = |why: String| RolloutEnding {
        outcome: None,
        rollout: id.to_owned(),
        task_definition: this.map(|d| d.task_definition.clone()),
        previous: None,
        started: this.and_then(|d| d.created_at),
        marks: Vec::new(),
        why,
    };
    // The failed rollout a rollback deployment undoes: the most recent FAILED one created before it.
    let failed_before = |rollback: &str| {
        let at = find(rollback).and_then(|d| d.created_at);
        deployments
            .iter()
            .filter(|d| d.id != rollback && d.rollout_state == Some(RolloutState::Failed))
            .filter(|d| at.is_none() || d.created_at <= at)
            .max_by_key(|d| d.created_at)
    };
    let rolled_back = |failed: &Deployment, rollback: &str, why: String| RolloutEnding {
        outcome: Some(Outcome::RolledBack),
        rollout: failed.id.clone(),
        task_definition: Some(failed.task_definition.clone()),
        previous: find(rollback).map(|d| d.task_definition.clone()),
        started: failed.created_at,
        marks: vec![(rollback.to_owned(), Mark::Rollback), (failed.id.clone(), Mark::Told(Outcome::RolledBack))],
        why,
    };
    let other_than_this = |state: Option<RolloutState>| {
        deployments
            .iter()
            .filter(|d| d.id != id && (state.is_none() || d.rollout_state == state))
            .map(|d| d.task_definition.clone())
            .next()
    };
    match (event, record.mark(id)) {
        (_, Some(Mark::Told(told))) => nothing(format!("{id}: {} was told already", told.words())),
        (EcsEvent::InProgress, Some(Mark::Rollback)) | (EcsEvent::Completed, Some(Mark::Rollback)) => {
            nothing(format!("{id} is a rollback; the rolled-back rollout was told"))
        }
        (EcsEvent::Failed, Some(Mark::Rollback)) => RolloutEnding {
            outcome: Some(Outcome::RollbackFailed),
            rollout: id.to_owned(),
            task_definition: this.map(|d| d.task_definition.clone()),
            previous: this.map(|d| d.task_definition.clone()),
            started: this.and_then(|d| d.created_at),
            marks: vec![(id.to_owned(), Mark::Told(Outcome::RollbackFailed))],
            why: format!("the rollback {id} failed: {reason}"),
        },
        (EcsEvent::InProgress, None) if is_rollback_reason(reason) => match failed_before(id) {
            Some(failed) if !record.told(&failed.id) => rolled_back(failed, id, reason.to_owned()),
            _ => RolloutEnding {
                marks: vec![(id.to_owned(), Mark::Rollback)],
                ..nothing(format!("{id} rolls back; told already"))
            },
        },
        (EcsEvent::InProgress, None) => nothing(format!("{id} is in progress")),
        (EcsEvent::Completed, None) => match failed_before(id) {
            // A completion that undoes a failed rollout is its rollback, whatever order the events came in.
            Some(failed) if this.is_some() => {
                if record.told(&failed.id) {
                    RolloutEnding {
                        marks: vec![(id.to_owned(), Mark::Rollback)],
                        ..nothing(format!("{id} rolled back; told already"))
                    }
                } else {
                    rolled_back(failed, id, format!("ECS rolled back {} and {id} completed", failed.id))
                }
            }
            _ => RolloutEnding {
                outcome: Some(Outcome::Succeeded),
                rollout: id.to_owned(),
                task_definition: this.map(|d| d.task_definition.clone()),
                previous: other_than_this(None),
                started: this.and_then(|d| d.created_at),
                marks: vec![(id.to_owned(), Mark::Told(Outcome::Succeeded))],
                why: reason.to_owned(),
            },
        },
        (EcsEvent::Failed, None) => {
            let outcome = if rolls_back { Outcome::RolledBack } else { Outcome::Failed };
            // The rollback ECS started already, so its completion is not taken for a success.
            let rollback = deployments.iter().find(|d| d.id != id && is_rollback_reason(&d.rollout_reason));
            let previous =
                rollback.map(|d| d.task_definition.clone()).or_else(|| other_than_this(Some(RolloutState::Completed)));
            let mut marks = vec![(id.to_owned(), Mark::Told(outcome))];
            marks.extend(rollback.map(|d| (d.id.clone(), Mark::Rollback)));
            RolloutEnding {
                outcome: Some(outcome),
                rollout: id.to_owned(),
                task_definition: this.map(|d| d.task_definition.clone()),
                previous,
                started: this.and_then(|d| d.created_at),
                marks,
                why: reason.to_owned(),
            }
        }
    }
}

/// How a service deployment (ECS's history of a service, which outlives the
/// deployments DescribeServices lists) stands, as ListServiceDeployments says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PastStatus {
    /// PENDING or IN_PROGRESS.
    Running,
    Successful,
    /// ROLLBACK_REQUESTED, ROLLBACK_IN_PROGRESS or ROLLBACK_SUCCESSFUL: the circuit breaker failed it and rolls back.
    RolledBack,
    RollbackFailed,
    /// STOPPED or STOP_REQUESTED: failed without a rollback, or replaced by a newer one.
    Stopped,
}

/// The service's newest service deployment created no later than the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastRollout {
    /// Its ARN, which the told marks also key it by (its `ecs-svc/` id is not in the history).
    pub arn: String,
    pub status: PastStatus,
    /// The revision it deployed, and the one it replaced (or rolled back to), when read.
    pub task_definition: Option<String>,
    pub previous: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

/// Whether the decision needs the service's history: a rollout that failed
/// (ECS may no longer list it, and its service deployment is marked told too,
/// so that its rollback's completion, whenever it comes, is known for one), or a
/// completion taken for a success (it may be a rollback's whose failed rollout is gone).
pub fn needs_history(event: EcsEvent, ending: &RolloutEnding) -> bool {
    match event {
        EcsEvent::Failed => matches!(ending.outcome, Some(Outcome::Failed | Outcome::RolledBack)),
        EcsEvent::Completed => ending.outcome == Some(Outcome::Succeeded),
        EcsEvent::InProgress => false,
    }
}

/// Completes a decision from the service's history (see [`needs_history`]).
pub fn with_history(
    event: EcsEvent,
    ending: RolloutEnding,
    past: Option<&PastRollout>,
    record: &ToldRecord,
) -> RolloutEnding {
    let Some(past) = past else {
        return ending;
    };
    let told_already =
        |why: String, marks: Vec<(String, Mark)>| RolloutEnding { outcome: None, marks, why, ..ending.clone() };
    match event {
        EcsEvent::Failed
            if matches!(past.status, PastStatus::RolledBack | PastStatus::RollbackFailed | PastStatus::Stopped) =>
        {
            if let Some(Mark::Told(told)) = record.mark(&past.arn) {
                return told_already(format!("{}: {} was told already", past.arn, told.words()), Vec::new());
            }
            let outcome = ending.outcome.unwrap_or(Outcome::Failed);
            let mut marks = ending.marks.clone();
            marks.push((past.arn.clone(), Mark::Told(outcome)));
            RolloutEnding {
                task_definition: ending.task_definition.clone().or_else(|| past.task_definition.clone()),
                previous: ending.previous.clone().or_else(|| past.previous.clone()),
                started: ending.started.or(past.created_at),
                marks,
                ..ending
            }
        }
        // ECS makes no service deployment for a rollback: its completion leaves the failed one ROLLBACK_SUCCESSFUL.
        EcsEvent::Completed if past.status == PastStatus::RolledBack => {
            let rollback = (ending.rollout.clone(), Mark::Rollback);
            if record.told(&past.arn) {
                return told_already(
                    format!("{} rolled {} back; told already", ending.rollout, past.arn),
                    vec![rollback],
                );
            }
            RolloutEnding {
                outcome: Some(Outcome::RolledBack),
                rollout: past.arn.clone(),
                task_definition: past.task_definition.clone(),
                previous: past.previous.clone().or(ending.task_definition.clone()),
                started: past.created_at,
                marks: vec![rollback, (past.arn.clone(), Mark::Told(Outcome::RolledBack))],
                why: format!("ECS rolled back {} and {} completed", past.arn, ending.rollout),
            }
        }
        _ => ending,
    }
}

/// A CodeDeploy deployment as GetDeployment describes it now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CodeDeployNow {
    pub id: String,
    /// CodeDeploy made it to roll another back (its creator is `codeDeployRollback`).
    pub is_rollback: bool,
    /// The revision its AppSpec deploys.
    pub task_definition: Option<String>,
    /// Its end rolls it back: CodeDeploy says so (`rollbackInfo`), or its automatic rollback covers that end.
    pub rolled_back: bool,
    /// For a rollback deployment: the deployment it rolls back.
    pub rollback_of: Option<String>,
    /// CodeDeploy's words: the error, else the rollback message.
    pub message: String,
    pub created_at: Option<DateTime<Utc>>,
}

/// Decides from a CodeDeploy deployment's end, the deployment now, and the record.
pub fn decide_codedeploy(state: CodeDeployEndState, deployment: &CodeDeployNow, record: &ToldRecord) -> RolloutEnding {
    let id = deployment.id.as_str();
    let this = |outcome: Option<Outcome>, marks: Vec<(String, Mark)>, why: String| RolloutEnding {
        outcome,
        rollout: id.to_owned(),
        task_definition: deployment.task_definition.clone(),
        previous: None,
        started: deployment.created_at,
        marks,
        why,
    };
    let why = if deployment.message.is_empty() {
        format!("CodeDeploy deployment {id} ended {}", state.as_str())
    } else {
        deployment.message.clone()
    };
    if let Some(Mark::Told(told)) = record.mark(id) {
        return this(None, Vec::new(), format!("{id}: {} was told already", told.words()));
    }
    let is_rollback = deployment.is_rollback || record.mark(id) == Some(Mark::Rollback);
    match (is_rollback, state) {
        (true, CodeDeployEndState::Success) => match &deployment.rollback_of {
            Some(of) if !record.told(of) => RolloutEnding {
                outcome: Some(Outcome::RolledBack),
                rollout: of.clone(),
                task_definition: None,
                previous: deployment.task_definition.clone(),
                started: None,
                marks: vec![(id.to_owned(), Mark::Rollback), (of.clone(), Mark::Told(Outcome::RolledBack))],
                why,
            },
            _ => this(
                None,
                vec![(id.to_owned(), Mark::Rollback)],
                format!("{id} is a rollback; the rolled-back deployment was told"),
            ),
        },
        (true, _) => {
            this(Some(Outcome::RollbackFailed), vec![(id.to_owned(), Mark::Told(Outcome::RollbackFailed))], why)
        }
        (false, CodeDeployEndState::Success) => {
            this(Some(Outcome::Succeeded), vec![(id.to_owned(), Mark::Told(Outcome::Succeeded))], why)
        }
        (false, _) => {
            let outcome = if deployment.rolled_back { Outcome::RolledBack } else { Outcome::Failed };
            this(Some(outcome), vec![(id.to_owned(), Mark::Told(outcome))], why)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "arn:aws:ecs:eu-west-1:123456789012:task-definition/api:7";
    const NEW: &str = "arn:aws:ecs:eu-west-1:123456789012:task-definition/api:8";

    fn at(minute: i64) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(1_795_000_000 + minute * 60, 0)
    }

    fn d(id: &str, status: &str, state: &str, reason: &str, td: &str, minute: i64) -> Deployment {
        Deployment {
            id: id.into(),
            status: DeploymentStatus::parse(status),
            rollout_state: RolloutState::parse(state),
            rollout_reason: reason.into(),
            task_definition: td.into(),
            created_at: at(minute),
            updated_at: at(minute),
        }
    }

    const ROLLING_BACK: &str = "ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/1.";

    /// The service after ecs-svc/2 (NEW) failed and ECS started rolling back to OLD as ecs-svc/3.
    fn rolling_back() -> Vec<Deployment> {
        vec![
            d("ecs-svc/3", "PRIMARY", "IN_PROGRESS", ROLLING_BACK, OLD, 12),
            d("ecs-svc/2", "ACTIVE", "FAILED", "ECS deployment circuit breaker: tasks failed to start.", NEW, 0),
        ]
    }

    /// Plays events in order, each against the service as it was then, carrying the record.
    fn play(events: &[(EcsEvent, &str, &str, Vec<Deployment>)], rolls_back: bool) -> Vec<(Option<Outcome>, String)> {
        let mut record = ToldRecord::default();
        let mut told = Vec::new();
        for (event, id, reason, deployments) in events {
            let decision = decide(*event, id, reason, deployments, rolls_back, &record);
            if !decision.marks.is_empty() {
                record = record.with(&decision.marks);
            }
            if decision.outcome.is_some() {
                told.push((decision.outcome, decision.rollout));
            }
        }
        told
    }

    #[test]
    fn a_completed_rollout_succeeded_once_however_often_it_is_told() {
        let done = vec![d("ecs-svc/2", "PRIMARY", "COMPLETED", "completed", NEW, 0)];
        let completed = (EcsEvent::Completed, "ecs-svc/2", "ECS deployment ecs-svc/2 completed.", done.clone());
        let told = play(&[completed.clone(), completed.clone(), completed], true);
        assert_eq!(told, [(Some(Outcome::Succeeded), "ecs-svc/2".to_owned())]);
        let decision = decide(EcsEvent::Completed, "ecs-svc/2", "completed", &done, true, &ToldRecord::default());
        assert_eq!((decision.task_definition.as_deref(), decision.started), (Some(NEW), at(0)));
    }

    #[test]
    fn a_failed_rollout_is_rolled_back_once_in_any_order_and_its_rollback_completion_tells_nothing() {
        let failed =
            (EcsEvent::Failed, "ecs-svc/2", "ECS deployment circuit breaker: tasks failed to start.", rolling_back());
        let rollback = (EcsEvent::InProgress, "ecs-svc/3", ROLLING_BACK, rolling_back());
        let back = vec![d("ecs-svc/3", "PRIMARY", "COMPLETED", "ECS deployment ecs-svc/3 completed.", OLD, 12)];
        let completed = (EcsEvent::Completed, "ecs-svc/3", "ECS deployment ecs-svc/3 completed.", back);
        let once = [(Some(Outcome::RolledBack), "ecs-svc/2".to_owned())];
        let orders = [
            vec![failed.clone(), rollback.clone(), completed.clone()],
            vec![rollback.clone(), failed.clone(), completed.clone(), failed.clone()],
            vec![failed.clone(), failed.clone(), completed.clone(), rollback.clone()],
            vec![rollback.clone(), rollback.clone(), completed.clone()],
        ];
        for (n, order) in orders.iter().enumerate() {
            assert_eq!(play(order, true), once, "order {n}");
        }
        let decision =
            decide(EcsEvent::InProgress, "ecs-svc/3", ROLLING_BACK, &rolling_back(), true, &ToldRecord::default());
        assert_eq!((decision.task_definition.as_deref(), decision.previous.as_deref()), (Some(NEW), Some(OLD)));
    }

    #[test]
    fn a_completion_that_comes_first_is_still_known_as_the_rollback_while_ecs_lists_the_failed_rollout() {
        let both = vec![
            d("ecs-svc/3", "PRIMARY", "COMPLETED", "ECS deployment ecs-svc/3 completed.", OLD, 12),
            d("ecs-svc/2", "ACTIVE", "FAILED", "tasks failed", NEW, 0),
        ];
        let told = play(&[(EcsEvent::Completed, "ecs-svc/3", "completed", both)], true);
        assert_eq!(told, [(Some(Outcome::RolledBack), "ecs-svc/2".to_owned())]);
    }

    #[test]
    fn a_failure_without_rollback_failed_and_a_failed_rollback_is_rollback_failed() {
        let failing = vec![
            d("ecs-svc/2", "PRIMARY", "FAILED", "tasks failed", NEW, 0),
            d("ecs-svc/1", "ACTIVE", "COMPLETED", "", OLD, -60),
        ];
        let failed = (EcsEvent::Failed, "ecs-svc/2", "tasks failed", failing.clone());
        assert_eq!(play(&[failed.clone(), failed], false), [(Some(Outcome::Failed), "ecs-svc/2".to_owned())]);
        let decision = decide(EcsEvent::Failed, "ecs-svc/2", "tasks failed", &failing, false, &ToldRecord::default());
        assert_eq!(decision.previous.as_deref(), Some(OLD));

        let rollback_failing = vec![d("ecs-svc/3", "PRIMARY", "FAILED", "tasks failed", OLD, 12)];
        let events = [
            (EcsEvent::Failed, "ecs-svc/2", "tasks failed", rolling_back()),
            (EcsEvent::InProgress, "ecs-svc/3", ROLLING_BACK, rolling_back()),
            (EcsEvent::Failed, "ecs-svc/3", "tasks failed", rollback_failing.clone()),
            (EcsEvent::Failed, "ecs-svc/3", "tasks failed", rollback_failing),
        ];
        let told = play(&events, true);
        assert_eq!(
            told,
            [
                (Some(Outcome::RolledBack), "ecs-svc/2".to_owned()),
                (Some(Outcome::RollbackFailed), "ecs-svc/3".to_owned())
            ]
        );
    }

    #[test]
    fn a_codedeploy_deployment_ends_once_and_its_rollback_tells_nothing_new() {
        let deployment = |id: &str, creator: &str, rolled_back: bool, rollback_of: Option<&str>| CodeDeployNow {
            id: id.into(),
            is_rollback: creator == "codeDeployRollback",
            task_definition: Some(NEW.into()),
            rolled_back,
            rollback_of: rollback_of.map(str::to_owned),
            message: String::new(),
            created_at: at(0),
        };
        let run = |events: &[(&str, CodeDeployNow)]| {
            let mut record = ToldRecord::default();
            let mut told = Vec::new();
            for (state, d) in events {
                let state = CodeDeployEndState::parse(state).unwrap();
                let decision = decide_codedeploy(state, d, &record);
                if !decision.marks.is_empty() {
                    record = record.with(&decision.marks);
                }
                told.extend(decision.outcome.map(|o| (o, decision.rollout)));
            }
            told
        };
        let canary = deployment("d-1", "user", false, None);
        assert_eq!(run(&[("SUCCESS", canary.clone()), ("SUCCESS", canary)]), [(Outcome::Succeeded, "d-1".to_owned())]);
        let failing = deployment("d-1", "user", true, None);
        assert_eq!(
            run(&[("FAILURE", failing.clone()), ("FAILURE", failing)]),
            [(Outcome::RolledBack, "d-1".to_owned())]
        );
        assert_eq!(run(&[("STOP", deployment("d-1", "user", false, None))]), [(Outcome::Failed, "d-1".to_owned())]);
        // A rollback deployment of its own: its success is the rollback, told once whatever comes first
        let rollback = deployment("d-2", "codeDeployRollback", false, Some("d-1"));
        let failed = deployment("d-1", "user", true, None);
        let once = [(Outcome::RolledBack, "d-1".to_owned())];
        assert_eq!(run(&[("FAILURE", failed.clone()), ("SUCCESS", rollback.clone())]), once);
        assert_eq!(run(&[("SUCCESS", rollback.clone()), ("FAILURE", failed)]), once);
        assert_eq!(run(&[("FAILURE", rollback)]), [(Outcome::RollbackFailed, "d-2".to_owned())]);
    }

    #[test]
    fn an_in_progress_rollout_tells_nothing_and_an_older_releases_tag_record_is_read() {
        let started = vec![d("ecs-svc/2", "PRIMARY", "IN_PROGRESS", "in progress", NEW, 0)];
        assert_eq!(
            play(&[(EcsEvent::InProgress, "ecs-svc/2", "ECS deployment ecs-svc/2 in progress.", started)], true),
            []
        );
        let rollback =
            ToldRecord::parse("ecs-svc/1=rollback").with(&[("ecs-svc/1".into(), Mark::Told(Outcome::Failed))]);
        assert_eq!(rollback.mark("ecs-svc/1"), Some(Mark::Told(Outcome::Failed)), "a told outcome replaces the mark");
        assert_eq!(
            ToldRecord::parse("junk ecs-svc/1=rollback x=y").entries,
            [("ecs-svc/1".to_owned(), Mark::Rollback)]
        );
    }

    #[test]
    fn the_service_deployment_history_tells_what_ecs_no_longer_lists() {
        const SD: &str = "arn:aws:ecs:eu-west-1:123456789012:service-deployment/shop/api/abc";
        let past = |status| PastRollout {
            arn: SD.into(),
            status,
            task_definition: Some(NEW.into()),
            previous: Some(OLD.into()),
            created_at: None,
        };
        let rollback_listed =
            vec![d("ecs-svc/3", "PRIMARY", "COMPLETED", "ECS deployment ecs-svc/3 completed.", OLD, 5)];
        let none = ToldRecord::default();

        // A FAILED rollout ECS no longer lists: its revision from the history, its service deployment marked too
        let failed = decide(EcsEvent::Failed, "ecs-svc/2", "circuit breaker", &rollback_listed, true, &none);
        assert!(needs_history(EcsEvent::Failed, &failed) && failed.task_definition.is_none());
        let told = with_history(EcsEvent::Failed, failed.clone(), Some(&past(PastStatus::RolledBack)), &none);
        assert_eq!((told.outcome, told.task_definition.as_deref()), (Some(Outcome::RolledBack), Some(NEW)));
        assert!(told.marks.contains(&(SD.to_owned(), Mark::Told(Outcome::RolledBack))));
        // ... once: the service deployment told already (its rollback's completion came first)
        let marked = ToldRecord::parse(&format!("{SD}=rolled-back"));
        assert_eq!(
            with_history(EcsEvent::Failed, failed.clone(), Some(&past(PastStatus::RolledBack)), &marked).outcome,
            None
        );
        // ... and a history that shows no failure changes nothing
        assert_eq!(with_history(EcsEvent::Failed, failed.clone(), Some(&past(PastStatus::Successful)), &none), failed);

        // A completion taken for a success is a rollback's when the newest service deployment rolled back
        let completed = decide(EcsEvent::Completed, "ecs-svc/3", "completed", &rollback_listed, true, &none);
        assert_eq!(completed.outcome, Some(Outcome::Succeeded));
        assert!(needs_history(EcsEvent::Completed, &completed));
        let rolled = with_history(EcsEvent::Completed, completed.clone(), Some(&past(PastStatus::RolledBack)), &none);
        assert_eq!((rolled.outcome, rolled.rollout.as_str()), (Some(Outcome::RolledBack), SD));
        assert_eq!(rolled.task_definition.as_deref(), Some(NEW));
        assert!(rolled.marks.contains(&("ecs-svc/3".to_owned(), Mark::Rollback)));
        let quiet = with_history(EcsEvent::Completed, completed.clone(), Some(&past(PastStatus::RolledBack)), &marked);
        assert_eq!((quiet.outcome, quiet.marks), (None, vec![("ecs-svc/3".to_owned(), Mark::Rollback)]));
        // ... and stays a success when the newest one succeeded, or ECS keeps no history
        for history in [Some(past(PastStatus::Successful)), None] {
            assert_eq!(with_history(EcsEvent::Completed, completed.clone(), history.as_ref(), &none), completed);
        }
    }
}
