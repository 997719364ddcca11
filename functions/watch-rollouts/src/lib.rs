//! `watch-rollouts`: how each rollout of a service that follows pushes
//! (`nightshift:deploy`) ended, told once to the service's channels
//! (`nightshift:notify`), and the digests of a failed or rolled-back rollout
//! kept in `nightshift:quarantine`, which `deploy-on-push` never deploys again.
//! A rollout that succeeded schedules the promotion of its revision to each
//! service that follows it (`nightshift:promote-from`), run by this function
//! when due (`chain`, `promote`).
//!
//! Parse (ECS Deployment State Change, or CodeDeploy Deployment State-change
//! Notification) -> observe (the service, its deployments and record, or the
//! CodeDeploy deployment and the service its group deploys; the revision
//! rolled out) -> decide (`outcome`) -> apply (tell, then record and
//! quarantine in one TagResource) -> report.

pub mod chain;
pub mod codedeploy;
pub mod event;
pub mod message;
pub mod outcome;
pub mod promote;
pub mod scheduler;

use std::sync::Arc;

use aws_sdk_ecs::types::{Service, ServiceField, Tag};
use chrono::Utc;
use lambda_runtime::{Diagnostic, LambdaEvent};
use nightshift::aws::CallError;
use nightshift::config::{self, ConfigError, Vars};
use nightshift::ecs::tag_value;
use nightshift::notify::{self, Delivery, Level, Notice, Notifier};
use nightshift::quarantine::{self, QUARANTINE_TAG};
use nightshift::rollout::{Deployer, ServiceId};
use nightshift::signed::SignedHttp;
use nightshift::window::Tz;
use nightshift::{Clock, SystemClock};
use nightshift::{LambdaFailure, Measured, Metric};
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

use chain::{PromotionReport, Scheduled, Succeeded};
use event::{CodeDeployEnd, Rollout, Trigger};
use message::Image;
use outcome::{Decision, Deployment, Outcome, Record, TOLD_TAG};

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
    /// `TIMEZONE`: the zone of `nightshift:promote-window`.
    pub timezone: Tz,
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
        Ok(Self {
            dry_run: config::dry_run(vars)?,
            clusters: config::list(vars, "CLUSTERS"),
            schedule_group,
            schedule_role_arn,
            timezone,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    #[error("ECS {0}")]
    Ecs(#[from] CallError),
    #[error("CodeDeploy {0}")]
    CodeDeploy(CallError),
    #[error("no channel of {service} could be told: {}", failures.join("; "))]
    NotTold { service: String, failures: Vec<String> },
    #[error("EventBridge Scheduler {0}")]
    Scheduler(CallError),
    #[error("the promotion of {service} was not scheduled: {why}")]
    NotScheduled { service: String, why: String },
    #[error("the promotion of {service} failed: {why}")]
    PromotionFailed { service: String, why: String },
}

impl LambdaFailure for WatchError {
    fn error_type(&self) -> &'static str {
        match self {
            Self::InvalidEvent(_) => "InvalidEvent",
            Self::Ecs(_) => "EcsError",
            Self::CodeDeploy(_) => "CodeDeployError",
            Self::NotTold { .. } => "NotTold",
            Self::Scheduler(_) => "SchedulerError",
            Self::NotScheduled { .. } => "NotScheduled",
            Self::PromotionFailed { .. } => "PromotionFailed",
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
    /// A promotion that came due, or was asked for by hand.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promotion: Option<PromotionReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub told: Vec<Delivery>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
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
            Metric::flag("Promoted", self.promotion.as_ref().is_some_and(|p| p.result == "promoted")),
        ]
    }
}

pub struct WatchRollouts<'n> {
    config: WatchConfig,
    ecs: aws_sdk_ecs::Client,
    codedeploy: aws_sdk_codedeploy::Client,
    /// EventBridge Scheduler, by signed request (`scheduler`).
    aws: SignedHttp,
    /// Clone-and-deploy, for promotions.
    deployer: Deployer,
    notifier: &'n Notifier,
    clock: Arc<dyn Clock>,
}

