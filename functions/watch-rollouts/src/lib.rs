//! `watch-rollouts`: how each rollout of a service that follows pushes
//! (`nightshift:deploy`) ended, told once to the service's channels
//! (`nightshift:notify`), and the digests of a failed or rolled-back rollout
//! kept in `nightshift:quarantine`, which `deploy-on-push` never deploys again.
//! A rollout that succeeded schedules the promotion of its revision to each
//! service that follows it (`nightshift:promote-from`), run by this function
//! when due (`chain`, `promote`).
//!
//! An outcome: parse (ECS Deployment State Change, or CodeDeploy Deployment
//! State-change Notification) -> observe (the service, its deployments and
//! record, or the CodeDeploy deployment and the service its group deploys)
//! -> decide how it ended (`outcome`) -> observe what the plan needs (the
//! revision's images; for a success, the services that follow it) -> plan
//! (`plan::plan_outcome`: schedules, notices, tags) -> apply (schedule, tell,
//! then record and quarantine in one TagResource) -> report.
//!
//! A promotion: parse -> observe (both services, the upstream's last rollout,
//! both revisions) -> decide (`promote::decide`) -> prepare the rollout
//! (`nightshift::rollout`) -> apply (deploy, or schedule again) -> tell -> report.
//!
//! Many accounts (docs/accounts.md): every outcome decided is put on the
//! default bus (`announce`); another account's announced success schedules
//! the promotions of the services here that follow it; an upstream in another
//! account is read through its read-only role (`reader`), and nothing is
//! written there. A service tagged `nightshift:sleep-after-promotion=true`
//! sleeps once its digest passed in every service that follows it (`sleep`).

pub mod announce;
pub mod byhand;
pub mod event;
pub mod message;
pub mod observe;
pub mod outcome;
pub mod plan;
pub mod promote;
pub mod reader;
pub mod scheduler;
pub mod sleep;

use std::sync::Arc;

use aws_sdk_ecs::types::{Service, Tag, TaskDefinition};
use chrono::{DateTime, Utc};
use lambda_runtime::{Diagnostic, LambdaEvent};
use nightshift::aws::CallError;
use nightshift::config::{self, ConfigError, Vars};
use nightshift::ecs::{IMAGE_TAG_PREFIX, tag_value};
use nightshift::identity::Identity;
use nightshift::notify::{self, Delivery, Level, Notifier};
use nightshift::quarantine;
use nightshift::rollout::bluegreen::{self, GroupName};
use nightshift::rollout::capacity;
use nightshift::rollout::codedeploy::CodeDeploy;
use nightshift::rollout::{Deployed, Deployer, Invocation, Rolled, RolloutRequest, ServiceId};
use nightshift::signed::SignedHttp;
use nightshift::state::{StateTable, StateWrite};
use nightshift::window::Tz;
use nightshift::{Clock, SystemClock};
use nightshift::{LambdaFailure, Measured, Metric};
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

use event::{CodeDeployEnd, DeploymentChange, WatchEvent};
use message::Image;
use nightshift::state::VerdictSeen;
use observe::{Remembered, service_now};
use outcome::{Outcome, RolloutEnding, ToldRecord};
use plan::{
    Follower, OutcomeInput, OutcomePlan, PlannedSchedule, PromotionResult, PromotionStep, Scheduled, Telling,
    UpstreamRollout,
};
use promote::{Checks, Downstream, Due, Promotion, Settings, Upstream};

pub const FUNCTION: &str = "watch-rollouts";
pub use nightshift::ecs::DEPLOY_TAG;
pub use nightshift::notify::NOTIFY_TAG;
pub use promote::PROMOTE_FROM_TAG;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchConfig {
    /// `DRY_RUN`: decide and report; tell no one, write, schedule and deploy nothing.
    pub dry_run: bool,
    /// `CLUSTERS`: where services that follow others are looked for; empty for every cluster.
    pub clusters: Vec<String>,
    /// `SCHEDULE_GROUP`: the EventBridge Scheduler group of promotions' schedules.
    pub schedule_group: String,
    /// `SCHEDULE_ROLE_ARN`: the role EventBridge Scheduler invokes this function with.
    pub schedule_role_arn: Option<String>,
    /// `SCHEDULE_DEAD_LETTER_ARN`: the SQS queue a promotion's schedule sends its input to once its
    /// retries are spent; `None`: Scheduler drops it.
    pub schedule_dead_letter_arn: Option<String>,
    /// `TIMEZONE`: the zone of `nightshift:promote-window`.
    pub timezone: Tz,
    /// `STATE_TABLE`: the state table (quarantine, told marks, rollout leases).
    pub state_table: String,
    /// `CHECKS_PARAMETER_PREFIX`: where verify-rollout's suites are; an upstream with one promotes only what passed.
    pub checks_prefix: String,
    /// `READER_ROLE_NAME`: the read-only role assumed in an upstream's account
    /// (`nightshift:promote-from=<account>:<cluster>/<service>`).
    pub reader_role: String,
    /// `PROMOTE_TO_ACCOUNT_IDS`: the accounts whose services may follow this one's; read
    /// (through their reader role) before a service sleeps after its promotion.
    pub promote_to_accounts: Vec<String>,
}

impl WatchConfig {
    pub fn from_vars(vars: &impl Vars) -> Result<Self, ConfigError> {
        let timezone = nightshift::window::timezone_setting(vars)?;
        let schedule_group = config::optional(vars, "SCHEDULE_GROUP").unwrap_or_else(|| "default".into());
        let group_ok = schedule_group.len() <= 64
            && schedule_group.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !group_ok {
            return Err(ConfigError::new(
                "SCHEDULE_GROUP",
                Some(&schedule_group),
                "a schedule group name: 1 to 64 letters, digits, - _ .",
            ));
        }
        let schedule_role_arn = config::optional(vars, "SCHEDULE_ROLE_ARN");
        if let Some(arn) = &schedule_role_arn
            && !(arn.starts_with("arn:") && arn.contains(":iam::") && arn.contains(":role/"))
        {
            return Err(ConfigError::new(
                "SCHEDULE_ROLE_ARN",
                Some(arn),
                "an IAM role ARN (arn:aws:iam::<account>:role/<name>)",
            ));
        }
        let schedule_dead_letter_arn = config::optional(vars, "SCHEDULE_DEAD_LETTER_ARN");
        if let Some(arn) = &schedule_dead_letter_arn
            && !(arn.starts_with("arn:") && arn.split(':').nth(2) == Some("sqs") && arn.split(':').count() == 6)
        {
            return Err(ConfigError::new(
                "SCHEDULE_DEAD_LETTER_ARN",
                Some(arn),
                "an SQS queue ARN (arn:aws:sqs:<region>:<account>:<queue>)",
            ));
        }
        Ok(Self {
            dry_run: config::dry_run(vars)?,
            clusters: config::list(vars, "CLUSTERS"),
            schedule_group,
            schedule_role_arn,
            schedule_dead_letter_arn,
            timezone,
            state_table: nightshift::state::table_name(vars)?,
            checks_prefix: nightshift::checks::prefix(vars)?,
            reader_role: reader_role(vars)?,
            promote_to_accounts: config::account_ids(vars, "PROMOTE_TO_ACCOUNT_IDS")?,
        })
    }
}

