//! Clone-and-deploy, the one way nightshift changes what a service runs
//! (`deploy-on-push` for a push, `watch-rollouts` for a promotion): a new
//! revision cloned from the running one with some containers' images
//! changed, then UpdateService with the circuit breaker's rollback, or, for
//! a blue/green service (the CODE_DEPLOY controller), a CodeDeploy
//! deployment with automatic rollback in the group that deploys it.
//!
//! Two phases, as every function has them: [`Deployer::prepare`] reads what
//! a rollout needs and returns a [`RolloutPlan`] (decided by the pure
//! [`RolloutPlan::update`] and [`RolloutPlan::blue_green`]), and
//! [`Deployer::apply`] carries a plan out, the only place that writes or knows
//! `DRY_RUN`. The calls are `codedeploy` and the ECS ones below.

pub mod appspec;
pub mod bluegreen;
pub mod capacity;
pub mod codedeploy;

use std::collections::HashMap;
use std::sync::Mutex;

use aws_sdk_ecs::types::{
    ContainerDefinition, DeploymentCircuitBreaker, DeploymentConfiguration, Service, Tag, TaskDefinition,
    TaskDefinitionField,
};
use codedeploy::{CodeDeploy, DeploymentGroupInfo};
use serde::Serialize;
use tracing::{info, warn};

use crate::aws::CallError;
use crate::ecs::{IMAGE_TAG_PREFIX, MAX_TAGS, tag_problem};
use crate::identity::{self, Identity};
use crate::state::{Asleep, StateTable};
use bluegreen::{AppSpec, GroupName, Readiness};

/// A service and its cluster, as the reports name them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ServiceId {
    pub cluster: String,
    pub service: String,
}

impl ServiceId {
    pub fn of(service: &Service) -> Self {
        let cluster = service.cluster_arn().unwrap_or_default();
        Self {
            cluster: crate::ecs::last_segment(cluster).to_owned(),
            service: service.service_name().unwrap_or_default().to_owned(),
        }
    }

    /// `arn:aws:ecs:<region>:<account>:service/<cluster>/<service>`: the service it names.
    pub fn from_arn(arn: &str) -> Option<Self> {
        let (_, path) = arn.split_once(":service/")?;
        let (cluster, service) = path.split_once('/')?;
        (!cluster.is_empty() && !service.is_empty() && !service.contains('/'))
            .then(|| Self { cluster: cluster.to_owned(), service: service.to_owned() })
    }

    /// `<cluster>/<service>`, as tags and manual invocations name a service.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().split_once('/') {
            Some((cluster, service)) if !cluster.is_empty() && !service.is_empty() && !service.contains('/') => {
                Ok(Self { cluster: cluster.to_owned(), service: service.to_owned() })
            }
            _ => Err(format!("{text:?} is not <cluster>/<service>")),
        }
    }
}

impl std::fmt::Display for ServiceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.cluster, self.service)
    }
}

/// One container's change.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ImageChange {
    pub container: String,
    pub from: String,
    pub to: String,
}

/// Who rolls a service's deployments out, as the reports name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Controller {
    /// ECS, with the circuit breaker.
    #[serde(rename = "ECS")]
    Ecs,
    /// A CodeDeploy deployment (blue/green).
    #[serde(rename = "CODE_DEPLOY")]
    CodeDeploy,
}

/// A rollout nightshift started (or, with `DRY_RUN`, would start).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deployed {
    #[serde(flatten)]
    pub id: ServiceId,
    pub controller: Controller,
    pub old_task_definition: String,
    /// `None` with `DRY_RUN`.
    pub new_task_definition: Option<String>,
    pub images: Vec<ImageChange>,
    /// The CodeDeploy deployment, for a blue/green service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codedeploy: Option<CodeDeployStarted>,
    /// The merge the new images are (pull request, commit, source), where known.
    #[serde(skip_serializing_if = "Identity::is_empty")]
    pub identity: Identity,
    /// It slept after its promotion, and was woken to this desired count for the rollout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub woke: Option<i32>,
}

/// A CodeDeploy deployment nightshift created (or, with `DRY_RUN`, would create).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CodeDeployStarted {
    pub application: String,
    pub deployment_group: String,
    pub deployment_config: String,
    /// `None` with `DRY_RUN`.
    pub deployment_id: Option<String>,
}

/// Why ECS would refuse a revision with these tags, or `None`.
pub fn revision_tags_problem(tags: &[Tag]) -> Option<String> {
    let counted = crate::ecs::counted_tags(tags);
    if counted > MAX_TAGS {
        return Some(format!("the new revision would carry {counted} tags; ECS allows {MAX_TAGS}"));
    }
    tags.iter().find_map(|t| tag_problem(t.key().unwrap_or_default(), t.value().unwrap_or_default()))
}

/// The containers with their images changed; everything else as it was.
pub fn updated_containers(containers: &[ContainerDefinition], changes: &[ImageChange]) -> Vec<ContainerDefinition> {
    containers
        .iter()
        .map(|c| {
            let mut c = c.clone();
            if let Some(change) = changes.iter().find(|ch| c.name() == Some(ch.container.as_str())) {
                c.image = Some(change.to.clone());
            }
            c
        })
        .collect()
}

