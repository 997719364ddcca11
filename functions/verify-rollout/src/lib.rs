//! `verify-rollout`: runs a service's check suite against its new revision
//! and gives one verdict, three ways in: a CodeDeploy hook (answered with
//! PutLifecycleEventHookExecutionStatus), an ECS lifecycle hook (answered by
//! the invocation's `hookStatus`), and a rolling service's completed
//! deployment (rolled back by nightshift when it fails). The verdict is
//! recorded in the state table, where promotions read it; a failure
//! quarantines the revision's new digests and is told to the service's channels.
//!
//! parse -> observe (the revision, its service, the suite, the memory) ->
//! decide whether to check (`plan::start`) -> check (`probe`, judged by
//! `suite`) -> plan (`plan::after`) -> apply -> report.

pub mod event;
pub mod plan;
pub mod probe;
pub mod suite;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ecs::types::{Service, TaskDefinition};
use aws_smithy_async::rt::sleep::{AsyncSleep, SharedAsyncSleep, default_async_sleep};
use lambda_runtime::{Diagnostic, LambdaEvent};
use nightshift::aws::CallError;
use nightshift::config::{self, ConfigError, Vars};
use nightshift::ecs::{deployed_image_tag, tag_value};
use nightshift::image::ImageRef;
use nightshift::notify::{self, Delivery, Notifier};
use nightshift::rollout::ServiceId;
use nightshift::rollout::bluegreen::GroupName;
use nightshift::rollout::codedeploy::{CodeDeploy, Revision};
use nightshift::signed::SignedHttp;
use nightshift::state::{StateTable, StateWrite};
use nightshift::{Clock, LambdaFailure, Measured, Metric, SystemClock};
use serde::Serialize;
use serde_json::{Map, Value};
use tracing::info;

use event::{Completed, EcsHook, VerifyEvent};
use plan::{Start, Subject, Way};
use suite::{Next, RevisionValues, Suite, Tally, Verdict};

pub const FUNCTION: &str = "verify-rollout";
pub use nightshift::checks::DEFAULT_CHECKS_PREFIX;
/// The key of `hookDetails` this function keeps its progress under, between an ECS hook's invocations.
pub const PROGRESS_KEY: &str = "nightshiftChecks";
/// How long one invocation of an ECS hook checks before it hands back `IN_PROGRESS`.
const ECS_INVOCATION_SECONDS: u64 = 30;
/// The longest an ECS hook's invocation waits for its next round: longer, and
/// ECS is asked to call back then (`callBackDelay`), which costs nothing meanwhile.
const ECS_LONGEST_WAIT: u64 = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyConfig {
    /// `DRY_RUN`: check and report; record, quarantine, answer, roll back and tell nothing.
    pub dry_run: bool,
    /// `CHECKS_PARAMETER_PREFIX`: where the suites are, `<prefix><cluster>/<service>`.
    pub checks_prefix: String,
    /// `STATE_TABLE`: where verdicts and the quarantine are kept.
    pub state_table: String,
}

impl VerifyConfig {
    pub fn from_vars(vars: &impl Vars) -> Result<Self, ConfigError> {
        let checks_prefix = nightshift::checks::prefix(vars)?;
        Ok(Self { dry_run: config::dry_run(vars)?, checks_prefix, state_table: nightshift::state::table_name(vars)? })
    }

    /// The suite's parameter of a service.
    pub fn parameter(&self, id: &ServiceId) -> String {
        nightshift::checks::parameter(&self.checks_prefix, &id.cluster, &id.service)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    #[error("ECS {0}")]
    Ecs(CallError),
    #[error("CodeDeploy {0}")]
    CodeDeploy(CallError),
    #[error("SSM {0}")]
    Ssm(String),
    /// The state table could not be read or written: the run fails, to be retried.
    #[error("DynamoDB {0}")]
    State(CallError),
    /// What is verified could not be found.
    #[error("{0}")]
    NotFound(String),
}

impl LambdaFailure for VerifyError {
    fn error_type(&self) -> &'static str {
        match self {
            Self::InvalidEvent(_) => "InvalidEvent",
            Self::Ecs(_) => "EcsError",
            Self::CodeDeploy(_) => "CodeDeployError",
            Self::Ssm(_) => "SsmError",
            Self::State(_) => "StateError",
            Self::NotFound(_) => "NotFound",
        }
    }
}