/// What the decision was made on: the service now, and where it is.
struct Observed {
    service: Service,
    /// What was told of the service's rollouts, as the decision read it.
    record: Record,
    decision: Decision,
    cluster: String,
    name: String,
    region: String,
    /// When the rollout ended, as the event says (else now).
    ended: chrono::DateTime<Utc>,
}

impl<'n> WatchRollouts<'n> {
    pub fn new(
        config: WatchConfig,
        ecs: aws_sdk_ecs::Client,
        codedeploy: aws_sdk_codedeploy::Client,
        aws: SignedHttp,
        notifier: &'n Notifier,
    ) -> Self {
        let deployer = Deployer::new(ecs.clone(), codedeploy.clone(), config.dry_run);
        Self { config, ecs, codedeploy, aws, deployer, notifier, clock: Arc::new(SystemClock) }
    }

    /// Decides soaks and windows by this clock (tests fix it).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<WatchReport, WatchError> {
        let mut report = WatchReport { function: FUNCTION, dry_run: self.config.dry_run, ..WatchReport::default() };
        let function_arn = event.context.invoked_function_arn.clone();
        // The region of a promotion: this function's own (arn:aws:lambda:<region>:...).
        let own_region = function_arn.split(':').nth(3).unwrap_or_default().to_owned();
        let observed = match event::parse(&event.payload).map_err(WatchError::InvalidEvent)? {
            Trigger::Ignored(why) => {
                info!(reason = %why, "event ignored");
                report.ignored = Some(why);
                return nightshift::finish(FUNCTION, report, None);
            }
            // A promotion's future is boxed: nested inline in the outcome path's, the
            // whole state machine's type went past the compiler's layout depth limit.
            Trigger::Promotion(due) => {
                let id = ServiceId::parse(&due.service).map_err(WatchError::InvalidEvent)?;
                let result = Box::pin(self.promote(Some(due), id, &function_arn, &own_region, &mut report)).await;
                return nightshift::finish(FUNCTION, report, result.err());
            }
            Trigger::Promote(id) => {
                let result = Box::pin(self.promote(None, id, &function_arn, &own_region, &mut report)).await;
                return nightshift::finish(FUNCTION, report, result.err());
            }
            Trigger::Ecs(rollout) => self.observe_ecs(&rollout, &mut report).await?,
            Trigger::CodeDeploy(end) => self.observe_codedeploy(&end, &mut report).await?,
        };
        let Some(Observed { service, record, decision, cluster, name, region, ended }) = observed else {
            return nightshift::finish(FUNCTION, report, None);
        };
        info!(%cluster, service = %name, outcome = ?decision.outcome, why = %decision.why, "decided");
        report.outcome = decision.outcome;
        report.why = Some(decision.why.clone());
        report.rollout = Some(decision.rollout.clone());
        report.task_definition = decision.task_definition.clone();
        report.previous_task_definition = decision.previous.clone();
        report.took_seconds = decision.started.map(|s| (ended - s).num_seconds().max(0));
        // The images are told and quarantined; a duplicate needs none.
        if decision.outcome.is_some()
            && let Some(td) = &decision.task_definition
        {
            report.images = self.images(td).await?;
        }

        // What to write: the record, and the quarantine.
        let mut writes: Vec<(String, String)> = Vec::new();
        if let Some(outcome) = decision.outcome
            && outcome.quarantines()
        {
            let digests: Vec<String> = report.images.iter().filter_map(|i| i.digest.clone()).collect();
            let current = tag_value(service.tags(), QUARANTINE_TAG).unwrap_or_default();
            if let Some(value) = quarantine::with(current, &digests) {
                report.quarantined =
                    digests.iter().map(|d| quarantine::short(d)).filter(|d| !quarantine::holds(current, d)).collect();
                writes.push((QUARANTINE_TAG.into(), value));
            }
        }

        // A success schedules the promotions that follow it, before anything is told or
        // recorded: a run that could not schedule them is retried whole.
        if decision.outcome == Some(Outcome::Succeeded)
            && let Some(task_definition) = &decision.task_definition
        {
            let succeeded = Succeeded {
                upstream: ServiceId { cluster: cluster.clone(), service: name.clone() },
                deployment: &decision.rollout,
                task_definition,
                completed: ended,
            };
            self.schedule_promotions(&succeeded, &function_arn, &region, &mut report).await?;
        }