/// `READER_ROLE_NAME`: an IAM role name (1 to 64 of letters, digits and `+=,.@_-`).
fn reader_role(vars: &impl Vars) -> Result<String, ConfigError> {
    let name = config::optional(vars, "READER_ROLE_NAME").unwrap_or_else(|| reader::DEFAULT_ROLE_NAME.into());
    let ok = name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if !ok {
        return Err(ConfigError::new(
            "READER_ROLE_NAME",
            Some(&name),
            "an IAM role name: 1 to 64 letters, digits, +=,.@_-",
        ));
    }
    Ok(name)
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    #[error("ECS {0}")]
    Ecs(CallError),
    #[error("CodeDeploy {0}")]
    CodeDeploy(CallError),
    /// The state table could not be read or written: the run fails, to be retried.
    #[error("DynamoDB {0}")]
    State(CallError),
    #[error("no channel of {service} could be told: {}", failures.join("; "))]
    NotTold { service: String, failures: Vec<String> },
    #[error("EventBridge Scheduler {0}")]
    Scheduler(CallError),
    #[error("SSM {0}")]
    Ssm(String),
    #[error("the promotion of {service} was not scheduled: {why}")]
    NotScheduled { service: String, why: String },
    #[error("the promotion of {service} failed: {why}")]
    PromotionFailed { service: String, why: String },
    /// The upstream account could not be read through its reader role.
    #[error("the upstream account {account} could not be read: {why}")]
    Upstream { account: String, why: String },
    #[error("EventBridge {0}")]
    Events(CallError),
    #[error("Application Auto Scaling {0}")]
    Scaling(CallError),
}

impl LambdaFailure for WatchError {
    fn error_type(&self) -> &'static str {
        match self {
            Self::InvalidEvent(_) => "InvalidEvent",
            Self::Ecs(_) => "EcsError",
            Self::CodeDeploy(_) => "CodeDeployError",
            Self::State(_) => "StateError",
            Self::NotTold { .. } => "NotTold",
            Self::Scheduler(_) => "SchedulerError",
            Self::Ssm(_) => "SsmError",
            Self::NotScheduled { .. } => "NotScheduled",
            Self::PromotionFailed { .. } => "PromotionFailed",
            Self::Upstream { .. } => "UpstreamUnreadable",
            Self::Events(_) => "EventsError",
            Self::Scaling(_) => "ScalingError",
        }
    }
}

impl From<WatchError> for Diagnostic {
    fn from(err: WatchError) -> Self {
        err.diagnostic()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WatchReport {
    pub function: &'static str,
    pub dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The event's deployment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// `None`: nothing (new) to tell, with `why`.
    pub outcome: Option<Outcome>,
    /// The deployment whose outcome it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_definition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_task_definition: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Image>,
    /// The merge the rollout's revision is (pull request, commit, source), where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub took_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// Short digests added to `nightshift:quarantine`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub quarantined: Vec<String>,
    /// Promotions scheduled after a rollout that succeeded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scheduled: Vec<Scheduled>,
    /// The service of another account whose announced outcome this is (`<account>:<cluster>/<service>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// The outcome was put on the default event bus.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub announced: bool,
    /// A hold asked for by hand, or its release.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold: Option<HoldReport>,
    /// A rollback, a quarantine or its release by hand.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_hand: Option<byhand::ByHandReport>,
    /// Who asked, for a promotion by hand (`{"promote": ..., "by": ...}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Whether a service went to sleep after its promotion (`nightshift:sleep-after-promotion`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sleep: Option<SleepReport>,
    /// A promotion that came due, or was asked for by hand.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promotion: Option<PromotionReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub told: Vec<Delivery>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// What a hold (or release) by hand came to.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct HoldReport {
    /// `<cluster>/<service>`, or `all`.
    pub service: String,
    /// `held`, `already` (the same hold stood), `released`, or `not held`.
    pub result: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    pub by: String,
    /// When it ends by itself (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// What the sleep after a promotion came to.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct SleepReport {
    /// The service that may sleep, `<cluster>/<service>`.
    pub service: String,
    /// `slept`, `waiting` (a follower's checks), or `awake`.
    pub result: &'static str,
    pub why: String,
    /// What it ran with, remembered for its next rollout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remembered: Option<nightshift::state::Asleep>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<Scheduled>,
}

/// What a promotion did.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct PromotionReport {
    /// The service promoted into.
    pub service: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub by_hand: bool,
    pub result: PromotionResult,
    pub why: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub digests: Vec<String>,
    /// The merge the upstream's revision is (what is, or would be, promoted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployed: Option<Deployed>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<Scheduled>,
}

/// Its notices go to each service's own channels (see `tell`), not to `NOTIFY_CHANNELS`.
impl nightshift::notify::Notable for WatchReport {}

impl Measured for WatchReport {
    fn metrics(&self) -> Vec<Metric> {
        let is = |o: Outcome| self.outcome == Some(o);
        vec![
            Metric::flag("RolloutSucceeded", is(Outcome::Succeeded)),
            Metric::flag("RolloutFailed", is(Outcome::Failed) || is(Outcome::RollbackFailed)),
            Metric::flag("RolloutRolledBack", is(Outcome::RolledBack)),
            Metric::count("ChannelsTold", self.told.iter().filter(|d| d.delivered).count()),
            Metric::count("PromotionsScheduled", self.scheduled.iter().filter(|s| !s.already).count()),
            Metric::flag("Promoted", self.promotion.as_ref().is_some_and(|p| p.result == PromotionResult::Promoted)),
        ]
    }
}

pub struct WatchRollouts<'n> {
    config: WatchConfig,
    ecs: aws_sdk_ecs::Client,
    codedeploy: CodeDeploy,
    /// By signed request: EventBridge Scheduler (`scheduler`), SSM, and the upstream's tasks (`observe::running_tasks`).
    signed: Arc<SignedHttp>,
    /// Clone-and-deploy, for promotions.
    deployer: Deployer,
    /// What nightshift remembers: quarantine, told marks.
    state: StateTable,
    notifier: &'n Notifier,
    clock: Arc<dyn Clock>,
}

/// Where this invocation runs: its own ARN (a schedule's target) and region (a promotion's).
struct Invoked {
    function_arn: String,
    region: String,
    /// This function's own account (empty when its ARN does not say).
    account: String,
    /// The Lambda request id: who holds a rollout lease this invocation takes.
    request_id: String,
}

/// A service whose rollout ended, as observed, and when and where it ended.
struct Ended {
    service: Service,
    remembered: Remembered,
    /// When the rollout ended, as the event says (else now).
    at: DateTime<Utc>,
    region: String,
}

/// A promotion's services, as observed before deciding.
enum PromotionSeen {
    /// ECS has no such service: no one to tell.
    Gone(String),
    /// Refused before anything could be decided: the service to tell, and why.
    Refused { service: Box<Service>, why: String },
    /// Both services and both revisions, read.
    Ready(Box<PromotionReady>),
}

struct PromotionReady {
    service: Service,
    task_definition: TaskDefinition,
    td_tags: Vec<Tag>,
    upstream: Upstream,
    downstream: Downstream,
    /// The merge the upstream's revision is, carried to the promoted one.
    identity: Identity,
    /// The service promoted into sleeps after its own promotion: its rollout wakes it.
    asleep: Option<nightshift::state::Asleep>,
    /// Its hold and the hold on every service (no automatic promotion while one lasts).
    holds: Vec<nightshift::state::Hold>,
}

impl<'n> WatchRollouts<'n> {
    pub fn new(
        config: WatchConfig,
        ecs: aws_sdk_ecs::Client,
        codedeploy: CodeDeploy,
        signed: Arc<SignedHttp>,
        state: StateTable,
        notifier: &'n Notifier,
    ) -> Self {
        let deployer = Deployer::new(ecs.clone(), codedeploy.clone(), config.dry_run).with_state(state.clone());
        Self { config, ecs, codedeploy, signed, deployer, state, notifier, clock: Arc::new(SystemClock) }
    }