/// The new revision's tags: the running one's, less AWS's own, with the image
/// tag each changed container now runs (`nightshift:image-tag/<container>`;
/// `image_tags` pairs container and tag, and a changed container without one
/// loses the old revision's), and the merge the new images are (`identity`:
/// `nightshift:pr`, `nightshift:commit`, `nightshift:source`; the old
/// revision's are dropped, since they name what it ran).
pub fn updated_tags(
    td_tags: &[Tag],
    changes: &[ImageChange],
    image_tags: &[(String, String)],
    identity: &Identity,
) -> Vec<Tag> {
    let key = |container: &str| format!("{IMAGE_TAG_PREFIX}{container}");
    let mut replaced: Vec<String> = changes.iter().map(|c| key(&c.container)).collect();
    replaced.extend([identity::PR_TAG, identity::COMMIT_TAG, identity::SOURCE_TAG].map(str::to_owned));
    let mut tags: Vec<Tag> = td_tags
        .iter()
        .filter(|t| t.key().is_some_and(|k| !k.starts_with("aws:") && !replaced.iter().any(|r| r == k)))
        .cloned()
        .collect();
    tags.extend(
        changes
            .iter()
            .filter_map(|c| image_tags.iter().find(|(container, _)| *container == c.container))
            .map(|(container, tag)| Tag::builder().key(key(container)).value(tag).build()),
    );
    tags.extend(identity.tags().into_iter().map(|(key, value)| Tag::builder().key(key).value(value).build()));
    tags
}

/// The merge a revision's images are, as nightshift wrote it on the revision.
pub fn revision_identity(td_tags: &[Tag]) -> Identity {
    let pairs: Vec<(String, String)> =
        td_tags.iter().filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned()))).collect();
    Identity::of_revision(&pairs)
}

/// The service's deployment configuration with the circuit breaker on, with
/// rollback; every other setting as it was.
pub fn with_circuit_breaker(current: Option<&DeploymentConfiguration>) -> DeploymentConfiguration {
    let mut config = current.cloned().unwrap_or_else(|| DeploymentConfiguration::builder().build());
    config.deployment_circuit_breaker = Some(DeploymentCircuitBreaker::builder().enable(true).rollback(true).build());
    config
}

/// What a push or a promotion asks of one service: these containers' images
/// changed, starting from the revision it runs.
pub struct RolloutRequest<'a> {
    pub service: &'a Service,
    pub id: ServiceId,
    /// The running revision, and its tags.
    pub task_definition: &'a TaskDefinition,
    pub td_tags: &'a [Tag],
    pub changes: Vec<ImageChange>,
    /// The image tag each changed container runs: (container, tag).
    pub image_tags: Vec<(String, String)>,
    /// Who asks and why, as the CodeDeploy deployment's description says.
    pub description: String,
    /// The merge the new images are, written on the new revision.
    pub identity: Identity,
    /// The service sleeps after its promotion: the rollout wakes it first, with what it ran with.
    pub wake: Option<Asleep>,
}

/// The revision a rollout registers: cloned from the running one, with its
/// containers' images changed and its tags updated.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRevision {
    pub from: TaskDefinition,
    /// The running revision's ARN.
    pub old: String,
    pub changes: Vec<ImageChange>,
    pub containers: Vec<ContainerDefinition>,
    pub tags: Vec<Tag>,
    /// Wake the service first (it sleeps after its promotion), to what it ran with.
    pub wake: Option<Asleep>,
    /// The service's ARN (its sleep's key).
    pub service_arn: String,
}

/// A CodeDeploy deployment to create, in the group that deploys the service.
#[derive(Debug, Clone, PartialEq)]
pub struct BlueGreenDeployment {
    pub group: GroupName,
    pub appspec: AppSpec,
    /// The configuration `nightshift:deployment-config` names; `None` for the group's own.
    pub asked_config: Option<String>,
    /// The configuration the deployment runs with (the asked one, else the group's).
    pub deployment_config: String,
    pub description: String,
}

/// A rollout decided before anything changes: every read is done, and what is
/// left is the writes (register, then UpdateService or CreateDeployment).
#[derive(Debug, Clone, PartialEq)]
pub enum RolloutPlan {
    /// Register the revision, then UpdateService with the circuit breaker's rollback,
    /// under the service's rollout lease (`arn`: the service's ARN, the lease's key).
    Update { id: ServiceId, arn: String, revision: Box<NewRevision>, config: Box<DeploymentConfiguration> },
    /// Register the revision, then a CodeDeploy deployment of it.
    BlueGreen { id: ServiceId, revision: Box<NewRevision>, deployment: Box<BlueGreenDeployment> },
    /// Nothing to do: the blue/green group already deploys this change.
    Skip(String),
    /// It cannot start, for this reason.
    Fail(String),
}

impl RolloutPlan {
    /// The plan of an ECS-controller service: the revision, and the circuit breaker on.
    pub fn update(request: &RolloutRequest<'_>) -> Self {
        match NewRevision::of(request) {
            Ok(revision) => Self::Update {
                id: request.id.clone(),
                arn: request.service.service_arn().unwrap_or_default().to_owned(),
                revision: Box::new(revision),
                config: Box::new(with_circuit_breaker(request.service.deployment_configuration())),
            },
            Err(problem) => Self::Fail(problem),
        }
    }

