//! `deploy-on-push`: an image pushed to ECR is rolled out to the ECS services
//! that follow its repository (tag `nightshift:deploy`): with the deployment
//! circuit breaker's rollback, or, for a blue/green service (the CODE_DEPLOY
//! controller), as a CodeDeploy deployment with automatic rollback.
//!
//! Parse (ECR push) -> observe (services, then only the task definitions that
//! matter) -> plan (policy per container) -> observe ECR (is the push still the
//! newest image for each change) -> apply (register; update, or observe the
//! CodeDeploy group and create a deployment) -> report.

pub mod bluegreen;
pub mod codedeploy;
pub mod ecr;
pub mod ecs;
pub mod error;
pub mod event;
pub mod image;
pub mod notice;
pub mod plan;
pub mod policy;
pub mod record;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_codedeploy::types::DeploymentGroupInfo;
use aws_sdk_ecs::types::{ContainerDefinition, Service, Tag, TaskDefinition};
use lambda_runtime::LambdaEvent;
use nightshift::config::{self, ConfigError, Vars};
use nightshift::notify::{self, Delivery, Level, Notifier};
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

use bluegreen::{AppSpec, GroupName, Readiness};
pub use error::DeployError;
use event::{Push, Trigger};
use plan::{Candidate, ImageChange, ServiceId, ServicePlan};
use record::{RUNNING_TAG, Record};

pub const FUNCTION: &str = "deploy-on-push";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployConfig {
    /// `CLUSTERS`: cluster names; empty for every cluster in the account and region.
    pub clusters: Vec<String>,
    /// `DRY_RUN`: decide and report, register and update nothing.
    pub dry_run: bool,
}