    /// Decides soaks and windows by this clock (tests fix it).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<WatchReport, WatchError> {
        let mut dry = None;
        let this = config::dry_if_asked(self, self.config.dry_run, &event.payload, &mut dry, Self::dry_twin);
        nightshift::conclude(FUNCTION, this.run(event).await)
    }

    /// This function as with `DRY_RUN`, for one run asked to change nothing (`"dryRun": true`).
    fn dry_twin(&self) -> Self {
        Self {
            config: WatchConfig { dry_run: true, ..self.config.clone() },
            ecs: self.ecs.clone(),
            codedeploy: self.codedeploy.clone(),
            signed: self.signed.clone(),
            deployer: self.deployer.dry(),
            state: self.state.clone(),
            notifier: self.notifier,
            clock: self.clock.clone(),
        }
    }

    async fn run(&self, event: LambdaEvent<Value>) -> nightshift::Ran<WatchReport, WatchError> {
        let mut report = WatchReport { function: FUNCTION, dry_run: self.config.dry_run, ..WatchReport::default() };
        let function_arn = event.context.invoked_function_arn.clone();
        // This function's own region and account (arn:aws:lambda:<region>:<account>:...).
        let (region, account) = nightshift::aws::arn_region_and_account(&function_arn);
        let parsed = event::parse(&event.payload).map_err(WatchError::InvalidEvent)?;
        let foreign = parsed.place().and_then(|place| nightshift::aws::elsewhere(place, (account, region)));
        let parsed = foreign.map_or(parsed, WatchEvent::Ignored);
        let invoked = Invoked {
            region: region.to_owned(),
            account: account.to_owned(),
            request_id: event.context.request_id.clone(),
            function_arn: function_arn.clone(),
        };
        let result = match parsed {
            WatchEvent::Ignored(why) => {
                info!(reason = %why, "event ignored");
                report.ignored = Some(why);
                Ok(())
            }
            // A promotion's future is boxed: nested inline in the outcome path's, the
            // whole state machine's type went past the compiler's layout depth limit.
            WatchEvent::Promotion(due) => {
                let id = ServiceId::parse(&due.service).map_err(WatchError::InvalidEvent)?;
                Box::pin(self.promotion(Some(due), id, &invoked, &mut report)).await
            }
            WatchEvent::Promote(id) => {
                report.by = event.payload.get("by").and_then(Value::as_str).map(str::to_owned);
                Box::pin(self.promotion(None, id, &invoked, &mut report)).await
            }
            WatchEvent::Announced(detail) => Box::pin(self.announced(&detail, &invoked, &mut report)).await,
            WatchEvent::Hold(asked) => Box::pin(self.hold(&asked, &mut report)).await,
            WatchEvent::Rollback(asked) => Box::pin(self.rollback(&asked, &invoked, &mut report)).await,
            WatchEvent::Quarantine(asked) => Box::pin(self.quarantine_by_hand(&asked, &mut report)).await,
            WatchEvent::Sleep(check) => {
                let id = ServiceId::parse(&check.service).map_err(WatchError::InvalidEvent)?;
                Box::pin(self.consider_sleep(&id, Some(check.since), &invoked, &mut report)).await
            }
            WatchEvent::Ecs(change) => self.ecs_outcome(&change, &invoked, &mut report).await,
            WatchEvent::CodeDeploy(end) => self.codedeploy_outcome(&end, &invoked, &mut report).await,
        };
        Ok((report, result.err()))
    }

    /// An ECS deployment's state change: the service now, and how its rollout ended.
    async fn ecs_outcome(
        &self,
        change: &DeploymentChange,
        invoked: &Invoked,
        report: &mut WatchReport,
    ) -> Result<(), WatchError> {
        report.cluster = Some(change.cluster.clone());
        report.service = Some(change.service.clone());
        report.deployment = Some(change.deployment_id.clone());
        let id = ServiceId { cluster: change.cluster.clone(), service: change.service.clone() };
        let Some(service) = self.following(&id, report).await? else {
            return Ok(());
        };
        let remembered = self.remembered(&service).await?;
        let deployments = observe::deployments(&service);
        let rolls_back = observe::rolls_back(&service);
        let record = &remembered.record;
        let ending =
            outcome::decide(change.event, &change.deployment_id, &change.reason, &deployments, rolls_back, record);
        let at = change.updated_at.unwrap_or_else(|| self.clock.now());
        // What DescribeServices no longer lists, ECS's history of the service still says.
        let ending = if outcome::needs_history(change.event, &ending) {
            let past = observe::last_rollout(&self.signed, &id, at).await.map_err(WatchError::Ecs)?;
            outcome::with_history(change.event, ending, past.as_ref(), record)
        } else {
            ending
        };
        let ended = Ended { service, remembered, at, region: change.region.clone() };
        self.outcome(ended, ending, invoked, report).await
    }

    /// A CodeDeploy deployment's end: the deployment, the service its group deploys, and how it ended.
    async fn codedeploy_outcome(
        &self,
        end: &CodeDeployEnd,
        invoked: &Invoked,
        report: &mut WatchReport,
    ) -> Result<(), WatchError> {
        report.deployment = Some(end.deployment_id.clone());
        let read = observe::deployment(&self.codedeploy, &end.deployment_id, end.state).await;
        let Some(deployment) = read.map_err(WatchError::CodeDeploy)? else {
            report.ignored = Some(format!("CodeDeploy has no deployment {}", end.deployment_id));
            return Ok(());
        };
        let group = GroupName { application: end.application.clone(), deployment_group: end.deployment_group.clone() };
        let Some(id) = self.codedeploy.group_service(&group).await.map_err(WatchError::CodeDeploy)? else {
            report.ignored = Some(format!("the group {group} deploys no ECS service"));
            return Ok(());
        };
        report.cluster = Some(id.cluster.clone());
        report.service = Some(id.service.clone());
        let Some(service) = self.following(&id, report).await? else {
            return Ok(());
        };
        let remembered = self.remembered(&service).await?;
        let ending = outcome::decide_codedeploy(end.state, &deployment, &remembered.record);
        let at = end.time.unwrap_or_else(|| self.clock.now());
        self.outcome(Ended { service, remembered, at, region: end.region.clone() }, ending, invoked, report).await
    }

    /// Observes what the outcome's plan needs, plans, applies.
    async fn outcome(
        &self,
        ended: Ended,
        ending: RolloutEnding,
        invoked: &Invoked,
        report: &mut WatchReport,
    ) -> Result<(), WatchError> {
        let service = service_now(&ended.service);
        info!(cluster = %service.id.cluster, service = %service.id.service, outcome = ?ending.outcome, why = %ending.why, "decided");
        // The images are told and quarantined; a duplicate needs none.
        let (images, identity) = match (&ending.outcome, &ending.task_definition) {
            (Some(_), Some(td)) => self.revision(td).await?,
            _ => (Vec::new(), Identity::default()),
        };
        // The revision before: the one ECS names as rolled back to, else the one the service runs.
        let before = ending.previous.as_deref().or(ended.service.task_definition());
        let previous_images = match (ending.outcome, before) {
            (Some(outcome), Some(td)) if outcome.quarantines() && Some(td) != ending.task_definition.as_deref() => {
                Some(self.revision(td).await?.0)
            }
            _ => None,
        };
        let followers = match (&ending.outcome, &ending.task_definition) {
            (Some(Outcome::Succeeded), Some(_)) => {
                self.followers(&invoked.account, &service.id, &invoked.account).await?
            }
            _ => Vec::new(),
        };
        let plan = plan::plan_outcome(&OutcomeInput {
            ending: &ending,
            service: &service,
            remembered: &ended.remembered,
            images: &images,
            previous_images: previous_images.as_deref(),
            followers: &followers,
            ended: ended.at,
            region: &ended.region,
            account: &invoked.account,
            identity: &identity,
            tell_successes: self.notifier.config().level == Level::All,
            now: self.clock.now(),
        });
        report.outcome = ending.outcome;
        report.why = Some(ending.why.clone());
        report.rollout = Some(ending.rollout.clone());
        report.task_definition = ending.task_definition.clone();
        report.previous_task_definition = ending.previous.clone();
        report.took_seconds = plan::took_seconds(&ending, ended.at);
        report.images = images;
        report.identity = (!identity.is_empty()).then_some(identity);
        report.quarantined = plan.quarantined.clone();
        report.warnings.extend(plan.warnings.iter().cloned());
        self.apply_outcome(plan, &service.id, invoked, report).await?;
        // A promotion arrived and succeeded here: the service it came from may sleep now.
        let followed = service.tag(PROMOTE_FROM_TAG).and_then(|f| promote::Followed::parse(f).ok());
        match followed {
            Some(from) if ending.outcome == Some(Outcome::Succeeded) && from.elsewhere(&invoked.account).is_none() => {
                Box::pin(self.consider_sleep(&from.id, None, invoked, report)).await
            }
            _ => Ok(()),
        }
    }

    /// Schedules, tells, then writes what it remembers; the only place an
    /// outcome writes, and (with the other apply steps) knows `DRY_RUN`. A
    /// write that fails fails the run (Lambda retries it; every write is idempotent).
    async fn apply_outcome(
        &self,
        plan: OutcomePlan,
        id: &ServiceId,
        invoked: &Invoked,
        report: &mut WatchReport,
    ) -> Result<(), WatchError> {
        for planned in &plan.schedules {
            let already = self.create_schedule(planned, invoked).await?;
            info!(service = %planned.id, schedule = %planned.schedule, at = %planned.at, already, "promotion scheduled");
            report.scheduled.push(Scheduled {
                id: planned.id.clone(),
                schedule: planned.schedule.clone(),
                at: planned.at,
                already,
            });
        }
        if let Some(detail) = plan.announce.as_ref().filter(|_| !self.config.dry_run) {
            self.announce(detail).await?;
            report.announced = true;
        }
        for telling in &plan.tellings {
            self.tell(telling, report).await;
        }
        let nobody_told = notify::all_failed(&report.told);
        if !self.config.dry_run {
            let mut writes = plan.state.always;
            if !nobody_told {
                writes.extend(plan.state.once_told);
            }
            let now = self.clock.now();
            for write in &writes {
                self.state.write(write, now).await.map_err(WatchError::State)?;
            }
        }
        if !nobody_told {
            return Ok(());
        }
        let failures =
            report.told.iter().map(|d| format!("{}: {}", d.channel, d.error.clone().unwrap_or_default())).collect();
        let err = WatchError::NotTold { service: id.to_string(), failures };
        warn!(error = %err, "told no one");
        Err(err)
    }

    /// Puts the outcome on this account's default event bus.
    async fn announce(&self, detail: &announce::RolloutOutcome) -> Result<(), WatchError> {
        let request = serde_json::json!({"Entries": [detail.entry()]});
        let answer = self
            .signed
            .json_operation(&nightshift::signed::EVENTS, "PutEvents", "default", &request)
            .await
            .map_err(WatchError::Events)?;
        if answer["FailedEntryCount"].as_u64().unwrap_or(0) > 0 {
            let entry = &answer["Entries"][0];
            return Err(WatchError::Events(CallError {
                operation: "PutEvents",
                target: "default".into(),
                code: entry["ErrorCode"].as_str().map(str::to_owned),
                message: entry["ErrorMessage"].as_str().unwrap_or("the entry was not put").to_owned(),
            }));
        }
        Ok(())
    }

    /// A rollout outcome another account announced: the promotions of the
    /// services here that follow that service (pulled later through its reader role).
    async fn announced(
        &self,
        detail: &announce::RolloutOutcome,
        invoked: &Invoked,
        report: &mut WatchReport,
    ) -> Result<(), WatchError> {
        let upstream = ServiceId { cluster: detail.cluster.clone(), service: detail.service.clone() };
        report.upstream = Some(format!("{}:{upstream}", detail.account));
        report.deployment = Some(detail.deployment.clone());
        report.outcome = Some(detail.outcome);
        if detail.account == invoked.account {
            report.ignored = Some("an outcome this account announced itself: it was acted on when decided".into());
            return Ok(());
        }
        if !invoked.region.is_empty() && detail.region != invoked.region {
            report.ignored = Some(format!(
                "the outcome is of a service in {}; this function acts in {}",
                detail.region, invoked.region
            ));
            return Ok(());
        }
        let followers = match detail.outcome {
            Outcome::Succeeded => self.followers(&detail.account, &upstream, &invoked.account).await?,
            _ => Vec::new(),
        };
        let plan = plan::plan_announced(detail, &followers, self.clock.now());
        report.warnings.extend(plan.warnings.iter().cloned());
        if followers.is_empty() {
            report.why = Some(format!("no service here follows {}:{upstream} after a success", detail.account));
        }
        self.apply_outcome(plan, &upstream, invoked, report).await?;
        // A service of this account was promoted there and succeeded: it may sleep now.
        let from = detail.promoted_from.as_deref().and_then(|f| promote::Followed::parse(f).ok());
        match from {
            Some(from) if detail.outcome == Outcome::Succeeded && from.account.as_deref() == Some(&invoked.account) => {
                self.consider_sleep(&from.id, None, invoked, report).await
            }
            _ => Ok(()),
        }
    }

    /// This account's services, as they are read here.
    fn own_view(&self) -> View<'_> {
        View { ecs: &self.ecs, signed: &self.signed, state: &self.state, checks_prefix: &self.config.checks_prefix }
    }

    /// Holds a service (or every service), or releases it: no automatic rollout
    /// (deploy-on-push) or due promotion into it while held. With `DRY_RUN`, says what it would do.
    async fn hold(&self, asked: &event::HoldRequest, report: &mut WatchReport) -> Result<(), WatchError> {
        let key = match &asked.service {
            None => nightshift::state::ALL_SERVICES.to_owned(),
            Some(id) => {
                let Some(service) = self.active(id).await? else {
                    return Err(WatchError::InvalidEvent(format!("ECS has no active service {id} to hold")));
                };
                service.service_arn().unwrap_or_default().to_owned()
            }
        };
        let now = self.clock.now();
        let until = asked.minutes.map(|m| nightshift::state::ends_at(now, m));
        let mut held = HoldReport {
            service: asked
                .service
                .as_ref()
                .map_or_else(|| nightshift::state::ALL_SERVICES.to_owned(), ToString::to_string),
            reason: asked.reason.clone(),
            by: asked.by.clone(),
            until: until.map(|u| u.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            ..HoldReport::default()
        };
        held.result = match (asked.release, self.config.dry_run) {
            (true, true) => "released",
            (false, true) => "held",
            (true, false) => {
                let was = self.state.release_hold(&key).await.map_err(WatchError::State)?;
                if was { "released" } else { "not held" }
            }
            (false, false) => {
                let write =
                    StateWrite::Hold { service: key, reason: asked.reason.clone(), by: asked.by.clone(), until };
                let written = self.state.write(&write, now).await.map_err(WatchError::State)?;
                if written { "held" } else { "already" }
            }
        };
        if self.config.dry_run {
            report.warnings.push(format!("DRY_RUN: would be {} ({})", held.result, held.service));
        }
        info!(service = %held.service, result = held.result, "hold");
        report.hold = Some(held);
        Ok(())
    }

    /// Rolls a service back by hand: the digests it runs now are quarantined on
    /// it, it is held until released (no push or promotion rolls it forward
    /// again), then it goes back to the images of the revision that ran
    /// before (ECS's history of it), through the same rollout as any other.
    async fn rollback(
        &self,
        asked: &event::RollbackRequest,
        invoked: &Invoked,
        report: &mut WatchReport,
    ) -> Result<(), WatchError> {
        let id = &asked.service;
        report.cluster = Some(id.cluster.clone());
        report.service = Some(id.service.clone());
        let mut done = byhand::ByHandReport {
            action: "rollback",
            by: asked.by.clone(),
            services: vec![id.to_string()],
            ..byhand::ByHandReport::default()
        };
        let Some(service) = self.active(id).await? else {
            return Err(WatchError::InvalidEvent(format!("ECS has no active service {id} to roll back")));
        };
        if bluegreen::is_blue_green(&service) {
            return Err(WatchError::InvalidEvent(format!(
                "{id} is deployed by CodeDeploy (blue/green): roll it back there \
                 (aws deploy stop-deployment --auto-rollback-enabled), or deploy the digest before with nightshift deploy"
            )));
        }
        let arn = service.service_arn().unwrap_or_default().to_owned();
        let current = service.task_definition().unwrap_or_default().to_owned();
        let history = observe::history(&self.signed, id).await.map_err(WatchError::Ecs)?;
        let Some(before) = byhand::revision_before(&history, &current) else {
            return Err(WatchError::InvalidEvent(format!(
                "ECS's history of {id} names no revision that ran before {current}: nothing to roll back to"
            )));
        };
        let (running, td_tags) = self.deployer.task_definition(&current).await.map_err(WatchError::Ecs)?;
        let now_images = message::images(running.container_definitions(), &td_tags);
        let (back, identity) = self.revision(&before).await?;
        let memory = self.state.memory(&arn).await.map_err(WatchError::State)?;
        let quarantined: Vec<String> = memory.quarantine.iter().map(|q| q.digest.clone()).collect();
        done.to_task_definition = Some(before.clone());
        let (changes, image_tags, digests) = match byhand::rollback(&now_images, &back, &quarantined) {
            byhand::Rollback::Already(why) => {
                (done.result, done.why) = ("already".into(), why);
                report.by_hand = Some(done);
                return Ok(());
            }
            byhand::Rollback::Go { changes, image_tags, quarantine } => (changes, image_tags, quarantine),
        };
        done.digests = digests.clone();
        let why = format!("rolled back by {}: {}", asked.by, asked.reason);
        // First what stops the service going forward again, then the rollout.
        let mut writes: Vec<StateWrite> = digests
            .iter()
            .map(|d| StateWrite::Quarantine { service: arn.clone(), digest: d.clone(), reason: why.clone() })
            .collect();
        writes.push(StateWrite::Hold { service: arn.clone(), reason: why.clone(), by: asked.by.clone(), until: None });
        if self.config.dry_run {
            report
                .warnings
                .push(format!("DRY_RUN: would quarantine {digests:?} on {id}, hold it, and roll it back to {before}"));
        } else {
            let now = self.clock.now();
            for write in &writes {
                if self.state.write(write, now).await.map_err(WatchError::State)? {
                    done.changed.push(id.to_string());
                }
            }
            done.changed.dedup();
        }
        let asleep = self.state.asleep(&arn).await.map_err(WatchError::State)?;
        let request = RolloutRequest {
            service: &service,
            id: id.clone(),
            task_definition: &running,
            td_tags: &td_tags,
            changes,
            image_tags,
            description: format!("nightshift rollback by {}", asked.by),
            identity,
            wake: asleep,
        };
        let mut invocation = Invocation::new(&invoked.request_id);
        let plan = self.deployer.prepare(&request, &mut invocation).await;
        match self.deployer.apply(plan, &mut invocation).await {
            Rolled::Deployed { deployed, .. } => {
                (done.result, done.why) = ("rolled back".into(), why);
                info!(service = %id, to = %before, "rolled back by hand");
                done.deployed = Some(*deployed);
            }
            Rolled::Skipped(why) => (done.result, done.why) = ("already".into(), why),
            Rolled::Failed(why) | Rolled::Moved(why) => {
                (done.result, done.why) = ("failed".into(), why.clone());
                report.by_hand = Some(done);
                return Err(WatchError::PromotionFailed { service: id.to_string(), why });
            }
        }
        report.by_hand = Some(done);
        Ok(())
    }

    /// Quarantines a digest by hand (or lets it go) on one service, or on every
    /// service here that nightshift rolls out (tagged `nightshift:deploy` or `nightshift:promote-from`).
    async fn quarantine_by_hand(
        &self,
        asked: &event::QuarantineRequest,
        report: &mut WatchReport,
    ) -> Result<(), WatchError> {
        let services = match &asked.service {
            Some(id) => match self.active(id).await? {
                Some(service) => vec![service],
                None => return Err(WatchError::InvalidEvent(format!("ECS has no active service {id}"))),
            },
            None => {
                let all =
                    nightshift::ecs::services_in(&self.ecs, &self.config.clusters).await.map_err(WatchError::Ecs)?;
                all.into_iter()
                    .filter(|s| {
                        tag_value(s.tags(), DEPLOY_TAG).is_some() || tag_value(s.tags(), PROMOTE_FROM_TAG).is_some()
                    })
                    .collect()
            }
        };
        let mut done = byhand::ByHandReport {
            action: if asked.release { "unquarantine" } else { "quarantine" },
            by: asked.by.clone(),
            digests: vec![asked.digest.clone()],
            why: asked.reason.clone(),
            ..byhand::ByHandReport::default()
        };
        let now = self.clock.now();
        for service in &services {
            let (id, arn) = (ServiceId::of(service), service.service_arn().unwrap_or_default());
            done.services.push(id.to_string());
            let changed = match (self.config.dry_run, asked.release) {
                (true, _) => false,
                (false, true) => self.state.release_quarantine(arn, &asked.digest).await.map_err(WatchError::State)?,
                (false, false) => {
                    let write = StateWrite::Quarantine {
                        service: arn.to_owned(),
                        digest: asked.digest.clone(),
                        reason: asked.reason.clone(),
                    };
                    self.state.write(&write, now).await.map_err(WatchError::State)?
                }
            };
            if changed {
                done.changed.push(id.to_string());
            }
        }
        let result = match (asked.release, done.changed.is_empty()) {
            (false, false) => "quarantined",
            (false, true) => "already",
            (true, false) => "released",
            (true, true) => "not quarantined",
        };
        done.result = if self.config.dry_run { format!("would {}", done.action) } else { result.to_owned() };
        if self.config.dry_run {
            report.warnings.push(format!(
                "DRY_RUN: would {} {} on {}",
                done.action,
                asked.digest,
                done.services.join(" ")
            ));
        }
        info!(action = done.action, digest = %asked.digest, services = done.services.len(), changed = done.changed.len(), "by hand");
        report.by_hand = Some(done);
        Ok(())
    }

    /// Whether `id`, a service of this account tagged `nightshift:sleep-after-promotion=true`,
    /// goes to sleep now that its digest arrived downstream (`since`: a check scheduled to wait
    /// for the followers' checks). A service not tagged costs one DescribeServices.
    async fn consider_sleep(
        &self,
        id: &ServiceId,
        since: Option<DateTime<Utc>>,
        invoked: &Invoked,
        report: &mut WatchReport,
    ) -> Result<(), WatchError> {
        let Some(service) = self.active(id).await? else { return Ok(()) };
        let tag = tag_value(service.tags(), sleep::SLEEP_TAG);
        if tag.is_none() && since.is_none() {
            return Ok(());
        }
        let arn = service.service_arn().unwrap_or_default().to_owned();
        let asleep = self.state.asleep(&arn).await.map_err(WatchError::State)?;
        let (images, _) = self.revision(service.task_definition().unwrap_or_default()).await?;
        let sleeper = sleep::SleeperNow {
            tag,
            desired: service.desired_count(),
            asleep: asleep.is_some(),
            images: pinned(&images).into_iter().filter_map(|(repo, digest)| Some((repo, digest?))).collect(),
        };
        let followers = Box::pin(self.followers_now(id, invoked)).await?;
        let decision = sleep::decide(&sleeper, &followers);
        let mut result = SleepReport { service: id.to_string(), ..SleepReport::default() };
        info!(service = %id, decision = ?decision, "sleep after promotion");
        match decision {
            sleep::SleepPlan::Stay(why) => (result.result, result.why) = ("awake", why),
            sleep::SleepPlan::Sleep(why) => {
                result.result = "slept";
                let desired = service.desired_count();
                if self.config.dry_run {
                    report.warnings.push(format!("DRY_RUN: would put {id} to sleep (desired {desired} -> 0)"));
                } else {
                    let capacity = capacity::target(&self.signed, id).await.map_err(WatchError::Scaling)?;
                    let write = StateWrite::Asleep { service: arn.clone(), desired, capacity, why: why.clone() };
                    // Remembered first: a run that dies after it leaves a sleep the next rollout undoes.
                    let written = self.state.write(&write, self.clock.now()).await.map_err(WatchError::State)?;
                    if !written {
                        // Another run put it to sleep meanwhile: its counts stand.
                        (result.result, result.why) = ("awake", "asleep already".into());
                        report.sleep = Some(result);
                        return Ok(());
                    }
                    if capacity.is_some() {
                        capacity::set(&self.signed, id, 0, 0).await.map_err(WatchError::Scaling)?;
                    }
                    self.ecs
                        .update_service()
                        .cluster(&id.cluster)
                        .service(&id.service)
                        .desired_count(0)
                        .send()
                        .await
                        .map_err(|e| {
                        WatchError::Ecs(CallError::new("UpdateService", &id.to_string(), e.into_service_error()))
                    })?;
                    let since = self.clock.now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                    result.remembered = Some(nightshift::state::Asleep { desired, capacity, since, why: why.clone() });
                }
                result.why = why;
            }
            sleep::SleepPlan::Wait(why) => {
                let now = self.clock.now();
                let since = since.unwrap_or(now);
                if now >= since + sleep::WAIT_LIMIT {
                    result.result = "awake";
                    result.why = format!("{why}; given up after waiting {} hours", sleep::WAIT_LIMIT.num_hours());
                } else {
                    result.result = "waiting";
                    let at = promote::round_up(now + sleep::RECHECK);
                    let check = sleep::SleepCheck { service: id.to_string(), since };
                    let name = promote::sleep_schedule_name(id, at);
                    let input = serde_json::json!({ "sleep": check }).to_string();
                    let description = format!("nightshift: put {id} to sleep once its followers' checks pass");
                    let already = self.schedule(&name, at, input, description, &id.to_string(), invoked).await?;
                    result.scheduled = Some(Scheduled { id: id.clone(), schedule: name, at, already });
                    result.why = why;
                }
            }
        }
        report.sleep = Some(result);
        Ok(())
    }

    /// Every service that follows `upstream` (of this account): here, and in
    /// each account of `PROMOTE_TO_ACCOUNT_IDS` (through its reader role), as they are now.
    async fn followers_now(
        &self,
        upstream: &ServiceId,
        invoked: &Invoked,
    ) -> Result<Vec<sleep::FollowerNow>, WatchError> {
        let own = invoked.account.as_str();
        let mut found = Vec::new();
        let here = nightshift::ecs::services_in(&self.ecs, &self.config.clusters).await.map_err(WatchError::Ecs)?;
        let view = self.own_view();
        for service in here.iter().filter(|s| follows(s, own, upstream, own)) {
            found.push(follower_now(&view, service, None).await?);
        }
        for account in self.config.promote_to_accounts.iter().filter(|a| *a != own) {
            let reader = reader::open(&self.signed, account, &self.config.reader_role)
                .await
                .map_err(|why| WatchError::Upstream { account: account.clone(), why })?;
            let there = nightshift::ecs::services_in(&reader.ecs, &[]).await.map_err(WatchError::Ecs)?;
            let view = View::of(&reader);
            for service in there.iter().filter(|s| follows(s, own, upstream, account)) {
                found.push(follower_now(&view, service, Some(account)).await?);
            }
        }
        Ok(found)
    }

    /// What nightshift remembers of a service: the state table's, with an older release's tags until carried over.
    async fn remembered(&self, service: &Service) -> Result<Remembered, WatchError> {
        let memory = observe::memory(&self.state, service).await.map_err(WatchError::State)?;
        Ok(observe::remembered(service, memory))
    }

    /// The service, when it still exists and follows pushes or another service; else `None`, with the reason reported.
    async fn following(&self, id: &ServiceId, report: &mut WatchReport) -> Result<Option<Service>, WatchError> {
        match nightshift::rollout::describe_service(&self.ecs, id).await.map_err(WatchError::Ecs)? {
            None => report.ignored = Some("ECS no longer has the service".into()),
            Some(s) if tag_value(s.tags(), DEPLOY_TAG).is_none() && tag_value(s.tags(), PROMOTE_FROM_TAG).is_none() => {
                report.ignored = Some(format!("the service is tagged neither {DEPLOY_TAG} nor {PROMOTE_FROM_TAG}"));
            }
            Some(s) => return Ok(Some(s)),
        }
        Ok(None)
    }

    /// Each container's image, with its digest and the tag it was deployed from, and the merge the revision is.
    async fn revision(&self, task_definition: &str) -> Result<(Vec<Image>, Identity), WatchError> {
        let (td, tags) = self.deployer.task_definition(task_definition).await.map_err(WatchError::Ecs)?;
        Ok((message::images(td.container_definitions(), &tags), nightshift::rollout::revision_identity(&tags)))
    }

    /// Every service here tagged `nightshift:promote-from` naming `upstream` in
    /// `account` (`own`: this function's account, which a tag may leave out),
    /// with its settings or what is wrong with them.
    async fn followers(&self, account: &str, upstream: &ServiceId, own: &str) -> Result<Vec<Follower>, WatchError> {
        let services = nightshift::ecs::services_in(&self.ecs, &self.config.clusters).await.map_err(WatchError::Ecs)?;
        let follows = |s: &Service| {
            tag_value(s.tags(), PROMOTE_FROM_TAG)
                .and_then(|from| promote::Followed::parse(from).ok())
                .is_some_and(|from| from.is(account, upstream, own))
        };
        Ok(services
            .iter()
            .filter(|s| follows(s))
            .filter_map(|s| {
                let settings = Settings::of(s.tags(), &self.config.timezone)?;
                Some(Follower { service: service_now(s), settings })
            })
            .collect())
    }

    /// Tells a service's channels; with `DRY_RUN`, says whom it would.
    async fn tell(&self, telling: &Telling, report: &mut WatchReport) {
        if self.config.dry_run {
            let channels: Vec<String> = telling.channels.iter().map(ToString::to_string).collect();
            report.warnings.push(format!("DRY_RUN: would tell {}", channels.join(" ")));
        } else {
            report.told.extend(self.notifier.tell(&telling.channels, &telling.notice).await);
        }
    }

    /// Creates a promotion's one-time schedule; `true` when it existed already. Not with `DRY_RUN`.
    async fn create_schedule(&self, planned: &PlannedSchedule, invoked: &Invoked) -> Result<bool, WatchError> {
        let due = &planned.due;
        let input = serde_json::json!({ "promotion": due }).to_string();
        let description = format!("nightshift: promote {} to what {} runs ({})", due.service, due.from, due.deployment);
        self.schedule(&planned.schedule, planned.at, input, description, &due.service, invoked).await
    }

    /// Creates a one-time schedule of this function with `input`; `true` when it existed already. Not with `DRY_RUN`.
    async fn schedule(
        &self,
        name: &str,
        at: DateTime<Utc>,
        input: String,
        description: String,
        service: &str,
        invoked: &Invoked,
    ) -> Result<bool, WatchError> {
        if self.config.dry_run {
            return Ok(false);
        }
        let not_scheduled = |why: &str| WatchError::NotScheduled { service: service.to_owned(), why: why.to_owned() };
        let role = self.config.schedule_role_arn.as_deref().ok_or_else(|| {
            not_scheduled("SCHEDULE_ROLE_ARN is not set: EventBridge Scheduler needs a role to invoke watch-rollouts")
        })?;
        if invoked.function_arn.is_empty() {
            return Err(not_scheduled("the invocation does not say this function's ARN, the schedule's target"));
        }
        let schedule = scheduler::OneTime {
            name,
            group: &self.config.schedule_group,
            at,
            function_arn: &invoked.function_arn,
            role_arn: role,
            dead_letter_arn: self.config.schedule_dead_letter_arn.as_deref(),
            input,
            description,
        };
        let created = scheduler::create(&self.signed, &schedule).await.map_err(WatchError::Scheduler)?;
        Ok(created == scheduler::Created::Existed)
    }

    /// A promotion into `id`: due (its schedule's input) or by hand (`None`).
    async fn promotion(
        &self,
        due: Option<Due>,
        id: ServiceId,
        invoked: &Invoked,
        report: &mut WatchReport,
    ) -> Result<(), WatchError> {
        let mut result = PromotionReport { service: id.to_string(), by_hand: due.is_none(), ..Default::default() };
        let mut invocation = Invocation::new(&invoked.request_id);
        let outcome = match Box::pin(self.observe_promotion(&id, invoked, &mut invocation, &mut result)).await {
            Err(err) => Err(err),
            Ok(PromotionSeen::Gone(why)) => {
                result.why = why;
                Ok(None)
            }
            Ok(PromotionSeen::Refused { service, why }) => {
                result.why = why;
                Ok(Some(*service))
            }
            Ok(PromotionSeen::Ready(ready)) => {
                result.identity = (!ready.identity.is_empty()).then(|| ready.identity.clone());
                let step = self.plan_promotion(due.as_ref(), &id, &ready, &mut invocation).await;
                let applied = self.apply_promotion(step, &id, invoked, &mut invocation, &mut result).await;
                applied.map(|()| Some(ready.service))
            }
        };
        if let Ok(Some(service)) = &outcome {
            let level_all = self.notifier.config().level == Level::All;
            let notice = plan::promotion_notice(&id, &result, &invoked.region, level_all);
            let telling = notice.and_then(|notice| plan::telling(&service_now(service), notice, &mut report.warnings));
            if let Some(telling) = telling {
                self.tell(&telling, report).await;
            }
        }
        info!(service = %id, result = ?result.result, why = %result.why, "promotion");
        report.promotion = Some(result);
        outcome.map(drop)
    }

    /// Both services now, the upstream's last rollout, and both revisions.
    async fn observe_promotion(
        &self,
        id: &ServiceId,
        invoked: &Invoked,
        invocation: &mut Invocation,
        result: &mut PromotionReport,
    ) -> Result<PromotionSeen, WatchError> {
        let Some(service) = self.active(id).await? else {
            return Ok(PromotionSeen::Gone(format!("ECS has no service {id}")));
        };
        let settings = match Settings::of(service.tags(), &self.config.timezone) {
            Some(Ok(settings)) => settings,
            Some(Err(why)) => return Ok(PromotionSeen::Refused { service: Box::new(service), why }),
            None => {
                let why = format!("{id} is not tagged {PROMOTE_FROM_TAG}");
                return Ok(PromotionSeen::Refused { service: Box::new(service), why });
            }
        };
        let from = settings.from.clone();
        result.from = Some(from.to_string());
        // An upstream in another account is read through its reader role; nothing is written there.
        let reader = match from.elsewhere(&invoked.account) {
            None => None,
            Some(account) => Some(
                Box::pin(reader::open(&self.signed, account, &self.config.reader_role))
                    .await
                    .map_err(|why| WatchError::Upstream { account: account.to_owned(), why })?,
            ),
        };
        let View { ecs, signed, state, checks_prefix } = reader.as_ref().map_or_else(|| self.own_view(), View::of);
        let Some(upstream_service) = active_in(ecs, &from.id).await? else {
            let why = format!("ECS has no service {from}, which {id} follows ({PROMOTE_FROM_TAG})");
            return Ok(PromotionSeen::Refused { service: Box::new(service), why });
        };
        let upstream_memory = observe::memory(state, &upstream_service).await.map_err(WatchError::State)?;
        let upstream_remembered = observe::remembered(&upstream_service, upstream_memory);
        let downstream_remembered = self.remembered(&service).await?;
        let seen = self.state.digest_on(&[service.service_arn().unwrap_or_default()], "").await;
        let seen = seen.map_err(WatchError::State)?.pop().unwrap_or_default();
        let (asleep, holds) = (seen.asleep, seen.holds);
        let rollout = match &reader {
            None => self.upstream_rollout(&upstream_service, &from.id, upstream_remembered.record, invocation).await,
            Some(_) if bluegreen::is_blue_green(&upstream_service) => UpstreamRollout::Unknown(format!(
                "{from} is deployed by CodeDeploy in another account, whose deployment group the reader role does not read"
            )),
            Some(_) => UpstreamRollout::Ecs {
                deployments: observe::deployments(&upstream_service),
                record: upstream_remembered.record,
            },
        };
        let upstream_arn = upstream_service.task_definition().unwrap_or_default().to_owned();
        let (upstream_td, upstream_tags) = match &reader {
            None => self.deployer.task_definition(&upstream_arn).await,
            Some(r) => nightshift::rollout::describe_task_definition(&r.ecs, &upstream_arn).await,
        }
        .map_err(WatchError::Ecs)?;
        let downstream_arn = service.task_definition().unwrap_or_default().to_owned();
        let (task_definition, td_tags) =
            self.deployer.task_definition(&downstream_arn).await.map_err(WatchError::Ecs)?;
        let tasks = observe::running_tasks(signed, &from.id).await.map_err(WatchError::Ecs)?;
        let checks = checks_of(signed, checks_prefix, &from.id, &upstream_arn, &upstream_remembered.verdicts).await?;
        let upstream = Upstream {
            tasks,
            checks,
            task_definition: upstream_arn,
            settled: plan::settled(&rollout, self.clock.now()),
            moving: plan::moving(&rollout),
            restored: plan::restored(&rollout),
            quarantine: upstream_remembered.quarantine,
            containers: upstream_td.container_definitions().to_vec(),
            image_tags: upstream_tags
                .iter()
                .filter_map(|t| Some((t.key()?.strip_prefix(IMAGE_TAG_PREFIX)?.to_owned(), t.value()?.to_owned())))
                .collect(),
        };
        let identity = nightshift::rollout::revision_identity(&upstream_tags);
        let downstream = Downstream {
            id: id.clone(),
            settings,
            quarantine: downstream_remembered.quarantine,
            containers: task_definition.container_definitions().to_vec(),
        };
        Ok(PromotionSeen::Ready(Box::new(PromotionReady {
            service,
            task_definition,
            td_tags,
            upstream,
            downstream,
            identity,
            asleep,
            holds,
        })))
    }

    /// The upstream's last rollout: its CodeDeploy group's last deployment, or its ECS deployments.
    async fn upstream_rollout(
        &self,
        service: &Service,
        id: &ServiceId,
        record: ToldRecord,
        invocation: &mut Invocation,
    ) -> UpstreamRollout {
        if !bluegreen::is_blue_green(service) {
            return UpstreamRollout::Ecs { deployments: observe::deployments(service), record };
        }
        match self.deployer.group_for(service, id, invocation).await {
            Ok(info) => observe::last_attempted(&info),
            Err(why) => UpstreamRollout::Unknown(why),
        }
    }

    /// Decides the promotion, and prepares its rollout (a blue/green service's group read and decided).
    async fn plan_promotion(
        &self,
        due: Option<&Due>,
        id: &ServiceId,
        ready: &PromotionReady,
        invocation: &mut Invocation,
    ) -> PromotionStep {
        let now = self.clock.now();
        let decided = promote::held(due, &ready.holds, now)
            .unwrap_or_else(|| promote::decide(due, &ready.upstream, &ready.downstream, now));
        match decided {
            Promotion::Move { changes, image_tags, digests } => {
                let request = RolloutRequest {
                    service: &ready.service,
                    id: id.clone(),
                    task_definition: &ready.task_definition,
                    td_tags: &ready.td_tags,
                    changes,
                    image_tags,
                    description: format!("nightshift promotion from {}", ready.downstream.settings.from),
                    identity: ready.identity.clone(),
                    wake: ready.asleep.clone(),
                };
                PromotionStep::Roll { rollout: self.deployer.prepare(&request, invocation).await, digests }
            }
            Promotion::Wait { until, why } => promote::reschedule(due, id, until, why),
            Promotion::Already(why) => PromotionStep::Stay { result: PromotionResult::Already, why },
            Promotion::Refuse(why) => PromotionStep::Stay { result: PromotionResult::Refused, why },
        }
    }

    /// Deploys, or schedules the promotion again; records what it came to.
    async fn apply_promotion(
        &self,
        step: PromotionStep,
        id: &ServiceId,
        invoked: &Invoked,
        invocation: &mut Invocation,
        result: &mut PromotionReport,
    ) -> Result<(), WatchError> {
        match step {
            PromotionStep::Roll { rollout, digests } => {
                result.digests = digests.iter().map(|d| quarantine::short(d)).collect();
                match self.deployer.apply(rollout, invocation).await {
                    Rolled::Deployed { deployed, .. } => {
                        result.result = PromotionResult::Promoted;
                        result.why = format!("{} ran it without a failure", result.from.as_deref().unwrap_or_default());
                        result.deployed = Some(*deployed);
                    }
                    Rolled::Skipped(why) => (result.result, result.why) = (PromotionResult::Already, why),
                    // Another run rolled the service out meanwhile: the promotion is retried, decided again.
                    Rolled::Failed(why) | Rolled::Moved(why) => {
                        (result.result, result.why) = (PromotionResult::Failed, why.clone());
                        return Err(WatchError::PromotionFailed { service: id.to_string(), why });
                    }
                }
            }
            PromotionStep::Reschedule { schedule, why } => {
                let already = self.create_schedule(&schedule, invoked).await?;
                result.result = PromotionResult::Waiting;
                result.why = why;
                let PlannedSchedule { id, schedule, at, .. } = schedule;
                result.scheduled = Some(Scheduled { id, schedule, at, already });
            }
            PromotionStep::Stay { result: stays, why } => (result.result, result.why) = (stays, why),
        }
        Ok(())
    }

    /// The service with its tags, when it is ACTIVE.
    async fn active(&self, id: &ServiceId) -> Result<Option<Service>, WatchError> {
        active_in(&self.ecs, id).await
    }
}