    /// The plan of a blue/green service, from the group that deploys it as
    /// CodeDeploy describes it now, and whether the group's target revision
    /// already carries the change.
    pub fn blue_green(request: &RolloutRequest<'_>, info: &DeploymentGroupInfo, target_is_the_change: bool) -> Self {
        let prepared = NewRevision::of(request).and_then(|r| AppSpec::of(request.service).map(|a| (r, a)));
        let (revision, appspec) = match prepared {
            Ok(prepared) => prepared,
            Err(problem) => return Self::Fail(problem),
        };
        match bluegreen::readiness(info, target_is_the_change) {
            Readiness::Free => {}
            Readiness::Already(reason) => return Self::Skip(reason),
            Readiness::Busy(reason) => return Self::Fail(reason),
        }
        let (asked_config, deployment_config) = bluegreen::deployment_config(request.service, info);
        let deployment = BlueGreenDeployment {
            group: GroupName::of(info),
            appspec,
            asked_config,
            deployment_config,
            description: bluegreen::description(&request.description),
        };
        Self::BlueGreen { id: request.id.clone(), revision: Box::new(revision), deployment: Box::new(deployment) }
    }
}

impl RolloutRequest<'_> {
    /// The ARN of the revision the service runs, which the rollout starts from.
    pub fn running_arn(&self) -> &str {
        self.task_definition.task_definition_arn().or(self.service.task_definition()).unwrap_or_default()
    }
}

impl NewRevision {
    /// The new revision's containers and tags, or why ECS would refuse it.
    pub fn of(request: &RolloutRequest<'_>) -> Result<Self, String> {
        let td = request.task_definition;
        let containers = updated_containers(td.container_definitions(), &request.changes);
        let tags = updated_tags(request.td_tags, &request.changes, &request.image_tags, &request.identity);
        if let Some(problem) = revision_tags_problem(&tags) {
            return Err(problem);
        }
        Ok(Self {
            from: td.clone(),
            old: request.running_arn().to_owned(),
            changes: request.changes.clone(),
            containers,
            tags,
            wake: request.wake.clone(),
            service_arn: request.service.service_arn().unwrap_or_default().to_owned(),
        })
    }
}

/// How a rollout went.
#[derive(Debug, Clone, PartialEq)]
pub enum Rolled {
    /// Started (with `DRY_RUN`: would start), with the new revision's containers and tags.
    Deployed { deployed: Box<Deployed>, containers: Vec<ContainerDefinition>, tags: Vec<Tag> },
    /// Nothing to do: the blue/green group already deploys this change.
    Skipped(String),
    /// Why it could not start.
    Failed(String),
    /// Not started: the service moved off the revision the plan was made from
    /// (another run rolled it out meanwhile). Plan again from what it runs now.
    Moved(String),
}

/// What one invocation learned on the way, shared by its rollouts.
#[derive(Default)]
pub struct Invocation {
    /// Who holds a rollout lease this invocation takes (its request id).
    owner: String,
    /// New revisions registered, by the revision they were cloned from and the change.
    registered: HashMap<(String, Vec<ImageChange>), String>,
    /// Every CodeDeploy group of the account, when this invocation had to look them all up.
    groups: Option<HashMap<ServiceId, DeploymentGroupInfo>>,
}

impl Invocation {
    /// An invocation whose rollout leases are held in the name of `request` (the
    /// Lambda request id, which an asynchronous retry keeps) in this process.
    pub fn new(request: &str) -> Self {
        static PROCESS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let process = PROCESS.get_or_init(|| {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            format!("{}-{}", std::process::id(), nanos.as_nanos())
        });
        Self { owner: format!("{request}@{process}"), ..Self::default() }
    }
}

/// The tag a CodeDeploy deployment group and its application carry when nightshift may deploy through them.
pub const OPT_IN_TAG: &str = "nightshift:deploys";

/// How long a rollout lease lasts: far longer than a lease is held (a describe,
/// a register, an update), so only a run that died loses it to another.
const LEASE_SECONDS: i64 = 30;
/// How long a run waits for another's lease before it fails (and is retried):
/// past `LEASE_SECONDS`, so a dead holder's lease runs out while it waits.
const LEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(40);

/// Revisions a warm process keeps at the most; beyond it the memory starts afresh.
const KNOWN_REVISIONS: usize = 512;

/// Prepares rollouts (reads, then a [`RolloutPlan`]) and applies them, and
/// remembers across the invocations of a warm process what never changes (a
/// named revision) or is checked again before use (the group that deploys a
/// blue/green service).
pub struct Deployer {
    ecs: aws_sdk_ecs::Client,
    codedeploy: CodeDeploy,
    dry_run: bool,
    /// The state table, where rollout leases are taken; `None`: rollouts take none.
    state: Option<StateTable>,
    groups: Mutex<HashMap<ServiceId, GroupName>>,
    known: Mutex<HashMap<String, (TaskDefinition, Vec<Tag>)>>,
}

fn empty_answer(operation: &'static str, target: &str, what: &str) -> CallError {
    CallError { operation, target: target.to_owned(), code: None, message: format!("the answer holds no {what}") }
}