        // Tell, before the record says it was told: a run that told no one is retried.
        if let Some(outcome) = decision.outcome
            && (outcome.is_failure() || self.notifier.config().level == Level::All)
        {
            let notice = message::notice(&message::Told {
                outcome,
                cluster: &cluster,
                service: &name,
                region: &region,
                task_definition: decision.task_definition.as_deref(),
                previous: decision.previous.as_deref(),
                images: &report.images,
                why: &decision.why,
                took_seconds: report.took_seconds,
                quarantined: &report.quarantined,
            });
            self.tell_service(&service, &notice, &mut report).await;
        }
        let nobody_told = notify::all_failed(&report.told);
        if !decision.marks.is_empty() && !nobody_told {
            writes.push((TOLD_TAG.into(), record.with(&decision.marks)));
        }
        if let Some(problem) = writes.iter().find_map(|(k, v)| nightshift::ecs::tag_problem(k, v)) {
            report.warnings.push(format!("not written: {problem}"));
            writes.clear();
        }
        let keys: Vec<&str> = writes.iter().map(|(k, _)| k.as_str()).collect();
        if let Some(problem) = nightshift::ecs::tag_count_problem(service.tags(), &keys) {
            report.warnings.push(format!("not written: {problem}"));
            writes.clear();
        }
        if !writes.is_empty() && !self.config.dry_run {
            self.tag(service.service_arn().unwrap_or_default(), &writes).await?;
        }
        let error = nobody_told.then(|| WatchError::NotTold {
            service: format!("{cluster}/{name}"),
            failures: report
                .told
                .iter()
                .map(|d| format!("{}: {}", d.channel, d.error.clone().unwrap_or_default()))
                .collect(),
        });
        if let Some(err) = &error {
            warn!(error = %err, "told no one");
        }
        nightshift::finish(FUNCTION, report, error)
    }

    /// An ECS deployment's state change: the service now, decided.
    async fn observe_ecs(&self, rollout: &Rollout, report: &mut WatchReport) -> Result<Option<Observed>, WatchError> {
        report.cluster = Some(rollout.cluster.clone());
        report.service = Some(rollout.service.clone());
        report.deployment = Some(rollout.deployment_id.clone());
        let Some(service) = self.following(&rollout.cluster, &rollout.service, report).await? else {
            return Ok(None);
        };
        let record = Record::parse(tag_value(service.tags(), TOLD_TAG).unwrap_or_default());
        let rolls_back = service
            .deployment_configuration()
            .and_then(|c| c.deployment_circuit_breaker())
            .is_some_and(|b| b.enable && b.rollback);
        let decision = outcome::decide(
            rollout.event,
            &rollout.deployment_id,
            &rollout.reason,
            &deployments(&service),
            rolls_back,
            &record,
        );
        Ok(Some(Observed {
            service,
            record,
            decision,
            cluster: rollout.cluster.clone(),
            name: rollout.service.clone(),
            region: rollout.region.clone(),
            ended: rollout.updated_at.unwrap_or_else(Utc::now),
        }))
    }

    /// A CodeDeploy deployment's end: the deployment, the service its group deploys, decided.
    async fn observe_codedeploy(
        &self,
        end: &CodeDeployEnd,
        report: &mut WatchReport,
    ) -> Result<Option<Observed>, WatchError> {
        report.deployment = Some(end.deployment_id.clone());
        let Some(deployment) = codedeploy::deployment(&self.codedeploy, &end.deployment_id, &end.state)
            .await
            .map_err(WatchError::CodeDeploy)?
        else {
            report.ignored = Some(format!("CodeDeploy has no deployment {}", end.deployment_id));
            return Ok(None);
        };
        let Some((cluster, name)) =
            codedeploy::group_service(&self.codedeploy, &end.application, &end.deployment_group)
                .await
                .map_err(WatchError::CodeDeploy)?
        else {
            report.ignored =
                Some(format!("the group {}/{} deploys no ECS service", end.application, end.deployment_group));
            return Ok(None);
        };
        report.cluster = Some(cluster.clone());
        report.service = Some(name.clone());
        let Some(service) = self.following(&cluster, &name, report).await? else {
            return Ok(None);
        };
        let record = Record::parse(tag_value(service.tags(), TOLD_TAG).unwrap_or_default());
        let decision = outcome::decide_codedeploy(&end.state, &deployment, &record);
        Ok(Some(Observed {
            service,
            record,
            decision,
            cluster,
            name,
            region: end.region.clone(),
            ended: end.time.unwrap_or_else(Utc::now),
        }))
    }

    /// The service, when it still exists and follows pushes; else `None`, with the reason reported.
    async fn following(
        &self,
        cluster: &str,
        name: &str,
        report: &mut WatchReport,
    ) -> Result<Option<Service>, WatchError> {
        let id = ServiceId { cluster: cluster.to_owned(), service: name.to_owned() };
        match self.describe(&id).await? {
            None => report.ignored = Some("ECS no longer has the service".into()),
            Some(s) if tag_value(s.tags(), DEPLOY_TAG).is_none() && tag_value(s.tags(), PROMOTE_FROM_TAG).is_none() => {
                report.ignored = Some(format!("the service is tagged neither {DEPLOY_TAG} nor {PROMOTE_FROM_TAG}"));
            }
            Some(s) => return Ok(Some(s)),
        }
        Ok(None)
    }

    /// The service with its tags, unless ECS no longer has it (INACTIVE).
    async fn describe(&self, id: &ServiceId) -> Result<Option<Service>, WatchError> {
        let out = self
            .ecs
            .describe_services()
            .cluster(&id.cluster)
            .services(&id.service)
            .include(ServiceField::Tags)
            .send()
            .await
            .map_err(|e| CallError::new("DescribeServices", &id.to_string(), e.into_service_error()))?;
        Ok(out.services.unwrap_or_default().into_iter().find(|s| s.status() != Some("INACTIVE")))
    }

    /// Each container's image, with its digest and the tag it was deployed from.
    async fn images(&self, task_definition: &str) -> Result<Vec<Image>, WatchError> {
        let (td, tags) = self.deployer.task_definition(task_definition).await?;
        Ok(message::images(td.container_definitions(), &tags))
    }

    /// Tells the service's channels (`nightshift:notify`); with `DRY_RUN`, says whom it would.
    async fn tell_service(&self, service: &Service, notice: &Notice, report: &mut WatchReport) {
        let channels = match notify::parse_channels(tag_value(service.tags(), NOTIFY_TAG).unwrap_or_default()) {
            Ok(channels) => channels,
            Err(why) => {
                report.warnings.push(format!("{NOTIFY_TAG}: {why}"));
                Vec::new()
            }
        };
        if channels.is_empty() {
            return;
        }
        if self.config.dry_run {
            report.warnings.push(format!(
                "DRY_RUN: would tell {}",
                channels.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
            ));
        } else {
            report.told.extend(self.notifier.tell(&channels, notice).await);
        }
    }

    async fn tag(&self, service_arn: &str, writes: &[(String, String)]) -> Result<(), WatchError> {
        let tags = writes.iter().map(|(k, v)| Tag::builder().key(k).value(v).build());
        self.ecs
            .tag_resource()
            .resource_arn(service_arn)
            .set_tags(Some(tags.collect()))
            .send()
            .await
            .map_err(|e| CallError::new("TagResource", service_arn, e.into_service_error()))?;
        Ok(())
    }
}

/// The service's deployments, as the decision reads them.
fn deployments(service: &Service) -> Vec<Deployment> {
    service
        .deployments()
        .iter()
        .map(|d| Deployment {
            id: d.id().unwrap_or_default().to_owned(),
            status: d.status().unwrap_or_default().to_owned(),
            rollout_state: d.rollout_state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
            rollout_reason: d.rollout_state_reason().unwrap_or_default().to_owned(),
            task_definition: d.task_definition().unwrap_or_default().to_owned(),
            created_at: d.created_at().and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
        })
        .collect()
}