/// The upstream's checks of `task_definition`: none when it has no suite
/// (`<prefix><cluster>/<service>` does not exist in its account), else its verdict, or pending.
async fn checks_of(
    signed: &SignedHttp,
    prefix: &str,
    id: &ServiceId,
    task_definition: &str,
    verdicts: &[VerdictSeen],
) -> Result<Checks, WatchError> {
    let parameter = nightshift::checks::parameter(prefix, &id.cluster, &id.service);
    // Whether it has a suite, not what the suite says: read undecrypted (the reader role has no kms:Decrypt).
    match signed.parameter_exists(&parameter).await {
        Ok(true) => {}
        Ok(false) => return Ok(Checks::None),
        Err(why) => return Err(WatchError::Ssm(format!("GetParameter on {parameter} failed: {why}"))),
    }
    Ok(match verdicts.iter().find(|v| v.task_definition == task_definition) {
        Some(v) if v.passed => Checks::Passed,
        Some(v) => Checks::Failed(v.why.clone()),
        None => Checks::Pending,
    })
}

/// The service with its tags, when it is ACTIVE.
async fn active_in(ecs: &aws_sdk_ecs::Client, id: &ServiceId) -> Result<Option<Service>, WatchError> {
    let found = nightshift::rollout::describe_service(ecs, id).await.map_err(WatchError::Ecs)?;
    Ok(found.filter(|s| s.status() == Some("ACTIVE")))
}