/// A revision with its tags, as ECS describes it now.
pub async fn describe_task_definition(
    ecs: &aws_sdk_ecs::Client,
    arn: &str,
) -> Result<(TaskDefinition, Vec<Tag>), CallError> {
    let out = ecs
        .describe_task_definition()
        .task_definition(arn)
        .include(TaskDefinitionField::Tags)
        .send()
        .await
        .map_err(|e| CallError::new("DescribeTaskDefinition", arn, e.into_service_error()))?;
    let task_definition =
        out.task_definition.ok_or_else(|| empty_answer("DescribeTaskDefinition", arn, "task definition"))?;
    Ok((task_definition, out.tags.unwrap_or_default()))
}

/// The service with its tags, unless ECS no longer has it (INACTIVE).
pub async fn describe_service(ecs: &aws_sdk_ecs::Client, id: &ServiceId) -> Result<Option<Service>, CallError> {
    let out = ecs
        .describe_services()
        .cluster(&id.cluster)
        .services(&id.service)
        .include(aws_sdk_ecs::types::ServiceField::Tags)
        .send()
        .await
        .map_err(|e| CallError::new("DescribeServices", &id.to_string(), e.into_service_error()))?;
    Ok(out.services.unwrap_or_default().into_iter().find(|s| s.status() != Some("INACTIVE")))
}

impl Deployer {
    /// `dry_run`: prepare and read; register and deploy nothing.
    pub fn new(ecs: aws_sdk_ecs::Client, codedeploy: CodeDeploy, dry_run: bool) -> Self {
        Self {
            ecs,
            codedeploy,
            dry_run,
            state: None,
            groups: Mutex::new(HashMap::new()),
            known: Mutex::new(HashMap::new()),
        }
    }

    /// Rolls a service out only under its lease in this table, and only from
    /// the revision its plan was made from: two runs at once never move a
    /// service backwards (the second plans again from what the first deployed).
    /// The same deployer, deploying nothing (a run asked to change nothing: `"dryRun": true`).
    pub fn dry(&self) -> Self {
        let mut dry = Self::new(self.ecs.clone(), self.codedeploy.clone(), true);
        dry.state = self.state.clone();
        dry
    }

    pub fn with_state(mut self, state: StateTable) -> Self {
        self.state = Some(state);
        self
    }

    /// A revision with its tags, from this process's memory, else read (and remembered).
    pub async fn task_definition(&self, arn: &str) -> Result<(TaskDefinition, Vec<Tag>), CallError> {
        if let Some(found) = self.known.lock().unwrap_or_else(|p| p.into_inner()).get(arn).cloned() {
            return Ok(found);
        }
        let found = describe_task_definition(&self.ecs, arn).await?;
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

    /// Observes what the rollout needs (for a blue/green service: its group and
    /// the group's target revision) and decides it; changes nothing.
    pub async fn prepare(&self, request: &RolloutRequest<'_>, invocation: &mut Invocation) -> RolloutPlan {
        if !bluegreen::is_blue_green(request.service) {
            return RolloutPlan::update(request);
        }
        let info = match self.group_for(request.service, &request.id, invocation).await {
            Ok(info) => info,
            Err(problem) => return RolloutPlan::Fail(problem),
        };
        let target_is_the_change = match self.target_of(&info).await {
            Ok(Some(target)) => self.carries(request, &target).await,
            Ok(None) => false,
            Err(err) => return RolloutPlan::Fail(format!("CodeDeploy {err}")),
        };
        RolloutPlan::blue_green(request, &info, target_is_the_change)
    }

    /// The revision the group deploys: the one its deployment under way
    /// deploys (CodeDeploy's target revision is its last successful one, so a
    /// deployment under way is seen only in the deployment), else its target.
    async fn target_of(&self, info: &DeploymentGroupInfo) -> Result<Option<String>, CallError> {
        match bluegreen::active_deployment(info) {
            Some(id) => self.codedeploy.deployment_task_definition(id).await,
            None => Ok(bluegreen::target_task_definition(info)),
        }
    }

    /// Whether the revision `target` already carries the request's change (not the revision it starts from).
    async fn carries(&self, request: &RolloutRequest<'_>, target: &str) -> bool {
        let td = request.task_definition;
        if target == request.running_arn() {
            return false;
        }
        match self.task_definition(target).await {
            Ok((target, _)) => bluegreen::carries(&target, td.family(), &request.changes),
            Err(err) => {
                warn!(%target, error = %err, "the group's target revision cannot be read");
                false
            }
        }
    }

    /// Carries out a prepared rollout; with `DRY_RUN`, reports what it would start.
    pub async fn apply(&self, plan: RolloutPlan, invocation: &mut Invocation) -> Rolled {
        match plan {
            RolloutPlan::Skip(reason) => Rolled::Skipped(reason),
            RolloutPlan::Fail(reason) => Rolled::Failed(reason),
            RolloutPlan::Update { id, arn, revision, config } => {
                if self.dry_run {
                    info!(cluster = %id.cluster, service = %id.service, changes = ?revision.changes, "would deploy");
                    return deployed(id, Controller::Ecs, *revision, None, None);
                }
                let Some(state) = &self.state else {
                    return self.update(id, *revision, *config, invocation).await;
                };
                let owner = invocation.owner.clone();
                match self.take_lease(state, &arn, &owner).await {
                    Ok(true) => {}
                    Ok(false) => {
                        return failed(
                            &id,
                            format!("another run has been rolling the service out for over {}s", LEASE_WAIT.as_secs()),
                        );
                    }
                    Err(err) => return failed(&id, format!("DynamoDB {err}")),
                }
                // Read again under the lease: the plan's revision must still be the one running.
                let rolled = match self.running_revision(&id).await {
                    Ok(now) if now == revision.old => self.update(id.clone(), *revision, *config, invocation).await,
                    Ok(now) => {
                        info!(cluster = %id.cluster, service = %id.service, planned_from = %revision.old, now = %now, "moved");
                        Rolled::Moved(format!("the service moved from {} to {} meanwhile", revision.old, now))
                    }
                    Err(err) => failed(&id, format!("ECS {err}")),
                };
                if let Err(err) = state.release(&arn, &owner).await {
                    // A lease not given back runs out: the rollout stands.
                    warn!(service = %arn, error = %err, "rollout lease not released");
                }
                rolled
            }
            RolloutPlan::BlueGreen { id, revision, deployment } => {
                self.deploy_blue_green(id, *revision, *deployment, invocation).await
            }
        }
    }

    /// Takes the service's rollout lease, waiting (with backoff) while another run holds it.
    async fn take_lease(&self, state: &StateTable, service: &str, owner: &str) -> Result<bool, CallError> {
        use aws_smithy_async::rt::sleep::AsyncSleep;
        let started = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(50);
        loop {
            if state.lease(service, owner, chrono::Utc::now(), LEASE_SECONDS).await? {
                return Ok(true);
            }
            if started.elapsed() >= LEASE_WAIT {
                return Ok(false);
            }
            aws_smithy_async::rt::sleep::TokioSleep::new().sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_secs(2));
        }
    }