impl From<VerifyError> for Diagnostic {
    fn from(err: VerifyError) -> Self {
        err.diagnostic()
    }
}

/// The ECS lifecycle hook's answer (ECS reads these three fields of the result).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EcsAnswer {
    pub hook_status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_back_delay: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook_details: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VerifyReport {
    pub function: &'static str,
    pub dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
    /// `codedeploy-hook`, `ecs-hook` or `rolling`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub way: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_definition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// While an ECS hook's checks go on: when it is invoked again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_in_seconds: Option<u64>,
    /// The checks so far, while an ECS hook's checks go on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<Tally>,
    /// Short digests quarantined by this verdict.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub quarantined: Vec<String>,
    /// CodeDeploy's answer: `Succeeded` or `Failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered: Option<&'static str>,
    /// The revision a failed rolling service was rolled back to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back_to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub told: Vec<Delivery>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// An ECS lifecycle hook's answer, at the top of the result where ECS reads it.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub ecs: Option<EcsAnswer>,
}

impl notify::Notable for VerifyReport {}

impl Measured for VerifyReport {
    fn metrics(&self) -> Vec<Metric> {
        let verdict = |passed: bool| self.verdict.as_ref().is_some_and(|v| v.passed == passed);
        vec![
            Metric::flag("ChecksPassed", verdict(true)),
            Metric::flag("ChecksFailed", verdict(false)),
            Metric::flag("RolledBack", self.rolled_back_to.is_some()),
            Metric::count("DigestsQuarantined", self.quarantined.len()),
            Metric::count("ChannelsTold", self.told.iter().filter(|d| d.delivered).count()),
        ]
    }
}

pub struct VerifyRollout<'n> {
    config: VerifyConfig,
    ecs: aws_sdk_ecs::Client,
    codedeploy: CodeDeploy,
    /// SSM, CloudWatch and the checks' own requests.
    signed: Arc<SignedHttp>,
    state: StateTable,
    notifier: &'n Notifier,
    clock: Arc<dyn Clock>,
    sleep: SharedAsyncSleep,
}

/// The revision to verify, as observed, with its service now.
struct Observed {
    subject: Subject,
    values: RevisionValues,
    service: Service,
}