/// Where a service is read: this account's clients, or another account's through its reader role.
struct View<'a> {
    ecs: &'a aws_sdk_ecs::Client,
    signed: &'a SignedHttp,
    state: &'a StateTable,
    checks_prefix: &'a str,
}

impl<'a> View<'a> {
    /// Another account's services, through its reader role.
    fn of(reader: &'a reader::Reader) -> Self {
        View { ecs: &reader.ecs, signed: &reader.signed, state: &reader.state, checks_prefix: &reader.checks_prefix }
    }
}

/// Whether `service` (in account `here`) follows `upstream` of account `account`.
fn follows(service: &Service, account: &str, upstream: &ServiceId, here: &str) -> bool {
    tag_value(service.tags(), PROMOTE_FROM_TAG)
        .and_then(|from| promote::Followed::parse(from).ok())
        .is_some_and(|from| from.is(account, upstream, here))
}

/// Each container's repository (`registry/path`) and the digest it runs, when pinned.
fn pinned(images: &[Image]) -> Vec<(String, Option<String>)> {
    images
        .iter()
        .filter_map(|i| {
            let parsed = i.image.parse::<nightshift::image::ImageRef>().ok()?;
            let repository = match &parsed.registry {
                Some(registry) => format!("{registry}/{}", parsed.repository),
                None => parsed.repository.clone(),
            };
            Some((repository, i.digest.clone()))
        })
        .collect()
}

/// A follower as the sleep decides on it: what it runs, whether its rollout is done, its checks.
async fn follower_now(
    view: &View<'_>,
    service: &Service,
    account: Option<&str>,
) -> Result<sleep::FollowerNow, WatchError> {
    let id = ServiceId::of(service);
    let td = service.task_definition().unwrap_or_default();
    let (revision, tags) =
        nightshift::rollout::describe_task_definition(view.ecs, td).await.map_err(WatchError::Ecs)?;
    let images = message::images(revision.container_definitions(), &tags);
    let deployments = observe::deployments(service);
    let settled = match deployments.as_slice() {
        [only] if only.rollout_state == Some(outcome::RolloutState::Completed) => Ok(()),
        [only] => Err(format!("its deployment {} is not completed", only.id)),
        more => Err(format!("{} deployments under way", more.len())),
    };
    let memory = observe::memory(view.state, service).await.map_err(WatchError::State)?;
    let checks = checks_of(view.signed, view.checks_prefix, &id, td, &memory.verdicts).await?;
    let name = match account {
        Some(account) => format!("{account}:{id}"),
        None => id.to_string(),
    };
    Ok(sleep::FollowerNow { name, images: pinned(&images), settled, checks })
}