    /// The revision the service runs now, read again under its lease.
    async fn running_revision(&self, id: &ServiceId) -> Result<String, CallError> {
        let out = self
            .ecs
            .describe_services()
            .cluster(&id.cluster)
            .services(&id.service)
            .send()
            .await
            .map_err(|e| CallError::new("DescribeServices", &id.to_string(), e.into_service_error()))?;
        out.services()
            .first()
            .and_then(|s| s.task_definition())
            .map(str::to_owned)
            .ok_or_else(|| empty_answer("DescribeServices", &id.to_string(), "service"))
    }

    /// Registers the revision, then UpdateService with the circuit breaker's rollback on.
    async fn update(
        &self,
        id: ServiceId,
        revision: NewRevision,
        config: DeploymentConfiguration,
        invocation: &mut Invocation,
    ) -> Rolled {
        let new_arn = match self.register(&revision, invocation).await {
            Ok(new_arn) => new_arn,
            Err(err) => return failed(&id, format!("ECS {err}")),
        };
        // Woken in the same UpdateService: its capacity back first, or Application Auto Scaling puts it back to 0.
        if let Err(why) = self.restore_capacity(&id, revision.wake.as_ref()).await {
            return failed(&id, why);
        }
        let updated = self
            .ecs
            .update_service()
            .cluster(&id.cluster)
            .service(&id.service)
            .task_definition(&new_arn)
            .deployment_configuration(config)
            .set_desired_count(revision.wake.as_ref().map(|w| w.desired))
            .send()
            .await;
        if let Err(e) = updated {
            let err = CallError::new("UpdateService", &id.to_string(), e.into_service_error());
            return failed(&id, format!("ECS {err}"));
        }
        self.forget_sleep(&revision).await;
        info!(cluster = %id.cluster, service = %id.service, from = %revision.old, to = %new_arn, "deployed");
        deployed(id, Controller::Ecs, revision, Some(new_arn), None)
    }

    /// Registers the revision, then creates the CodeDeploy deployment of it.
    async fn deploy_blue_green(
        &self,
        id: ServiceId,
        revision: NewRevision,
        deployment: BlueGreenDeployment,
        invocation: &mut Invocation,
    ) -> Rolled {
        let BlueGreenDeployment { group, appspec, asked_config, deployment_config, description } = deployment;
        let mut started = CodeDeployStarted {
            application: group.application.clone(),
            deployment_group: group.deployment_group.clone(),
            deployment_config,
            deployment_id: None,
        };
        if self.dry_run {
            info!(cluster = %id.cluster, service = %id.service, %group, changes = ?revision.changes, "would create a CodeDeploy deployment");
            return deployed(id, Controller::CodeDeploy, revision, None, Some(started));
        }
        let new_arn = match self.register(&revision, invocation).await {
            Ok(new_arn) => new_arn,
            Err(err) => return failed(&id, format!("ECS {err}")),
        };
        // Woken before CodeDeploy starts, so its replacement tasks run (and can be checked).
        if let Some(wake) = &revision.wake {
            if let Err(why) = self.restore_capacity(&id, Some(wake)).await {
                return failed(&id, why);
            }
            let woken = self.ecs.update_service().cluster(&id.cluster).service(&id.service).desired_count(wake.desired);
            if let Err(e) = woken.send().await {
                let err = CallError::new("UpdateService", &id.to_string(), e.into_service_error());
                return failed(&id, format!("ECS {err}"));
            }
            self.forget_sleep(&revision).await;
        }
        let created =
            self.codedeploy.create_deployment(&group, appspec.render(&new_arn), asked_config, description).await;
        match created {
            Ok(deployment_id) => {
                info!(cluster = %id.cluster, service = %id.service, %group, deployment = %deployment_id,
                      from = %revision.old, to = %new_arn, "CodeDeploy deployment created");
                started.deployment_id = Some(deployment_id);
                deployed(id, Controller::CodeDeploy, revision, Some(new_arn), Some(started))
            }
            Err(err) if err.code.as_deref() == Some("AccessDeniedException") => failed(
                &id,
                format!(
                    "CodeDeploy {err} (nightshift deploys only through a deployment group and application \
                     tagged {OPT_IN_TAG}: tag {group} and its application)"
                ),
            ),
            Err(err) => failed(&id, format!("CodeDeploy {err}")),
        }
    }