impl DeployConfig {
    pub fn from_vars(vars: &impl Vars) -> Result<Self, ConfigError> {
        Ok(Self { clusters: config::list(vars, "CLUSTERS"), dry_run: config::dry_run(vars)? })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deployed {
    #[serde(flatten)]
    pub id: ServiceId,
    /// The service's deployment controller: `ECS` (rolled by ECS, with the
    /// circuit breaker) or `CODE_DEPLOY` (a CodeDeploy deployment).
    pub controller: &'static str,
    pub old_task_definition: String,
    /// `None` with `DRY_RUN`.
    pub new_task_definition: Option<String>,
    pub images: Vec<ImageChange>,
    /// The CodeDeploy deployment, for a blue/green service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codedeploy: Option<CodeDeployment>,
}

/// A CodeDeploy deployment nightshift created (or, with `DRY_RUN`, would create).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CodeDeployment {
    pub application: String,
    pub deployment_group: String,
    pub deployment_config: String,
    /// `None` with `DRY_RUN`.
    pub deployment_id: Option<String>,
}

/// The deployment controllers as the report names them.
pub const ECS_CONTROLLER: &str = "ECS";
pub const CODE_DEPLOY_CONTROLLER: &str = "CODE_DEPLOY";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotDeployed {
    #[serde(flatten)]
    pub id: ServiceId,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct DeployReport {
    pub function: &'static str,
    pub dry_run: bool,
    /// Set when the event was not a push to act on: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<Push>,
    pub deployed: Vec<Deployed>,
    pub skipped: Vec<NotDeployed>,
    pub failed: Vec<NotDeployed>,
    /// What went wrong without failing a service (a record that could not be kept).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The services' channels told (a refused push; at `NOTIFY_LEVEL=all`, each rollout started).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub told: Vec<Delivery>,
}

/// Its notices go to each service's own channels (see `tell`), not to `NOTIFY_CHANNELS`.
impl nightshift::notify::Notable for DeployReport {}

impl nightshift::Measured for DeployReport {
    fn metrics(&self) -> Vec<nightshift::Metric> {
        use nightshift::Metric;
        vec![
            Metric::count("ServicesDeployed", self.deployed.len()),
            Metric::count("ServicesSkipped", self.skipped.len()),
            Metric::count("ServicesFailed", self.failed.len()),
        ]
    }
}

pub struct DeployOnPush {
    config: DeployConfig,
    ecs: aws_sdk_ecs::Client,
    ecr: aws_sdk_ecr::Client,
    codedeploy: aws_sdk_codedeploy::Client,
    /// Which CodeDeploy group deploys each blue/green service, as found by an
    /// earlier invocation of this warm process (checked again before each use).
    groups: Mutex<HashMap<ServiceId, GroupName>>,
    /// Tells the services' channels (`nightshift:notify`); `None`: no one is told.
    notifier: Option<Arc<Notifier>>,
    /// Task definitions read by earlier invocations of this warm process: a
    /// revision never changes, so a push that concerns none of the services
    /// costs no DescribeTaskDefinition once their revisions are known.
    known: Mutex<HashMap<String, (TaskDefinition, Vec<Tag>)>>,
}

/// Revisions kept in `known` at the most; beyond it the memory starts afresh.
const KNOWN_REVISIONS: usize = 512;

/// A service that may follow the push, with what its decision needs.
struct Examined {
    service: Service,
    id: ServiceId,
    task_definition_arn: String,
    /// It carries a record (`nightshift:running`) of the revision it runs.
    recorded: bool,
}

impl DeployOnPush {
    pub fn new(
        config: DeployConfig,
        ecs: aws_sdk_ecs::Client,
        ecr: aws_sdk_ecr::Client,
        codedeploy: aws_sdk_codedeploy::Client,
    ) -> Self {
        Self {
            config,
            ecs,
            ecr,
            codedeploy,
            groups: Mutex::new(HashMap::new()),
            notifier: None,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// Tells the services' channels through this notifier.
    pub fn with_notifier(mut self, notifier: Arc<Notifier>) -> Self {
        self.notifier = Some(notifier);
        self
    }

    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<DeployReport, DeployError> {
        let mut report = DeployReport { function: FUNCTION, dry_run: self.config.dry_run, ..DeployReport::default() };
        let push = match event::parse(&event.payload).map_err(DeployError::InvalidEvent)? {
            Trigger::Ignored(why) => {
                info!(reason = %why, "event ignored");
                report.ignored = Some(why);
                return nightshift::finish(FUNCTION, report, None);
            }
            Trigger::Push(push) => push,
        };
        info!(repository = %push.repository, tag = ?push.tag, digest = %push.digest, "push");
        report.push = Some(push.clone());
        let Some(tag) = push.tag.clone() else {
            report.ignored = Some("the push has no tag, and every policy decides by tag: nothing deployed".into());
            return nightshift::finish(FUNCTION, report, None);
        };

        let mut audience = Audience::default();
        let examined = self.observe_services(&push, &tag, &mut audience, &mut report).await?;
        let task_definitions = self.describe_task_definitions(&examined, &mut report).await;
        // The plan, whole, before anything changes.
        let plans: Vec<(Examined, ServicePlan)> = examined
            .into_iter()
            .filter_map(|candidate| {
                let (td, td_tags) = task_definitions.get(&candidate.task_definition_arn)?;
                let plan = plan::plan_service(&candidate.service, td, td_tags, &push, &tag);
                Some((candidate, plan))
            })
            .collect();
        let plans = self.keep_forward(&push, &tag, plans, &mut report).await;

        // Services that share a task definition and a change share one new revision.
        let mut registered: Registered = HashMap::new();
        // Every CodeDeploy group of the account, when this invocation had to look them all up.
        let mut groups: Option<HashMap<ServiceId, DeploymentGroupInfo>> = None;
        for (candidate, plan) in plans {
            let Some((td, td_tags)) = task_definitions.get(&candidate.task_definition_arn) else {
                continue;
            };
            match plan {
                ServicePlan::Skip(reason) => {
                    info!(cluster = %candidate.id.cluster, service = %candidate.id.service, %reason, "skipped");
                    if !candidate.recorded {
                        let arn = td.task_definition_arn().unwrap_or(&candidate.task_definition_arn);
                        self.remember(&candidate, arn, td.container_definitions(), td_tags, &mut report).await;
                    }
                    report.skipped.push(NotDeployed { id: candidate.id, reason });
                }
                ServicePlan::Deploy(changes) => {
                    let rollout = Rollout { candidate, td, td_tags, changes };
                    if bluegreen::is_blue_green(&rollout.candidate.service) {
                        self.deploy_blue_green(rollout, &tag, &mut registered, &mut groups, &mut report).await;
                    } else {
                        self.deploy(rollout, &tag, &mut registered, &mut report).await;
                    }
                }
            }
        }

        self.tell(&push, &audience, &mut report).await;
        let error = (!report.failed.is_empty()).then(|| DeployError::ServicesFailed {
            total: report.deployed.len() + report.skipped.len() + report.failed.len(),
            failures: report
                .failed
                .iter()
                .map(|f| format!("{}/{}: {}", f.id.cluster, f.id.service, f.reason))
                .collect(),
        });
        nightshift::finish(FUNCTION, report, error)
    }

    /// Every service in the clusters, described with tags; returns the ones
    /// whose task definition must be read, and reports the ones skipped already.
    async fn observe_services(
        &self,
        push: &Push,
        tag: &str,
        audience: &mut Audience,
        report: &mut DeployReport,
    ) -> Result<Vec<Examined>, DeployError> {
        let clusters = if self.config.clusters.is_empty() {
            ecs::list_clusters(&self.ecs).await?
        } else {
            self.config.clusters.clone()
        };
        let mut examined = Vec::new();
        for cluster in &clusters {
            let arns = nightshift::ecs::list_services(&self.ecs, cluster).await?;
            for service in nightshift::ecs::describe_services(&self.ecs, cluster, &arns).await? {
                let id = ServiceId::of(&service);
                if let Some(channels) = nightshift::ecs::tag_value(service.tags(), NOTIFY_TAG) {
                    match notify::parse_channels(channels) {
                        Ok(channels) => {
                            audience.channels.insert(id.clone(), channels);
                        }
                        Err(why) => report.warnings.push(format!("{}/{}: {NOTIFY_TAG}: {why}", id.cluster, id.service)),
                    }
                }
                let candidate = plan::triage(&service, push, tag);
                if matches!(candidate, Candidate::Skip(_)) && plan::is_quarantined(&service, push) {
                    audience.refused.push(id.clone());
                }
                match candidate {
                    Candidate::NotFollowing => {}
                    Candidate::Skip(reason) => {
                        info!(cluster = %id.cluster, service = %id.service, %reason, "skipped");
                        report.skipped.push(NotDeployed { id, reason });
                    }
                    Candidate::Examine => examined.push(Examined {
                        task_definition_arn: service.task_definition().unwrap_or_default().to_owned(),
                        recorded: Record::current(&service).is_some(),
                        service,
                        id,
                    }),
                }
            }
        }
        Ok(examined)
    }

    /// Each distinct running task definition, once. A service whose task
    /// definition cannot be read is reported failed; the others go ahead.
    async fn describe_task_definitions(
        &self,
        examined: &[Examined],
        report: &mut DeployReport,
    ) -> HashMap<String, (TaskDefinition, Vec<Tag>)> {
        let mut described = HashMap::new();
        let mut unreadable: HashMap<String, String> = HashMap::new();
        for candidate in examined {
            let arn = &candidate.task_definition_arn;
            if !described.contains_key(arn) && !unreadable.contains_key(arn) {
                match self.task_definition(arn).await {
                    Ok(found) => {
                        described.insert(arn.clone(), found);
                    }
                    Err(err) => {
                        unreadable.insert(arn.clone(), err.to_string());
                    }
                }
            }
            if let Some(reason) = unreadable.get(arn) {
                warn!(cluster = %candidate.id.cluster, service = %candidate.id.service, %reason, "failed");
                report.failed.push(NotDeployed { id: candidate.id.clone(), reason: reason.clone() });
            }
        }
        described
    }

    /// A revision from this process's memory, else read (and remembered).
    async fn task_definition(&self, arn: &str) -> Result<(TaskDefinition, Vec<Tag>), DeployError> {
        if let Some(found) = self.known.lock().unwrap_or_else(|p| p.into_inner()).get(arn).cloned() {
            return Ok(found);
        }
        let found = ecs::describe_task_definition(&self.ecs, arn).await?;
        // Only a named revision is immutable; `family` alone moves with each registration.
        let is_revision = arn.rsplit_once(':').is_some_and(|(_, r)| r.parse::<u32>().is_ok());
        if is_revision {
            let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            if known.len() >= KNOWN_REVISIONS {
                known.clear();
            }
            known.insert(arn.to_owned(), found.clone());
        }
        Ok(found)
    }

    /// Never backwards: asks ECR about the pushed image and what each changing
    /// container runs, and drops every change the push would move backwards
    /// (events come late, twice, and out of order). When ECR cannot be read,
    /// the services that would deploy fail, so the push is retried.
    async fn keep_forward(
        &self,
        push: &Push,
        tag: &str,
        plans: Vec<(Examined, ServicePlan)>,
        report: &mut DeployReport,
    ) -> Vec<(Examined, ServicePlan)> {
        let changes: Vec<&ImageChange> = plans
            .iter()
            .filter_map(|(_, plan)| match plan {
                ServicePlan::Deploy(changes) => Some(changes),
                ServicePlan::Skip(_) => None,
            })
            .flatten()
            .collect();
        if changes.is_empty() {
            return plans;
        }
        let ids = plan::images_to_check(push, &changes);
        match ecr::describe_images(&self.ecr, &push.account, &push.repository, &ids).await {
            Ok(images) => plans
                .into_iter()
                .map(|(candidate, plan)| (candidate, plan::keep_forward(plan, push, tag, &images)))
                .collect(),
            Err(err) => {
                let reason = format!("ECR {err}");
                let (deploying, rest): (Vec<_>, Vec<_>) =
                    plans.into_iter().partition(|(_, plan)| matches!(plan, ServicePlan::Deploy(_)));
                for (candidate, _) in deploying {
                    warn!(cluster = %candidate.id.cluster, service = %candidate.id.service, %reason, "failed");
                    report.failed.push(NotDeployed { id: candidate.id, reason: reason.clone() });
                }
                rest
            }
        }
    }

    /// Records on the service what the revision runs (`nightshift:running`),
    /// so the next push decides from the service alone. Not with `DRY_RUN`; a
    /// record that cannot be written costs reads later, not this push.
    async fn remember(
        &self,
        candidate: &Examined,
        revision: &str,
        containers: &[ContainerDefinition],
        tags: &[Tag],
        report: &mut DeployReport,
    ) {
        let (Some(arn), Some(registry)) =
            (candidate.service.service_arn(), record::service_registry(&candidate.service))
        else {
            return;
        };
        if self.config.dry_run {
            return;
        }
        let Some(value) = Record::of(revision, containers, tags, &registry).render() else {
            info!(service = %arn, "what the service runs does not fit in a tag value; not recorded");
            return;
        };
        if let Some(problem) = nightshift::ecs::tag_count_problem(candidate.service.tags(), &[RUNNING_TAG]) {
            let (cluster, service) = (&candidate.id.cluster, &candidate.id.service);
            warn!(%cluster, %service, %problem, "not recorded");
            report.warnings.push(format!("{cluster}/{service}: {RUNNING_TAG} not written: {problem}"));
            return;
        }
        if let Err(err) = ecs::tag_service(&self.ecs, arn, RUNNING_TAG, &value).await {
            warn!(service = %arn, error = %err, "could not record what the service runs");
        }
    }

    /// A service on the ECS controller: the new revision, then UpdateService
    /// with the circuit breaker's rollback on.
    async fn deploy(&self, rollout: Rollout<'_>, tag: &str, registered: &mut Registered, report: &mut DeployReport) {
        let Rollout { candidate, td, td_tags, changes } = rollout;
        let old = td.task_definition_arn().unwrap_or(&candidate.task_definition_arn).to_owned();
        let (containers, tags) = match new_revision(td, td_tags, &changes, tag) {
            Ok(revision) => revision,
            Err(problem) => return fail(report, candidate.id, problem),
        };
        if self.config.dry_run {
            let id = candidate.id;
            info!(cluster = %id.cluster, service = %id.service, ?changes, "would deploy");
            return report.deployed.push(Deployed::new(id, ECS_CONTROLLER, old, None, changes, None));
        }
        let result = match self.register(td, &old, &changes, &containers, &tags, registered).await {
            Ok(new_arn) => {
                let config = plan::with_circuit_breaker(candidate.service.deployment_configuration());
                let (cluster, service) = (&candidate.id.cluster, &candidate.id.service);
                ecs::update_service(&self.ecs, cluster, service, &new_arn, config).await.map(|()| new_arn)
            }
            Err(err) => Err(err),
        };
        if let Ok(new_arn) = &result {
            self.remember(&candidate, new_arn, &containers, &tags, report).await;
        }
        let id = candidate.id;
        match result {
            Ok(new_arn) => {
                info!(cluster = %id.cluster, service = %id.service, from = %old, to = %new_arn, "deployed");
                report.deployed.push(Deployed::new(id, ECS_CONTROLLER, old, Some(new_arn), changes, None));
            }
            Err(err) => fail(report, id, err.to_string()),
        }
    }

    /// A blue/green service: the new revision, then a CodeDeploy deployment
    /// of it in the group that deploys the service, unless the group is busy
    /// or already deploys it. The record (`nightshift:running`) is left to the
    /// next push: the service runs the new revision only once CodeDeploy is done.
    async fn deploy_blue_green(
        &self,
        rollout: Rollout<'_>,
        tag: &str,
        registered: &mut Registered,
        groups: &mut Option<HashMap<ServiceId, DeploymentGroupInfo>>,
        report: &mut DeployReport,
    ) {
        let Rollout { candidate, td, td_tags, changes } = rollout;
        let old = td.task_definition_arn().unwrap_or(&candidate.task_definition_arn).to_owned();
        let prepared = new_revision(td, td_tags, &changes, tag)
            .and_then(|revision| AppSpec::of(&candidate.service).map(|appspec| (revision, appspec)));
        let ((containers, tags), appspec) = match prepared {
            Ok(prepared) => prepared,
            Err(problem) => return fail(report, candidate.id, problem),
        };
        let info = match self.group_for(&candidate.service, &candidate.id, groups).await {
            Ok(info) => info,
            Err(problem) => return fail(report, candidate.id, problem),
        };
        let group = GroupName::of(&info);
        let target_is_the_change = match bluegreen::target_task_definition(&info) {
            Some(target) if target != old => match self.task_definition(&target).await {
                Ok((target, _)) => bluegreen::carries(&target, td.family(), &changes),
                Err(err) => {
                    warn!(%group, error = %err, "the group's target revision cannot be read");
                    false
                }
            },
            _ => false,
        };
        match bluegreen::readiness(&info, target_is_the_change) {
            Readiness::Free => {}
            Readiness::Already(reason) => {
                info!(cluster = %candidate.id.cluster, service = %candidate.id.service, %reason, "skipped");
                return report.skipped.push(NotDeployed { id: candidate.id, reason });
            }
            Readiness::Busy(reason) => return fail(report, candidate.id, reason),
        }
        let (asked_config, config) = bluegreen::deployment_config(&candidate.service, &info);
        let mut deployment = CodeDeployment {
            application: group.application.clone(),
            deployment_group: group.deployment_group.clone(),
            deployment_config: config,
            deployment_id: None,
        };
        let id = candidate.id;
        if self.config.dry_run {
            info!(cluster = %id.cluster, service = %id.service, %group, ?changes, "would create a CodeDeploy deployment");
            let deployed = Deployed::new(id, CODE_DEPLOY_CONTROLLER, old, None, changes, Some(deployment));
            return report.deployed.push(deployed);
        }
        let new_arn = match self.register(td, &old, &changes, &containers, &tags, registered).await {
            Ok(new_arn) => new_arn,
            Err(err) => return fail(report, id, err.to_string()),
        };
        let description = bluegreen::description(tag);
        let created = codedeploy::create_deployment(
            &self.codedeploy,
            &group,
            appspec.render(&new_arn),
            asked_config,
            description,
        )
        .await;
        match created {
            Ok(deployment_id) => {
                info!(cluster = %id.cluster, service = %id.service, %group, deployment = %deployment_id,
                      from = %old, to = %new_arn, "CodeDeploy deployment created");
                deployment.deployment_id = Some(deployment_id);
                let deployed = Deployed::new(id, CODE_DEPLOY_CONTROLLER, old, Some(new_arn), changes, Some(deployment));
                report.deployed.push(deployed);
            }
            Err(err) => fail(report, id, format!("CodeDeploy {err}")),
        }
    }

    /// The group that deploys the service, as CodeDeploy describes it now: the
    /// one `nightshift:codedeploy` names, else the one whose `ecsServices`
    /// names it (remembered by a warm process, checked again; looked up in
    /// every ECS application of the account when not known, once per invocation).
    async fn group_for(
        &self,
        service: &Service,
        id: &ServiceId,
        groups: &mut Option<HashMap<ServiceId, DeploymentGroupInfo>>,
    ) -> Result<DeploymentGroupInfo, String> {
        let read_error = |err: nightshift::aws::CallError| format!("CodeDeploy {err}");
        if let Some(named) = bluegreen::named_group(service) {
            let name = named?;
            let tag = bluegreen::CODEDEPLOY_TAG;
            let info = codedeploy::describe_group(&self.codedeploy, &name)
                .await
                .map_err(read_error)?
                .ok_or_else(|| format!("CodeDeploy has no deployment group {name} (named by {tag})"))?;
            return if bluegreen::deploys(&info, id) {
                Ok(info)
            } else {
                Err(format!(
                    "the deployment group {name} (named by {tag}) does not deploy {}/{}",
                    id.cluster, id.service
                ))
            };
        }
        let not_found = || {
            format!(
                "no CodeDeploy deployment group deploys {}/{}: create one for it, or name it with the tag \
                 {}=<application>/<deployment-group>",
                id.cluster,
                id.service,
                bluegreen::CODEDEPLOY_TAG
            )
        };
        if let Some(all) = groups {
            return all.get(id).cloned().ok_or_else(not_found);
        }
        let remembered = self.groups.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned();
        if let Some(name) = remembered
            && let Some(info) = codedeploy::describe_group(&self.codedeploy, &name).await.map_err(read_error)?
            && bluegreen::deploys(&info, id)
        {
            return Ok(info);
        }
        let described = codedeploy::ecs_groups(&self.codedeploy).await.map_err(read_error)?;
        let index = bluegreen::index(&described);
        let all: HashMap<ServiceId, DeploymentGroupInfo> = index
            .iter()
            .filter_map(|(id, name)| {
                described.iter().find(|g| &GroupName::of(g) == name).map(|g| (id.clone(), g.clone()))
            })
            .collect();
        *self.groups.lock().unwrap_or_else(|p| p.into_inner()) = index;
        let found = all.get(id).cloned();
        *groups = Some(all);
        found.ok_or_else(not_found)
    }

    /// The new revision's ARN: registered, or the one this invocation already
    /// registered for the same revision and change.
    async fn register(
        &self,
        td: &TaskDefinition,
        old: &str,
        changes: &[ImageChange],
        containers: &[ContainerDefinition],
        tags: &[Tag],
        registered: &mut Registered,
    ) -> Result<String, DeployError> {
        let key = (old.to_owned(), changes.to_vec());
        if let Some(arn) = registered.get(&key) {
            return Ok(arn.clone());
        }
        let arn = ecs::register_clone(&self.ecs, td, containers.to_vec(), tags.to_vec()).await?;
        registered.insert(key, arn.clone());
        Ok(arn)
    }
}

pub use nightshift::notify::NOTIFY_TAG;

/// Whom to tell: each following service's channels, and the services that refused the push.
#[derive(Default)]
struct Audience {
    channels: HashMap<ServiceId, Vec<nightshift::notify::Channel>>,
    refused: Vec<ServiceId>,
}

impl DeployOnPush {
    /// Tells each refusing service's channels, and at `NOTIFY_LEVEL=all` each
    /// started rollout's. Not with `DRY_RUN`; a channel that fails is reported
    /// (`told`), and fails nothing: the push's work is done.
    async fn tell(&self, push: &Push, audience: &Audience, report: &mut DeployReport) {
        let Some(notifier) = &self.notifier else { return };
        let mut notices = Vec::new();
        for id in &audience.refused {
            notices.push((id.clone(), notice::refused(id, push)));
        }
        if notifier.config().level == Level::All {
            notices.extend(report.deployed.iter().map(|d| (d.id.clone(), notice::started(d, push))));
        }
        for (id, notice) in notices {
            let Some(channels) = audience.channels.get(&id).filter(|c| !c.is_empty()) else { continue };
            if self.config.dry_run {
                report.warnings.push(format!("DRY_RUN: would tell {}: {}", channels.len(), notice.title));
                continue;
            }
            report.told.extend(notifier.tell(channels, &notice).await);
        }
    }
}

/// New revisions registered by this invocation, by the revision they were
/// cloned from and the change.
type Registered = HashMap<(String, Vec<ImageChange>), String>;

/// The containers and tags of the new revision, or why ECS would refuse it.
fn new_revision(
    td: &TaskDefinition,
    td_tags: &[Tag],
    changes: &[ImageChange],
    tag: &str,
) -> Result<(Vec<ContainerDefinition>, Vec<Tag>), String> {
    let containers = plan::updated_containers(td.container_definitions(), changes);
    let tags = plan::updated_tags(td_tags, changes, tag);
    match plan::revision_tags_problem(&tags) {
        Some(problem) => Err(problem),
        None => Ok((containers, tags)),
    }
}

fn fail(report: &mut DeployReport, id: ServiceId, reason: String) {
    warn!(cluster = %id.cluster, service = %id.service, %reason, "failed");
    report.failed.push(NotDeployed { id, reason });
}

impl Deployed {
    fn new(
        id: ServiceId,
        controller: &'static str,
        old: String,
        new: Option<String>,
        images: Vec<ImageChange>,
        codedeploy: Option<CodeDeployment>,
    ) -> Self {
        Self { id, controller, old_task_definition: old, new_task_definition: new, images, codedeploy }
    }
}

/// One service's planned change, with the revision it starts from.
struct Rollout<'a> {
    candidate: Examined,
    td: &'a TaskDefinition,
    td_tags: &'a [Tag],
    changes: Vec<ImageChange>,
}

#[cfg(test)]
mod tests {
    //! The partial-failure path, with a mocked ECS (moto cannot be made to fail one update).
    use super::*;
    use aws_sdk_ecs::Client;
    use aws_sdk_ecs::error::ErrorMetadata;
    use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
    use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
    use aws_sdk_ecs::operation::list_services::ListServicesOutput;
    use aws_sdk_ecs::operation::register_task_definition::RegisterTaskDefinitionOutput;
    use aws_sdk_ecs::operation::update_service::{UpdateServiceError, UpdateServiceOutput};
    use aws_sdk_ecs::types::error::ServiceNotActiveException;
    use aws_sdk_ecs::types::{ContainerDefinition, Service, Tag, TaskDefinition};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use serde_json::json;

    const TD: &str = "arn:aws:ecs:eu-west-1:123456789012:task-definition/api:1";
    const NEW_TD: &str = "arn:aws:ecs:eu-west-1:123456789012:task-definition/api:2";

    fn service(name: &str) -> Service {
        Service::builder()
            .service_name(name)
            .cluster_arn("arn:aws:ecs:eu-west-1:123456789012:cluster/shop")
            .status("ACTIVE")
            .task_definition(TD)
            .tags(Tag::builder().key("nightshift:deploy").value("semver").build())
            .build()
    }

    #[tokio::test]
    async fn one_failed_service_fails_the_invocation_and_the_others_still_go_ahead() {
        // Given two services on one task definition, and ECS refusing to update the first
        let list = mock!(Client::list_services)
            .then_output(|| ListServicesOutput::builder().service_arns("arn:a").service_arns("arn:b").build());
        let describe = mock!(Client::describe_services)
            .then_output(|| DescribeServicesOutput::builder().services(service("a")).services(service("b")).build());
        let task_definition = mock!(Client::describe_task_definition).then_output(|| {
            let app = ContainerDefinition::builder()
                .name("app")
                .image("123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/api:1.2.0")
                .build();
            DescribeTaskDefinitionOutput::builder()
                .task_definition(
                    TaskDefinition::builder()
                        .task_definition_arn(TD)
                        .family("api")
                        .revision(1)
                        .container_definitions(app)
                        .build(),
                )
                .build()
        });
        let register = mock!(Client::register_task_definition).then_output(|| {
            RegisterTaskDefinitionOutput::builder()
                .task_definition(TaskDefinition::builder().task_definition_arn(NEW_TD).revision(2).build())
                .build()
        });
        let refuse_a = mock!(Client::update_service).match_requests(|r| r.service() == Some("a")).then_error(|| {
            // As the SDK parses it from ECS's answer: the metadata carries code and message.
            let meta =
                ErrorMetadata::builder().code("ServiceNotActiveException").message("Service was not ACTIVE.").build();
            UpdateServiceError::ServiceNotActiveException(
                ServiceNotActiveException::builder().message("Service was not ACTIVE.").meta(meta).build(),
            )
        });
        let accept_b = mock!(Client::update_service)
            .match_requests(|r| r.service() == Some("b") && r.task_definition() == Some(NEW_TD))
            .then_output(|| UpdateServiceOutput::builder().build());
        let ecs = mock_client!(
            aws_sdk_ecs,
            RuleMode::MatchAny,
            [&list, &describe, &task_definition, &register, &refuse_a, &accept_b]
        );
        // And ECR holding the pushed image, pushed after the running one
        let images = mock!(aws_sdk_ecr::Client::describe_images).then_output(|| {
            use aws_sdk_ecr::primitives::DateTime;
            use aws_sdk_ecr::types::ImageDetail;
            aws_sdk_ecr::operation::describe_images::DescribeImagesOutput::builder()
                .image_details(
                    ImageDetail::builder()
                        .image_digest("sha256:bbbb")
                        .image_tags("1.3.0")
                        .image_pushed_at(DateTime::from_secs(2_000))
                        .build(),
                )
                .image_details(
                    ImageDetail::builder()
                        .image_digest("sha256:aaaa")
                        .image_tags("1.2.0")
                        .image_pushed_at(DateTime::from_secs(1_000))
                        .build(),
                )
                .build()
        });
        let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&images]);
        let codedeploy = mock_client!(aws_sdk_codedeploy, RuleMode::MatchAny, []);
        let config = DeployConfig { clusters: vec!["shop".into()], dry_run: false };
        let function = DeployOnPush::new(config, ecs, ecr, codedeploy);
        let event = json!({
            "version": "0", "id": "1", "detail-type": "ECR Image Action", "source": "aws.ecr",
            "account": "123456789012", "time": "2026-11-26T01:54:34Z", "region": "eu-west-1", "resources": [],
            "detail": {"result": "SUCCESS", "action-type": "PUSH", "repository-name": "shop/api",
                       "image-digest": "sha256:bbbb", "image-tag": "1.3.0"}
        });

        // When the push arrives
        let err = function.handle(LambdaEvent::new(event, lambda_runtime::Context::default())).await.unwrap_err();

        // Then b was still updated, to the one revision both share, and the invocation fails naming a
        assert_eq!((register.num_calls(), accept_b.num_calls(), refuse_a.num_calls()), (1, 1, 1));
        assert_eq!(images.num_calls(), 1, "one DescribeImages for every change");
        assert_eq!(nightshift::LambdaFailure::error_type(&err), "DeployFailed");
        assert_eq!(
            err.to_string(),
            "1 of 2 services failed: shop/a: ECS UpdateService on shop/a failed: Service was not ACTIVE."
        );
    }
}