impl<'n> VerifyRollout<'n> {
    pub fn new(
        config: VerifyConfig,
        ecs: aws_sdk_ecs::Client,
        codedeploy: CodeDeploy,
        signed: Arc<SignedHttp>,
        state: StateTable,
        notifier: &'n Notifier,
    ) -> Self {
        let sleep = default_async_sleep().expect("a Tokio runtime's sleep");
        Self { config, ecs, codedeploy, signed, state, notifier, clock: Arc::new(SystemClock), sleep }
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<VerifyReport, VerifyError> {
        nightshift::conclude(FUNCTION, self.run(event).await)
    }

    async fn run(&self, event: LambdaEvent<Value>) -> nightshift::Ran<VerifyReport, VerifyError> {
        let mut report = VerifyReport { function: FUNCTION, dry_run: self.config.dry_run, ..VerifyReport::default() };
        let function_arn = event.context.invoked_function_arn.clone();
        let (region, account) = nightshift::aws::arn_region_and_account(&function_arn);
        let now_ms = u64::try_from(self.clock.now().timestamp_millis()).unwrap_or(0);
        // Lambda's deadline; none (0) when run in-process by a test.
        let seconds_left = (event.context.deadline > 0).then(|| event.context.deadline.saturating_sub(now_ms) / 1000);
        let parsed = match event::parse(&event.payload) {
            Ok(parsed) => parsed,
            Err(why) => return Ok((report, Some(VerifyError::InvalidEvent(why)))),
        };
        // A rolling service's event forwarded from another account or region names a service there.
        let parsed = match parsed {
            VerifyEvent::Rolling(done) => {
                match nightshift::aws::elsewhere((&done.account, &done.region), (account, region)) {
                    Some(why) => VerifyEvent::Ignored(why),
                    None => VerifyEvent::Rolling(done),
                }
            }
            other => other,
        };
        let result = match parsed {
            VerifyEvent::Ignored(why) => {
                info!(reason = %why, "event ignored");
                report.ignored = Some(why);
                Ok(())
            }
            VerifyEvent::CodeDeploy(hook) => {
                report.way = Some("codedeploy-hook");
                report.deployment = Some(hook.deployment_id.clone());
                let way =
                    Way::CodeDeploy { deployment_id: hook.deployment_id.clone(), execution_id: hook.execution_id };
                match self.observe_codedeploy(&hook.deployment_id).await {
                    Ok(observed) => self.verify(way, observed, Tally::default(), seconds_left, &mut report).await,
                    Err(err) => Err(err),
                }
            }
            VerifyEvent::Ecs(hook) => {
                report.way = Some("ecs-hook");
                report.deployment = Some(hook.target_revision_arn.clone());
                Box::pin(self.ecs_hook(hook, seconds_left, &mut report)).await
            }
            VerifyEvent::Rolling(done) => {
                report.way = Some("rolling");
                report.deployment = Some(done.deployment_id.clone());
                match self.observe_rolling(&done, &mut report).await {
                    Ok(Some(observed)) => {
                        self.verify(Way::Rolling, observed, Tally::default(), seconds_left, &mut report).await
                    }
                    Ok(None) => Ok(()),
                    Err(err) => Err(err),
                }
            }
        };
        Ok((report, result.err()))
    }

    /// An ECS lifecycle hook: the progress ECS handed back, then the checks. A
    /// run that cannot observe fails (ECS then rolls back, as it does for a hook that answers FAILED).
    async fn ecs_hook(
        &self,
        hook: EcsHook,
        seconds_left: Option<u64>,
        report: &mut VerifyReport,
    ) -> Result<(), VerifyError> {
        let tally: Tally = hook
            .hook_details
            .get(PROGRESS_KEY)
            .and_then(|p| serde_json::from_value(p.clone()).ok())
            .unwrap_or_default();
        let mut details = hook.hook_details.clone();
        details.remove(PROGRESS_KEY);
        let observed = self.observe_ecs_hook(&hook).await?;
        let result = self.verify(Way::Ecs, observed, tally, seconds_left, report).await;
        let status = match (&report.verdict, &report.progress) {
            (_, Some(progress)) => {
                details.insert(PROGRESS_KEY.into(), serde_json::to_value(progress).unwrap_or(Value::Null));
                "IN_PROGRESS"
            }
            // DRY_RUN changes nothing: the deployment goes on as if no hook checked it.
            (Some(_), None) if self.config.dry_run => "SUCCEEDED",
            (Some(verdict), None) if verdict.passed => "SUCCEEDED",
            _ => "FAILED",
        };
        report.ecs = Some(EcsAnswer {
            hook_status: status,
            call_back_delay: report.next_in_seconds,
            hook_details: (status == "IN_PROGRESS").then_some(details),
        });
        result
    }

    /// Decides, checks, judges, plans and applies.
    async fn verify(
        &self,
        way: Way,
        observed: Observed,
        mut tally: Tally,
        seconds_left: Option<u64>,
        report: &mut VerifyReport,
    ) -> Result<(), VerifyError> {
        let Observed { subject, values, service } = observed;
        report.cluster = Some(subject.id.cluster.clone());
        report.service = Some(subject.id.service.clone());
        report.task_definition = Some(subject.task_definition.clone());
        let parameter = self.config.parameter(&subject.id);
        report.suite = Some(parameter.clone());
        let suite = self.suite(&parameter).await?;
        let memory = self.state.memory(&subject.arn).await.map_err(VerifyError::State)?;
        let verdict = match plan::start(&way, &parameter, suite, &subject, &memory, seconds_left) {
            Start::Skip(why) => {
                info!(service = %subject.id, reason = %why, "nothing to check");
                report.ignored = Some(why);
                return Ok(());
            }
            Start::Fail(why) => Verdict::failed(why),
            Start::Run(suite) => {
                let suite = suite.for_revision(&values);
                match self.check(&way, &suite, &mut tally).await {
                    Some(verdict) => verdict,
                    None => {
                        // An ECS hook's checks go on in its next invocation.
                        info!(service = %subject.id, rounds = tally.rounds, "checks go on");
                        let (words, seconds) = next_step(&suite, &tally, self.now());
                        report.why = Some(words);
                        report.next_in_seconds = Some(seconds);
                        report.progress = Some(tally);
                        return Ok(());
                    }
                }
            }
        };
        info!(service = %subject.id, revision = %subject.task_definition, passed = verdict.passed, why = %verdict.why, "judged");
        let running = service.task_definition().unwrap_or_default();
        let planned = plan::after(&way, &subject, &verdict, &memory, running);
        report.why = planned.no_rollback.clone().or_else(|| Some(verdict.why.clone()));
        report.warnings.extend(planned.warnings.iter().cloned());
        report.verdict = Some(verdict);
        self.apply(&subject, planned, report).await
    }

    /// Rounds until judged; `None` when an ECS hook's invocation hands over to the next one.
    async fn check(&self, way: &Way, suite: &Suite, tally: &mut Tally) -> Option<Verdict> {
        let began = self.now();
        let secrets: Vec<&str> = suite.requests.iter().flat_map(|c| c.headers.values().map(String::as_str)).collect();
        loop {
            let now = self.now();
            let step = suite::next(suite, tally, now);
            let spent = u64::try_from(now - began).unwrap_or(0);
            match step {
                Next::Judge => break,
                Next::Round { after } | Next::Wait { after }
                    if *way == Way::Ecs && (after > ECS_LONGEST_WAIT || spent + after > ECS_INVOCATION_SECONDS) =>
                {
                    return None;
                }
                Next::Round { after } => {
                    if after > 0 {
                        self.sleep.sleep(Duration::from_secs(after)).await;
                    }
                    let answers = probe::round(self.signed.connector(), suite).await;
                    tally.add_round(suite, &answers, &secrets, self.now());
                    match probe::in_alarm(&self.signed, &suite.alarms).await {
                        Ok(fired) => tally.add_alarms(fired),
                        Err(why) => return Some(Verdict::failed(why)),
                    }
                }
                Next::Wait { after } => self.sleep.sleep(Duration::from_secs(after)).await,
            }
        }
        // Alarms that went into ALARM and out again between two rounds.
        if !suite.alarms.is_empty() && tally.alarms.is_empty() {
            match probe::went_into_alarm(&self.signed, &suite.alarms, tally.started).await {
                Ok(fired) => tally.add_alarms(fired),
                Err(why) => return Some(Verdict::failed(why)),
            }
        }
        Some(suite::judge(suite, tally))
    }

    async fn apply(
        &self,
        subject: &Subject,
        planned: plan::VerdictPlan,
        report: &mut VerifyReport,
    ) -> Result<(), VerifyError> {
        let now = self.clock.now();
        if self.config.dry_run {
            report.warnings.push(format!("DRY_RUN: {} writes, answer and rollback not made", planned.writes.len()));
        }
        for write in &planned.writes {
            if let StateWrite::Quarantine { digest, .. } = write {
                report.quarantined.push(nightshift::quarantine::short(digest));
            }
            if !self.config.dry_run {
                self.state.write(write, now).await.map_err(VerifyError::State)?;
            }
        }
        if let Some((deployment, execution, status)) = &planned.answer {
            if !self.config.dry_run {
                self.answer(deployment, execution, status.as_str(), report).await?;
            }
            report.answered = Some(status.as_str());
        }
        if let Some(to) = &planned.rollback {
            if !self.config.dry_run {
                self.ecs
                    .update_service()
                    .cluster(&subject.id.cluster)
                    .service(&subject.id.service)
                    .task_definition(to)
                    .send()
                    .await
                    .map_err(|e| {
                        VerifyError::Ecs(CallError::new(
                            "UpdateService",
                            &subject.id.to_string(),
                            e.into_service_error(),
                        ))
                    })?;
            }
            info!(service = %subject.id, to = %to, "rolled back");
            report.rolled_back_to = Some(to.clone());
        }
        if let Some((channels, notice)) = &planned.notice {
            if self.config.dry_run {
                let names: Vec<String> = channels.iter().map(ToString::to_string).collect();
                report.warnings.push(format!("DRY_RUN: would tell {}", names.join(" ")));
            } else {
                report.told.extend(self.notifier.tell(channels, notice).await);
            }
        }
        Ok(())
    }

    /// Answers CodeDeploy's hook; an answer already given (a second delivery) is no error.
    async fn answer(
        &self,
        deployment: &str,
        execution: &str,
        status: &str,
        report: &mut VerifyReport,
    ) -> Result<(), VerifyError> {
        match self.codedeploy.answer_hook(deployment, execution, status).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                report.warnings.push(format!("the hook of {deployment} was answered already"));
                Ok(())
            }
            Err(err) => Err(VerifyError::CodeDeploy(err)),
        }
    }

    fn now(&self) -> i64 {
        self.clock.now().timestamp()
    }

    /// The suite of a service: `None` when its parameter does not exist.
    async fn suite(&self, parameter: &str) -> Result<Option<Result<Suite, String>>, VerifyError> {
        match self.signed.find_parameter(parameter).await {
            Ok(found) => Ok(found.map(|(text, _)| Suite::parse(parameter, &text))),
            Err(why) => Err(VerifyError::Ssm(format!("GetParameter on {parameter} failed: {why}"))),
        }
    }

    /// A CodeDeploy deployment's service and new revision (its AppSpec's).
    async fn observe_codedeploy(&self, id: &str) -> Result<Observed, VerifyError> {
        let info = self
            .codedeploy
            .deployment(id)
            .await
            .map_err(VerifyError::CodeDeploy)?
            .ok_or_else(|| VerifyError::NotFound(format!("CodeDeploy has no deployment {id}")))?;
        let task_definition = info
            .revision
            .as_ref()
            .and_then(Revision::app_spec)
            .and_then(nightshift::rollout::appspec::task_definition)
            .ok_or_else(|| VerifyError::NotFound(format!("the AppSpec of {id} names no ECS task definition")))?;
        let group = GroupName {
            application: info.application_name.clone().unwrap_or_default(),
            deployment_group: info.deployment_group_name.clone().unwrap_or_default(),
        };
        let service_id = self
            .codedeploy
            .group_service(&group)
            .await
            .map_err(VerifyError::CodeDeploy)?
            .ok_or_else(|| VerifyError::NotFound(format!("the group {group} deploys no ECS service")))?;
        let service = self.service(&service_id).await?;
        // Blue still runs the revision before until the traffic moves.
        let previous = service.task_definition().filter(|td| *td != task_definition).map(str::to_owned);
        self.observed(service, task_definition, id.to_owned(), previous).await
    }

    /// An ECS lifecycle hook's service and target revision; the revision before is the one taking production traffic.
    async fn observe_ecs_hook(&self, hook: &EcsHook) -> Result<Observed, VerifyError> {
        let mut arns = vec![hook.target_revision_arn.clone()];
        let source = hook.hook_details.get("productionTrafficWeights").and_then(Value::as_object).and_then(|w| {
            w.iter()
                .filter(|(arn, _)| **arn != hook.target_revision_arn)
                .max_by_key(|(_, v)| v.as_i64())
                .map(|(a, _)| a.clone())
        });
        arns.extend(source.clone());
        let out =
            self.ecs.describe_service_revisions().set_service_revision_arns(Some(arns)).send().await.map_err(|e| {
                VerifyError::Ecs(CallError::new(
                    "DescribeServiceRevisions",
                    &hook.target_revision_arn,
                    e.into_service_error(),
                ))
            })?;
        let td_of = |arn: &str| {
            out.service_revisions()
                .iter()
                .find(|r| r.service_revision_arn() == Some(arn))
                .and_then(|r| r.task_definition())
                .map(str::to_owned)
        };
        let task_definition = td_of(&hook.target_revision_arn).ok_or_else(|| {
            VerifyError::NotFound(format!("ECS has no service revision {}", hook.target_revision_arn))
        })?;
        let previous = source.as_deref().and_then(td_of).filter(|td| *td != task_definition);
        let service = self.service(&hook.service).await?;
        self.observed(service, task_definition, hook.target_revision_arn.clone(), previous).await
    }

    /// A rolling service whose deployment completed; `None` (with the reason in
    /// the report) when it is not one to verify now.
    async fn observe_rolling(
        &self,
        done: &Completed,
        report: &mut VerifyReport,
    ) -> Result<Option<Observed>, VerifyError> {
        report.cluster = Some(done.service.cluster.clone());
        report.service = Some(done.service.service.clone());
        let service = match self.service(&done.service).await {
            Ok(service) => service,
            Err(VerifyError::NotFound(why)) => {
                report.ignored = Some(why);
                return Ok(None);
            }
            Err(err) => return Err(err),
        };
        let controller = service.deployment_controller().map(|c| c.r#type().as_str().to_owned());
        if controller.as_deref().is_some_and(|c| c != "ECS") {
            report.ignored =
                Some(format!("{} is deployed by {}: its hook checks it", done.service, controller.unwrap_or_default()));
            return Ok(None);
        }
        let strategy = service.deployment_configuration().and_then(|c| c.strategy()).map(|s| s.as_str().to_owned());
        if let Some(strategy) = strategy.filter(|s| s != "ROLLING") {
            report.ignored = Some(format!("{} deploys by {strategy}: its ECS lifecycle hook checks it", done.service));
            return Ok(None);
        }
        let primary = service.deployments().iter().find(|d| d.status() == Some("PRIMARY"));
        if primary.and_then(|d| d.id()) != Some(done.deployment_id.as_str()) {
            report.ignored = Some(format!(
                "{} is no longer {}'s deployment: a newer one replaced it, and is verified when it completes",
                done.deployment_id, done.service
            ));
            return Ok(None);
        }
        let task_definition = service.task_definition().unwrap_or_default().to_owned();
        let previous = self.previous_revision(&done.service, &task_definition).await?;
        Ok(Some(self.observed(service, task_definition, done.deployment_id.clone(), previous).await?))
    }

    /// The revision a rolling service ran before `task_definition`, from ECS's history of its deployments.
    async fn previous_revision(&self, id: &ServiceId, task_definition: &str) -> Result<Option<String>, VerifyError> {
        let listed =
            self.ecs.list_service_deployments().cluster(&id.cluster).service(&id.service).max_results(20).send().await;
        let listed = match listed {
            Ok(out) => out,
            Err(e) => {
                let err = e.into_service_error();
                if err.is_unsupported_feature_exception() {
                    return Ok(None);
                }
                return Err(VerifyError::Ecs(CallError::new("ListServiceDeployments", &id.to_string(), err)));
            }
        };
        let Some(newest) = listed.service_deployments().iter().max_by_key(|d| d.created_at().map(|t| t.as_nanos()))
        else {
            return Ok(None);
        };
        let arn = newest.service_deployment_arn().unwrap_or_default();
        let described =
            self.ecs.describe_service_deployments().service_deployment_arns(arn).send().await.map_err(|e| {
                VerifyError::Ecs(CallError::new("DescribeServiceDeployments", arn, e.into_service_error()))
            })?;
        let Some(deployment) = described.service_deployments().first() else { return Ok(None) };
        let target = deployment.target_service_revision().and_then(|r| r.arn());
        let source = deployment.source_service_revisions().first().and_then(|r| r.arn());
        let arns: Vec<String> = target.iter().chain(source.iter()).map(|a| (*a).to_owned()).collect();
        if source.is_none() {
            return Ok(None);
        }
        let revisions =
            self.ecs.describe_service_revisions().set_service_revision_arns(Some(arns)).send().await.map_err(|e| {
                VerifyError::Ecs(CallError::new("DescribeServiceRevisions", arn, e.into_service_error()))
            })?;
        let td_of = |arn: Option<&str>| {
            revisions
                .service_revisions()
                .iter()
                .find(|r| r.service_revision_arn() == arn)
                .and_then(|r| r.task_definition())
        };
        // Only a history whose newest rollout is the one verified says what ran before it.
        if td_of(target) != Some(task_definition) {
            return Ok(None);
        }
        Ok(td_of(source).filter(|td| *td != task_definition).map(str::to_owned))
    }

    /// The service, with its tags; `NotFound` when ECS no longer has it.
    async fn service(&self, id: &ServiceId) -> Result<Service, VerifyError> {
        let found = nightshift::rollout::describe_service(&self.ecs, id).await.map_err(VerifyError::Ecs)?;
        found.ok_or_else(|| VerifyError::NotFound(format!("ECS has no service {id}")))
    }

    async fn task_definition(&self, arn: &str) -> Result<(TaskDefinition, Vec<aws_sdk_ecs::types::Tag>), VerifyError> {
        nightshift::rollout::describe_task_definition(&self.ecs, arn).await.map_err(VerifyError::Ecs)
    }

    /// The subject: the revision's digests and values, and the digests of the one before.
    async fn observed(
        &self,
        service: Service,
        task_definition: String,
        deployment: String,
        previous: Option<String>,
    ) -> Result<Observed, VerifyError> {
        let (td, td_tags) = self.task_definition(&task_definition).await?;
        let values = revision_values(&td, &td_tags);
        let digests = digests_of(&td);
        let previous_digests = match &previous {
            Some(arn) => digests_of(&self.task_definition(arn).await?.0),
            None => Vec::new(),
        };
        let channels = notify::parse_channels(tag_value(service.tags(), notify::NOTIFY_TAG).unwrap_or_default())
            .map_err(|why| format!("{}: {why}", notify::NOTIFY_TAG));
        let subject = Subject {
            id: ServiceId::of(&service),
            arn: service.service_arn().unwrap_or_default().to_owned(),
            channels,
            task_definition,
            deployment,
            digests,
            previous,
            previous_digests,
            follows: tag_value(service.tags(), nightshift::ecs::DEPLOY_TAG).is_some()
                || tag_value(service.tags(), nightshift::ecs::PROMOTE_FROM_TAG).is_some(),
            identity: nightshift::rollout::revision_identity(&td_tags),
        };
        Ok(Observed { subject, values, service })
    }
}