    /// A sleeping service's scalable target back to what it was before its sleep.
    async fn restore_capacity(&self, id: &ServiceId, wake: Option<&Asleep>) -> Result<(), String> {
        let (Some((min, max)), Some(state)) = (wake.and_then(|w| w.capacity), &self.state) else { return Ok(()) };
        capacity::set(state.signed(), id, min, max).await.map_err(|err| format!("Application Auto Scaling {err}"))
    }

    /// The sleep is over: the state table forgets it (a failure costs a second wake, which changes nothing).
    async fn forget_sleep(&self, revision: &NewRevision) {
        let (Some(_), Some(state)) = (&revision.wake, &self.state) else { return };
        let service = revision.service_arn.as_str();
        if let Err(err) = state.woke(service).await {
            warn!(%service, error = %err, "the service's sleep was not forgotten");
        }
    }

    /// The group that deploys the service, as CodeDeploy describes it now: the
    /// one `nightshift:codedeploy` names, else the one whose `ecsServices`
    /// names it (remembered by a warm process, checked again; looked up in
    /// every ECS application of the account when not known, once per invocation).
    pub async fn group_for(
        &self,
        service: &Service,
        id: &ServiceId,
        invocation: &mut Invocation,
    ) -> Result<DeploymentGroupInfo, String> {
        let read_error = |err: CallError| format!("CodeDeploy {err}");
        if let Some(named) = bluegreen::named_group(service) {
            let name = named?;
            let tag = bluegreen::CODEDEPLOY_TAG;
            let info = self
                .codedeploy
                .describe_group(&name)
                .await
                .map_err(read_error)?
                .ok_or_else(|| format!("CodeDeploy has no deployment group {name} (named by {tag})"))?;
            return if bluegreen::deploys(&info, id) {
                Ok(info)
            } else {
                Err(format!("the deployment group {name} (named by {tag}) does not deploy {id}"))
            };
        }
        let not_found = || {
            format!(
                "no CodeDeploy deployment group deploys {id}: create one for it, or name it with the tag \
                 {}=<application>/<deployment-group>",
                bluegreen::CODEDEPLOY_TAG
            )
        };
        if let Some(all) = &invocation.groups {
            return all.get(id).cloned().ok_or_else(not_found);
        }
        let remembered = self.groups.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned();
        if let Some(name) = remembered
            && let Some(info) = self.codedeploy.describe_group(&name).await.map_err(read_error)?
            && bluegreen::deploys(&info, id)
        {
            return Ok(info);
        }
        let described = self.codedeploy.ecs_groups().await.map_err(read_error)?;
        let index = bluegreen::index(&described);
        let all: HashMap<ServiceId, DeploymentGroupInfo> = index
            .iter()
            .filter_map(|(id, name)| {
                described.iter().find(|g| &GroupName::of(g) == name).map(|g| (id.clone(), g.clone()))
            })
            .collect();
        *self.groups.lock().unwrap_or_else(|p| p.into_inner()) = index;
        let found = all.get(id).cloned();
        invocation.groups = Some(all);
        found.ok_or_else(not_found)
    }

    /// The new revision's ARN: registered, or the one this invocation already
    /// registered for the same revision and change.
    async fn register(&self, revision: &NewRevision, invocation: &mut Invocation) -> Result<String, CallError> {
        let key = (revision.old.clone(), revision.changes.clone());
        if let Some(arn) = invocation.registered.get(&key) {
            return Ok(arn.clone());
        }
        let arn = register_clone(&self.ecs, &revision.from, revision.containers.clone(), revision.tags.clone()).await?;
        invocation.registered.insert(key, arn.clone());
        Ok(arn)
    }
}

fn failed(id: &ServiceId, reason: String) -> Rolled {
    warn!(cluster = %id.cluster, service = %id.service, %reason, "failed");
    Rolled::Failed(reason)
}