/// The digests a revision's containers are pinned to, in its order.
pub fn digests_of(td: &TaskDefinition) -> Vec<String> {
    let mut digests = Vec::new();
    for image in td.container_definitions().iter().filter_map(|c| c.image()) {
        if let Some(digest) = image.parse::<ImageRef>().ok().and_then(|i| i.digest)
            && !digests.contains(&digest)
        {
            digests.push(digest);
        }
    }
    digests
}

/// What `${digest}`, `${tag}` and `${revision}` stand for: the first container pinned by digest.
pub fn revision_values(td: &TaskDefinition, td_tags: &[aws_sdk_ecs::types::Tag]) -> RevisionValues {
    let revision = format!("{}:{}", td.family().unwrap_or_default(), td.revision());
    let pinned = td.container_definitions().iter().find_map(|c| {
        let image = c.image()?.parse::<ImageRef>().ok()?;
        Some((c.name().unwrap_or_default().to_owned(), image))
    });
    let Some((container, image)) = pinned else {
        return RevisionValues { revision, ..RevisionValues::default() };
    };
    let tag = deployed_image_tag(td_tags, &container).map(str::to_owned).or(image.tag.clone()).unwrap_or_default();
    RevisionValues { digest: image.digest.unwrap_or_default(), tag, revision }
}

/// When the next round is due: in words, and in seconds (at least 1, ECS's callback delay).
fn next_step(suite: &Suite, tally: &Tally, now: i64) -> (String, u64) {
    match suite::next(suite, tally, now) {
        Next::Round { after } => (format!("{} rounds sent; the next in {after} s", tally.rounds), after.max(1)),
        Next::Wait { after } => (format!("{} rounds sent; the bake ends in {after} s", tally.rounds), after.max(1)),
        Next::Judge => (format!("{} rounds sent; judged next", tally.rounds), 1),
    }
}