fn deployed(
    id: ServiceId,
    controller: Controller,
    revision: NewRevision,
    new: Option<String>,
    codedeploy: Option<CodeDeployStarted>,
) -> Rolled {
    let identity = revision_identity(&revision.tags);
    let woke = revision.wake.as_ref().map(|w| w.desired);
    let NewRevision { old, changes, containers, tags, .. } = revision;
    let deployed = Deployed {
        id,
        controller,
        old_task_definition: old,
        new_task_definition: new,
        images: changes,
        codedeploy,
        identity,
        woke,
    };
    Rolled::Deployed { deployed: Box::new(deployed), containers, tags }
}

/// Registers a revision cloned from `from`, with these containers and tags;
/// returns its full ARN. Every RegisterTaskDefinition field is carried over,
/// but inference accelerators, which ECS no longer accepts.
pub async fn register_clone(
    ecs: &aws_sdk_ecs::Client,
    from: &TaskDefinition,
    containers: Vec<ContainerDefinition>,
    tags: Vec<Tag>,
) -> Result<String, CallError> {
    let source = from.task_definition_arn().unwrap_or_default();
    let out = ecs
        .register_task_definition()
        .set_family(from.family.clone())
        .set_task_role_arn(from.task_role_arn.clone())
        .set_execution_role_arn(from.execution_role_arn.clone())
        .set_network_mode(from.network_mode.clone())
        .set_container_definitions(Some(containers))
        .set_volumes(from.volumes.clone())
        .set_placement_constraints(from.placement_constraints.clone())
        .set_requires_compatibilities(from.requires_compatibilities.clone())
        .set_cpu(from.cpu.clone())
        .set_memory(from.memory.clone())
        .set_tags((!tags.is_empty()).then_some(tags))
        .set_pid_mode(from.pid_mode.clone())
        .set_ipc_mode(from.ipc_mode.clone())
        .set_proxy_configuration(from.proxy_configuration.clone())
        .set_ephemeral_storage(from.ephemeral_storage.clone())
        .set_runtime_platform(from.runtime_platform.clone())
        .set_enable_fault_injection(from.enable_fault_injection)
        .send()
        .await
        .map_err(|e| CallError::new("RegisterTaskDefinition", source, e.into_service_error()))?;
    out.task_definition()
        .and_then(TaskDefinition::task_definition_arn)
        .map(str::to_owned)
        .ok_or_else(|| empty_answer("RegisterTaskDefinition", source, "task definition ARN"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ECR: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
    const NEW: &str = "sha256:bbbbbbbb";

    fn tags(pairs: &[(&str, &str)]) -> Vec<Tag> {
        pairs.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect()
    }

    #[test]
    fn the_new_revision_keeps_every_other_setting_and_records_the_tag() {
        let sidecar = ContainerDefinition::builder().name("proxy").image("nginx:1.25").cpu(64).essential(false).build();
        let api = ContainerDefinition::builder().name("api").image(format!("{ECR}/shop/api:1.2.0")).memory(512).build();
        let changes =
            vec![ImageChange { container: "api".into(), from: String::new(), to: format!("{ECR}/shop/api@{NEW}") }];
        let updated = updated_containers(&[api.clone(), sidecar.clone()], &changes);
        assert_eq!(updated[1], sidecar);
        assert_eq!(updated[0].memory(), Some(512));
        assert_eq!(updated[0].image(), Some(format!("{ECR}/shop/api@{NEW}").as_str()));

        let old =
            tags(&[("team", "shop"), ("aws:cloudformation:stack-name", "x"), ("nightshift:image-tag/api", "1.2.0")]);
        let new = updated_tags(&old, &changes, &[("api".into(), "1.3.0".into())], &Identity::default());
        assert_eq!(new, tags(&[("team", "shop"), ("nightshift:image-tag/api", "1.3.0")]));
        // A changed container whose new tag is unknown keeps no stale one.
        assert_eq!(updated_tags(&old, &changes, &[], &Identity::default()), tags(&[("team", "shop")]));
        // The merge the new image is replaces the old revision's, and is read back.
        let merged = Identity { pr: Some("42".into()), commit: Some("abcdef1".into()), ..Identity::default() };
        let old = tags(&[("team", "shop"), ("nightshift:pr", "41"), ("nightshift:source", "https://x/y")]);
        let new = updated_tags(&old, &changes, &[], &merged);
        assert_eq!(new, tags(&[("team", "shop"), ("nightshift:pr", "42"), ("nightshift:commit", "abcdef1")]));
        assert_eq!(revision_identity(&new), merged);
    }

    #[test]
    fn the_circuit_breaker_is_turned_on_and_the_rest_is_kept() {
        // Given a service whose breaker is off, with other settings of its own
        let off = DeploymentCircuitBreaker::builder().enable(false).rollback(false).build();
        let current = DeploymentConfiguration::builder()
            .maximum_percent(150)
            .minimum_healthy_percent(50)
            .deployment_circuit_breaker(off)
            .bake_time_in_minutes(5)
            .build();
        // Then the breaker is on with rollback, and everything else is exactly as it was
        let config = with_circuit_breaker(Some(&current));
        let on = DeploymentCircuitBreaker::builder().enable(true).rollback(true).build();
        let mut want = current.clone();
        want.deployment_circuit_breaker = Some(on.clone());
        assert_eq!(config, want);
        assert_eq!(with_circuit_breaker(None).deployment_circuit_breaker, Some(on));
    }

    #[test]
    fn a_revision_ecs_would_refuse_is_not_registered() {
        let many: Vec<Tag> = (0..51).map(|i| Tag::builder().key(format!("k{i}")).value("v").build()).collect();
        assert_eq!(
            revision_tags_problem(&many).as_deref(),
            Some("the new revision would carry 51 tags; ECS allows 50")
        );
        assert_eq!(revision_tags_problem(&many[..50]), None);
        let long = tags(&[(&format!("{IMAGE_TAG_PREFIX}{}", "c".repeat(120)), "1.3.0")]);
        assert!(revision_tags_problem(&long).unwrap().contains("ECS takes 1 to 128"));
    }

    #[test]
    fn a_rollout_is_planned_whole_before_anything_changes() {
        use aws_sdk_ecs::types::{DeploymentController, DeploymentControllerType, LoadBalancer};
        use codedeploy::LastDeployment;
        // Given a revision, a change of its app container, and a blue/green service behind a load balancer
        let td = TaskDefinition::builder()
            .task_definition_arn("arn:aws:ecs:eu-west-1:123456789012:task-definition/api:7")
            .family("api")
            .container_definitions(
                ContainerDefinition::builder().name("app").image(format!("{ECR}/shop/api:1.2.0")).build(),
            )
            .build();
        let blue_green = Service::builder()
            .service_name("api")
            .cluster_arn("arn:aws:ecs:eu-west-1:123456789012:cluster/shop")
            .deployment_controller(
                DeploymentController::builder().r#type(DeploymentControllerType::CodeDeploy).build().unwrap(),
            )
            .load_balancers(LoadBalancer::builder().container_name("app").container_port(8080).build())
            .build();
        let change = ImageChange { container: "app".into(), from: String::new(), to: format!("{ECR}/shop/api@{NEW}") };
        fn request<'a>(
            service: &'a Service,
            td: &'a TaskDefinition,
            td_tags: &'a [Tag],
            change: &ImageChange,
        ) -> RolloutRequest<'a> {
            RolloutRequest {
                service,
                id: ServiceId::of(service),
                task_definition: td,
                td_tags,
                changes: vec![change.clone()],
                image_tags: vec![("app".into(), "1.3.0".into())],
                description: "nightshift deploy-on-push: 1.3.0".into(),
                identity: Identity::default(),
                wake: None,
            }
        }
        let rolling = Service::builder().service_name("api").build();
        let group = |status: Option<&str>| DeploymentGroupInfo {
            application_name: Some("shop".into()),
            deployment_group_name: Some("api".into()),
            last_attempted_deployment: status.map(|status| LastDeployment {
                deployment_id: Some("d-1".into()),
                status: Some(status.into()),
                end_time: None,
            }),
            ..DeploymentGroupInfo::default()
        };

        // Then a service on the ECS controller is updated with the breaker on, the new revision whole
        let RolloutPlan::Update { revision, config, .. } = RolloutPlan::update(&request(&rolling, &td, &[], &change))
        else {
            panic!("an ECS service is updated")
        };
        assert_eq!(*config, with_circuit_breaker(None));
        assert_eq!(revision.containers[0].image(), Some(change.to.as_str()));
        assert_eq!(revision.tags, tags(&[("nightshift:image-tag/app", "1.3.0")]));
        // And a revision ECS would refuse fails before anything is registered
        let many: Vec<Tag> = (0..50).map(|i| Tag::builder().key(format!("k{i}")).value("v").build()).collect();
        assert!(matches!(RolloutPlan::update(&request(&rolling, &td, &many, &change)), RolloutPlan::Fail(_)));
        // And a blue/green service: a free group deploys, a busy one fails, one that deploys it already skips
        let free = RolloutPlan::blue_green(&request(&blue_green, &td, &[], &change), &group(Some("Succeeded")), false);
        let RolloutPlan::BlueGreen { deployment, .. } = free else { panic!("a free group deploys: {free:?}") };
        assert_eq!((deployment.asked_config, deployment.deployment_config.as_str()), (None, bluegreen::DEFAULT_CONFIG));
        let busy = RolloutPlan::blue_green(&request(&blue_green, &td, &[], &change), &group(Some("InProgress")), false);
        assert!(matches!(busy, RolloutPlan::Fail(why) if why.contains("takes no second deployment")));
        let replay =
            RolloutPlan::blue_green(&request(&blue_green, &td, &[], &change), &group(Some("InProgress")), true);
        assert!(matches!(replay, RolloutPlan::Skip(why) if why.contains("already deploys this revision")));
        let first = RolloutPlan::blue_green(&request(&blue_green, &td, &[], &change), &group(None), false);
        assert!(matches!(first, RolloutPlan::BlueGreen { .. }));
    }

    #[test]
    fn a_service_is_named_cluster_slash_service() {
        let id = ServiceId::parse("staging/shop").unwrap();
        assert_eq!(
            (id.cluster.as_str(), id.service.as_str(), id.to_string()),
            ("staging", "shop", "staging/shop".into())
        );
        for bad in ["shop", "/shop", "staging/", "a/b/c", ""] {
            assert!(ServiceId::parse(bad).unwrap_err().contains("not <cluster>/<service>"), "{bad}");
        }
    }
}
