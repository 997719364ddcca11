//! `deploy-on-push`: an image pushed to ECR is rolled out to the ECS services
//! that follow its repository (tag `nightshift:deploy`): with the deployment
//! circuit breaker's rollback, or, for a blue/green service (the CODE_DEPLOY
//! controller), as a CodeDeploy deployment with automatic rollback.
//!
//! Parse (ECR push) -> observe (services, then only the task definitions that
//! matter) -> plan (policy per container) -> observe ECR (is the push still the
//! newest image for each change) -> prepare each rollout (a blue/green
//! service's CodeDeploy group read and decided) and each record -> apply
//! (register; update or create the CodeDeploy deployment; record; tell) -> report.
//!
//! Many accounts: a push from a registry account listed in
//! `REGISTRY_ACCOUNT_IDS` is taken as the account's own (its repository read
//! with `registryId`); any other account's is ignored, naming it. Each rollout
//! names the merge its image is (`nightshift::identity`: the image's other
//! tags and its config's OCI labels), and wakes a service asleep after its
//! promotion first (docs/accounts.md).

pub mod ecr;
pub mod error;
pub mod event;
pub mod notice;
pub mod plan;
pub mod policy;
pub mod record;

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_ecs::types::{ContainerDefinition, Service, Tag, TaskDefinition};
use lambda_runtime::LambdaEvent;
use nightshift::config::{self, ConfigError, Vars};
use nightshift::identity::{Identity, IdentityPatterns};
use nightshift::notify::{self, Delivery, Level, Notifier};
use nightshift::rollout::{Deployer, ImageChange, Invocation, Rolled, RolloutPlan, RolloutRequest, ServiceId};
use nightshift::signed::SignedHttp;
use nightshift::state::{DigestSeen, StateTable};
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

pub use error::DeployError;
use event::{Push, PushEvent};
pub use nightshift::rollout::{CodeDeployStarted, Controller, Deployed};
use plan::{Candidate, ServicePlan};
use record::{RUNNING_TAG, RunningRecord};

pub const FUNCTION: &str = "deploy-on-push";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployConfig {
    /// `CLUSTERS`: cluster names; empty for every cluster in the account and region.
    pub clusters: Vec<String>,
    /// `DRY_RUN`: decide and report, register and update nothing.
    pub dry_run: bool,
    /// `STATE_TABLE`: the state table (quarantine read, rollout leases).
    pub state_table: String,
    /// `REGISTRY_ACCOUNT_IDS`: the accounts (besides this one) whose ECR pushes
    /// it deploys; empty: this account's only.
    pub registry_accounts: Vec<String>,
    /// `PR_TAG_PATTERNS`, `COMMIT_TAG_PATTERNS`, `BRANCH_TAG_PATTERNS`: how an image's tags say which merge it is.
    pub identity: IdentityPatterns,
}

impl DeployConfig {
    pub fn from_vars(vars: &impl Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            clusters: config::list(vars, "CLUSTERS"),
            dry_run: config::dry_run(vars)?,
            state_table: nightshift::state::table_name(vars)?,
            registry_accounts: config::account_ids(vars, REGISTRY_ACCOUNTS_VAR)?,
            identity: IdentityPatterns::from_vars(vars)?,
        })
    }
}

pub const REGISTRY_ACCOUNTS_VAR: &str = "REGISTRY_ACCOUNT_IDS";

/// How many times a push is planned again for services another run moved meanwhile.
const PASSES: usize = 3;

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
    /// Who asked, for a deploy by hand (`{"deploy": {...}}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// The merge the pushed image is (its other tags, its OCI labels), once something deploys it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    pub deployed: Vec<Deployed>,
    pub skipped: Vec<NotDeployed>,
    pub failed: Vec<NotDeployed>,
    /// What went wrong without failing a service (a record that could not be kept).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The services whose record of what they run (`nightshift:running`) was written.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recorded: Vec<ServiceId>,
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
    /// Clone-and-deploy. It remembers the revisions this warm process read (a
    /// push that concerns none of the services costs no DescribeTaskDefinition
    /// once their revisions are known) and which group deploys each blue/green service.
    deployer: Deployer,
    /// Tells the services' channels (`nightshift:notify`); `None`: no one is told.
    notifier: Option<Arc<Notifier>>,
    /// The quarantine, and the rollout leases.
    state: StateTable,
    /// Where an image's config is downloaded from (its labels); `None`: labels are not read.
    downloads: Option<Arc<SignedHttp>>,
}

/// Which services a pass looks at, and how it hears them.
#[derive(Debug, Clone, Copy)]
struct Heard<'a> {
    /// Only these (a deploy by hand, or services planned again); `None`: every service.
    only: Option<&'a [ServiceId]>,
    /// The first pass reads their channels; a pass again (services that moved) knows them.
    first_pass: bool,
    /// A deploy by hand: a hold does not stop it.
    by_hand: bool,
}

/// A service that may follow the push, with what its decision needs.
struct Examined {
    service: Service,
    id: ServiceId,
    task_definition_arn: String,
    /// It carries a record (`nightshift:running`) of the revision it runs.
    recorded: bool,
    /// It sleeps after its promotion: a rollout wakes it first.
    asleep: Option<nightshift::state::Asleep>,
}

impl DeployOnPush {
    pub fn new(
        config: DeployConfig,
        ecs: aws_sdk_ecs::Client,
        ecr: aws_sdk_ecr::Client,
        codedeploy: nightshift::rollout::codedeploy::CodeDeploy,
        state: StateTable,
    ) -> Self {
        let deployer = Deployer::new(ecs.clone(), codedeploy, config.dry_run).with_state(state.clone());
        Self { config, ecs, ecr, deployer, notifier: None, state, downloads: None }
    }

    /// Tells the services' channels through this notifier.
    pub fn with_notifier(mut self, notifier: Arc<Notifier>) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// Reads the pushed image's config (its OCI labels) over this connector.
    pub fn with_downloads(mut self, http: Arc<SignedHttp>) -> Self {
        self.downloads = Some(http);
        self
    }

    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<DeployReport, DeployError> {
        let mut dry = None;
        let this = config::dry_if_asked(self, self.config.dry_run, &event.payload, &mut dry, Self::dry_twin);
        nightshift::conclude(FUNCTION, this.run(event).await)
    }

    /// This function as with `DRY_RUN`, for one run asked to change nothing (`"dryRun": true`).
    fn dry_twin(&self) -> Self {
        Self {
            config: DeployConfig { dry_run: true, ..self.config.clone() },
            ecs: self.ecs.clone(),
            ecr: self.ecr.clone(),
            deployer: self.deployer.dry(),
            notifier: self.notifier.clone(),
            state: self.state.clone(),
            downloads: self.downloads.clone(),
        }
    }

    /// Parse, observe, plan (the whole plan before anything changes), apply, report.
    async fn run(&self, event: LambdaEvent<Value>) -> nightshift::Ran<DeployReport, DeployError> {
        let mut report = DeployReport { function: FUNCTION, dry_run: self.config.dry_run, ..DeployReport::default() };
        let (region, account) = nightshift::aws::arn_region_and_account(&event.context.invoked_function_arn);
        let (push, by_hand) = match event::parse(&event.payload).map_err(DeployError::InvalidEvent)? {
            PushEvent::Ignored(why) => {
                info!(reason = %why, "event ignored");
                report.ignored = Some(why);
                return Ok((report, None));
            }
            PushEvent::Push(push) => (push, None),
            PushEvent::Deploy(asked) => {
                info!(service = %asked.service, image = %asked.image, by = %asked.by, "deploy by hand");
                report.by = Some(asked.by.clone());
                (self.resolve(&asked, (account, region)).await?, Some(asked.service))
            }
        };
        info!(repository = %push.repository, tag = ?push.tag, digest = %push.digest, "push");
        report.push = Some(push.clone());
        if let Some(why) = plan::foreign_push(&push, (account, region), &self.config.registry_accounts) {
            info!(reason = %why, "event ignored");
            report.ignored = Some(why);
            return Ok((report, None));
        }
        let Some(tag) = push.tag.clone() else {
            report.ignored = Some("the push has no tag, and every policy decides by tag: nothing deployed".into());
            return Ok((report, None));
        };

        let mut audience = Audience::default();
        let mut invocation = Invocation::new(&event.context.request_id);
        // Services another run rolled out between this one's plan and its update are planned again, from what they run now.
        let mut moved: Vec<NotDeployed> = Vec::new();
        for round in 0..PASSES {
            let only: Option<Vec<ServiceId>> = match (round, &by_hand) {
                (0, None) => None,
                (0, Some(asked)) => Some(vec![asked.clone()]),
                _ => Some(moved.iter().map(|m| m.id.clone()).collect()),
            };
            let heard = Heard { only: only.as_deref(), first_pass: round == 0, by_hand: by_hand.is_some() };
            // Boxed: inline, the run's state machine went past the compiler's layout depth limit.
            let pass = self.pass(&push, &tag, heard, &mut audience, &mut invocation, &mut report);
            moved = Box::pin(pass).await?;
            if moved.is_empty() {
                break;
            }
        }
        // Moved under every pass: failed, so the push is retried.
        for moved in moved {
            warn!(cluster = %moved.id.cluster, service = %moved.id.service, reason = %moved.reason, "failed");
            report.failed.push(moved);
        }
        if !audience.refused.is_empty() && report.identity.is_none() && self.notifier.is_some() {
            // A refusal is told with the merge the image is, as a rollout is.
            report.identity = self.identify_pushed(&push, &mut report).await;
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
        Ok((report, error))
    }

    /// The push a deploy by hand stands for: the image (by tag or digest) in
    /// the ECR repository of one of the service's containers (in this account,
    /// or a registry of `REGISTRY_ACCOUNT_IDS`), as ECR has it now.
    async fn resolve(&self, asked: &event::DeployRequest, own: (&str, &str)) -> Result<Push, DeployError> {
        let id = &asked.service;
        let service = nightshift::rollout::describe_service(&self.ecs, id).await.map_err(DeployError::Ecs)?;
        let service = service.ok_or_else(|| DeployError::InvalidEvent(format!("ECS has no active service {id}")))?;
        if !plan::follows_pushes(&service) {
            return Err(DeployError::InvalidEvent(format!(
                "{id} does not follow pushes (it is not tagged {}, or it is promoted from another \
                 service): deploy to the service it is promoted from, or promote it",
                plan::DEPLOY_TAG
            )));
        }
        let running = service.task_definition().unwrap_or_default();
        let (td, _) = self.deployer.task_definition(running).await.map_err(DeployError::Ecs)?;
        let (account, region) = own;
        let mut repositories: Vec<(String, String)> = Vec::new();
        for container in td.container_definitions() {
            let Some(image) = container.image().and_then(|i| i.parse::<nightshift::image::ImageRef>().ok()) else {
                continue;
            };
            let Some(registry) = image.registry.as_deref() else { continue };
            let candidate = std::iter::once(account)
                .chain(self.config.registry_accounts.iter().map(String::as_str))
                .find(|a| nightshift::image::ecr_registry(a, region) == registry);
            if let Some(owner) = candidate {
                let pair = (owner.to_owned(), image.repository.clone());
                if !repositories.contains(&pair) {
                    repositories.push(pair);
                }
            }
        }
        let wanted = if asked.image.starts_with("sha256:") {
            plan::ImageId::Digest(asked.image.clone())
        } else {
            plan::ImageId::Tag(asked.image.clone())
        };
        for (registry, repository) in &repositories {
            let found = ecr::describe_images(&self.ecr, registry, repository, std::slice::from_ref(&wanted)).await;
            let found = found.map_err(|err| DeployError::InvalidEvent(format!("ECR {err}")))?;
            let Some(Some(image)) = found.get(&wanted).cloned() else { continue };
            let tag = match &wanted {
                plan::ImageId::Tag(tag) => Some(tag.clone()),
                // Every policy decides by tag: a digest goes as its first tag.
                plan::ImageId::Digest(_) => image.tags.iter().min().cloned(),
            };
            return Ok(Push {
                account: registry.clone(),
                region: region.to_owned(),
                repository: repository.clone(),
                digest: image.digest,
                tag,
            });
        }
        let names: Vec<String> = repositories.iter().map(|(r, repo)| format!("{r}/{repo}")).collect();
        Err(DeployError::InvalidEvent(format!(
            "no ECR repository {id} runs from ({}) holds {}: push it first, or name a tag or digest it holds",
            if names.is_empty() { "none in this account or REGISTRY_ACCOUNT_IDS".to_owned() } else { names.join(", ") },
            asked.image
        )))
    }

    /// One pass of observe, plan, apply over the services (or `only` those);
    /// returns the services another run moved meanwhile, to plan again.
    async fn pass(
        &self,
        push: &Push,
        tag: &str,
        heard: Heard<'_>,
        audience: &mut Audience,
        invocation: &mut Invocation,
        report: &mut DeployReport,
    ) -> Result<Vec<NotDeployed>, DeployError> {
        let examined = self.observe_services(push, tag, heard, audience, report).await?;
        let task_definitions = self.describe_task_definitions(&examined, report).await;
        let decided: Vec<(Examined, ServicePlan)> = examined
            .into_iter()
            .filter_map(|candidate| {
                let (td, td_tags) = task_definitions.get(&candidate.task_definition_arn)?;
                let plan = plan::plan_service(&candidate.service, td, td_tags, push, tag);
                Some((candidate, plan))
            })
            .collect();
        let decided = self.keep_forward(push, tag, decided, report).await;
        // Services that share a task definition and a change share one new revision.
        let steps = self.prepare(tag, decided, &task_definitions, invocation, report).await;
        let mut moved = Vec::new();
        for step in steps {
            moved.extend(self.apply(step, invocation, report).await);
        }
        Ok(moved)
    }

    /// Every service in the clusters (or `only` those), described with tags,
    /// and whether the pushed digest is quarantined on those that follow
    /// pushes; returns the ones whose task definition must be read, and
    /// reports the ones skipped already.
    async fn observe_services(
        &self,
        push: &Push,
        tag: &str,
        heard: Heard<'_>,
        audience: &mut Audience,
        report: &mut DeployReport,
    ) -> Result<Vec<Examined>, DeployError> {
        let mut services =
            nightshift::ecs::services_in(&self.ecs, &self.config.clusters).await.map_err(DeployError::Ecs)?;
        if let Some(only) = heard.only {
            services.retain(|s| only.contains(&ServiceId::of(s)));
        }
        let following: Vec<&str> =
            services.iter().filter(|s| plan::follows_pushes(s)).filter_map(|s| s.service_arn()).collect();
        let seen = self.state.digest_on(&following, &push.digest).await.map_err(DeployError::State)?;
        let seen: HashMap<String, DigestSeen> = following.iter().map(|arn| (*arn).to_owned()).zip(seen).collect();
        let mut examined = Vec::new();
        let now = chrono::Utc::now();
        for service in services {
            let id = ServiceId::of(&service);
            let seen = service.service_arn().and_then(|arn| seen.get(arn)).cloned().unwrap_or_default();
            let quarantined = plan::is_quarantined(&service, push, &seen);
            // A service planned again was heard already: its channels are known, its warnings given.
            if let Some(channels) = nightshift::ecs::tag_value(service.tags(), NOTIFY_TAG).filter(|_| heard.first_pass)
            {
                match notify::parse_channels(channels) {
                    Ok(channels) => {
                        audience.channels.insert(id.clone(), channels);
                    }
                    Err(why) => report.warnings.push(format!("{}/{}: {NOTIFY_TAG}: {why}", id.cluster, id.service)),
                }
            }
            let candidate = plan::triage(&service, push, tag, quarantined);
            // A hold stops automatic rollouts; a deploy by hand goes.
            let candidate = if heard.by_hand { candidate } else { plan::unless_held(candidate, &seen.holds, now) };
            if matches!(candidate, Candidate::Skip(_)) && quarantined {
                audience.refused.push(id.clone());
            }
            match candidate {
                Candidate::NotFollowing => {}
                Candidate::Skip(reason) => {
                    info!(cluster = %id.cluster, service = %id.service, %reason, "skipped");
                    report.skipped.push(NotDeployed { id, reason });
                }
                Candidate::Examine => examined.push(Examined {
                    asleep: seen.asleep,
                    task_definition_arn: service.task_definition().unwrap_or_default().to_owned(),
                    recorded: RunningRecord::current(&service).is_some(),
                    service,
                    id,
                }),
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
                match self.deployer.task_definition(arn).await {
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
            Ok(images) => {
                let kept: Vec<_> = plans
                    .into_iter()
                    .map(|(candidate, plan)| (candidate, plan::keep_forward(plan, push, tag, &images)))
                    .collect();
                let pushed = images.get(&plan::ImageId::Digest(push.digest.clone())).cloned().flatten();
                if report.identity.is_none()
                    && let Some(pushed) =
                        pushed.filter(|_| kept.iter().any(|(_, p)| matches!(p, ServicePlan::Deploy(_))))
                {
                    report.identity = Some(self.identify(push, &pushed.tags, report).await);
                }
                kept
            }
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

    /// Completes each service's plan with what applying it needs to know
    /// first: for a rollout, its [`RolloutPlan`] (a blue/green service's group
    /// read and decided); for a service that runs no record yet, the record to write.
    async fn prepare(
        &self,
        tag: &str,
        decided: Vec<(Examined, ServicePlan)>,
        task_definitions: &HashMap<String, (TaskDefinition, Vec<Tag>)>,
        invocation: &mut Invocation,
        report: &mut DeployReport,
    ) -> Vec<ServiceStep> {
        let mut steps = Vec::new();
        for (candidate, plan) in decided {
            let Some((td, td_tags)) = task_definitions.get(&candidate.task_definition_arn) else {
                continue;
            };
            let step = match plan {
                ServicePlan::Skip(reason) => {
                    let arn = td.task_definition_arn().unwrap_or(&candidate.task_definition_arn);
                    let record = (!candidate.recorded)
                        .then(|| running_record(&candidate, arn, td.container_definitions(), td_tags, report))
                        .flatten();
                    ServiceStep::Skip { id: candidate.id, reason, record }
                }
                ServicePlan::Deploy(changes) => {
                    let request = RolloutRequest {
                        service: &candidate.service,
                        id: candidate.id.clone(),
                        task_definition: td,
                        td_tags,
                        image_tags: changes.iter().map(|c| (c.container.clone(), tag.to_owned())).collect(),
                        changes,
                        description: format!("nightshift deploy-on-push: {tag}"),
                        identity: report.identity.clone().unwrap_or_default(),
                        wake: candidate.asleep.clone(),
                    };
                    let rollout = self.deployer.prepare(&request, invocation).await;
                    // A blue/green service runs the new revision only once CodeDeploy is done: its record waits for the next push.
                    let record_after = matches!(rollout, RolloutPlan::Update { .. })
                        .then(|| record_target(&candidate, report))
                        .flatten();
                    ServiceStep::Roll { id: candidate.id, rollout, record_after }
                }
            };
            steps.push(step);
        }
        steps
    }

    /// Carries out one service's step; with `DRY_RUN`, reports what it would
    /// do and writes nothing. `Some`: the service moved meanwhile, and is planned again.
    async fn apply(
        &self,
        step: ServiceStep,
        invocation: &mut Invocation,
        report: &mut DeployReport,
    ) -> Option<NotDeployed> {
        match step {
            ServiceStep::Skip { id, reason, record } => {
                info!(cluster = %id.cluster, service = %id.service, %reason, "skipped");
                if let Some(record) = record {
                    self.write_record(&record, report).await;
                }
                report.skipped.push(NotDeployed { id, reason });
            }
            ServiceStep::Roll { id, rollout, record_after } => match self.deployer.apply(rollout, invocation).await {
                Rolled::Deployed { deployed, containers, tags } => {
                    let record = match (record_after, &deployed.new_task_definition) {
                        (Some(target), Some(new_arn)) => record_write(target, new_arn, &containers, &tags),
                        _ => None,
                    };
                    if let Some(record) = record {
                        self.write_record(&record, report).await;
                    }
                    report.deployed.push(*deployed);
                }
                Rolled::Skipped(reason) => report.skipped.push(NotDeployed { id, reason }),
                Rolled::Failed(reason) => report.failed.push(NotDeployed { id, reason }),
                Rolled::Moved(reason) => return Some(NotDeployed { id, reason }),
            },
        }
        None
    }

    /// Which merge the pushed image is, its tags read first (one DescribeImages); `None` when ECR has it no longer.
    async fn identify_pushed(&self, push: &Push, report: &mut DeployReport) -> Option<Identity> {
        let id = plan::ImageId::Digest(push.digest.clone());
        let mut found =
            ecr::describe_images(&self.ecr, &push.account, &push.repository, std::slice::from_ref(&id)).await.ok()?;
        let image = found.remove(&id).flatten()?;
        Some(self.identify(push, &image.tags, report).await)
    }

    /// Which merge the pushed image is: its tags, and its config's OCI labels
    /// (a label that cannot be read is a warning: the tags still tell).
    async fn identify(&self, push: &Push, tags: &[String], report: &mut DeployReport) -> Identity {
        let labels = match &self.downloads {
            Some(http) => {
                let read =
                    ecr::config_labels(&self.ecr, http.connector(), &push.account, &push.repository, &push.digest);
                read.await.unwrap_or_else(|why| {
                    warn!(%why, "the image's labels could not be read");
                    report.warnings.push(format!("the image's labels were not read: {why}"));
                    Vec::new()
                })
            }
            None => Vec::new(),
        };
        Identity::of(tags.iter().map(String::as_str), &labels, &self.config.identity)
    }

    /// Records on the service what its revision runs (`nightshift:running`),
    /// so the next push decides from the service alone. Not with `DRY_RUN`; a
    /// record that cannot be written costs reads later, not this push.
    async fn write_record(&self, record: &RecordWrite, report: &mut DeployReport) {
        if self.config.dry_run {
            return;
        }
        let tags = [(RUNNING_TAG.to_owned(), record.value.clone())];
        match nightshift::ecs::tag_resource(&self.ecs, &record.target.arn, &tags).await {
            Ok(()) => report.recorded.push(record.target.id.clone()),
            Err(err) => warn!(service = %record.target.arn, error = %err, "could not record what the service runs"),
        }
    }
}

/// What one service's part of the push does, decided before anything changes.
enum ServiceStep {
    /// Nothing to deploy; the record of what it runs, when it has none yet.
    Skip { id: ServiceId, reason: String, record: Option<RecordWrite> },
    /// The rollout, and where to record what the new revision runs once it is registered.
    Roll { id: ServiceId, rollout: RolloutPlan, record_after: Option<RecordTarget> },
}

/// A service whose record (`nightshift:running`) can be written: it has an
/// ARN, its account's registry, and room for one more tag.
struct RecordTarget {
    id: ServiceId,
    arn: String,
    registry: String,
}

/// The record to write on a service.
struct RecordWrite {
    target: RecordTarget,
    value: String,
}

/// Where the service's record can go; `None` (with a warning when it has no room) when it cannot.
fn record_target(candidate: &Examined, report: &mut DeployReport) -> Option<RecordTarget> {
    let (arn, registry) = (candidate.service.service_arn()?, record::service_registry(&candidate.service)?);
    if let Some(problem) = nightshift::ecs::tag_count_problem(candidate.service.tags(), &[RUNNING_TAG]) {
        let (cluster, service) = (&candidate.id.cluster, &candidate.id.service);
        warn!(%cluster, %service, %problem, "not recorded");
        report.warnings.push(format!("{cluster}/{service}: {RUNNING_TAG} not written: {problem}"));
        return None;
    }
    Some(RecordTarget { id: candidate.id.clone(), arn: arn.to_owned(), registry })
}

/// The record of what a revision runs, for a service that has none yet.
fn running_record(
    candidate: &Examined,
    revision: &str,
    containers: &[ContainerDefinition],
    tags: &[Tag],
    report: &mut DeployReport,
) -> Option<RecordWrite> {
    record_write(record_target(candidate, report)?, revision, containers, tags)
}

/// The record of what `revision` runs, for `target`; `None` when it does not fit in a tag value.
fn record_write(
    target: RecordTarget,
    revision: &str,
    containers: &[ContainerDefinition],
    tags: &[Tag],
) -> Option<RecordWrite> {
    let Some(value) = RunningRecord::of(revision, containers, tags, &target.registry).render() else {
        info!(service = %target.arn, "what the service runs does not fit in a tag value; not recorded");
        return None;
    };
    Some(RecordWrite { target, value })
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
            notices.push((id.clone(), notice::refused(id, push, report.identity.as_ref())));
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
            .service_arn(format!("arn:aws:ecs:eu-west-1:123456789012:service/shop/{name}"))
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
        // Read once to plan, and again under each service's rollout lease
        let describe = mock!(Client::describe_services)
            .sequence()
            .output(|| DescribeServicesOutput::builder().services(service("a")).services(service("b")).build())
            .repeatedly()
            .build();
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
        let tag_b = mock!(Client::tag_resource)
            .match_requests(|r| r.resource_arn().is_some_and(|arn| arn.ends_with("/shop/b")))
            .then_output(|| aws_sdk_ecs::operation::tag_resource::TagResourceOutput::builder().build());
        let ecs = mock_client!(
            aws_sdk_ecs,
            RuleMode::MatchAny,
            [&list, &describe, &task_definition, &register, &refuse_a, &accept_b, &tag_b]
        );
        // And ECR holding the pushed image, pushed after the running one
        let images = mock!(aws_sdk_ecr::Client::describe_images).then_output(|| {
            use aws_sdk_ecr::primitives::DateTime;
            use aws_sdk_ecr::types::ImageDetail;
            aws_sdk_ecr::operation::describe_images::DescribeImagesOutput::builder()
                .image_details(
                    ImageDetail::builder()
                        .image_digest("sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
                        .image_tags("1.3.0")
                        .image_pushed_at(DateTime::from_secs(2_000))
                        .build(),
                )
                .image_details(
                    ImageDetail::builder()
                        .image_digest("sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
                        .image_tags("1.2.0")
                        .image_pushed_at(DateTime::from_secs(1_000))
                        .build(),
                )
                .build()
        });
        let ecr = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, [&images]);
        // And a state table holding no quarantine, and no lease held by another run
        // (a DynamoDB that answers `{}` to every request: nothing held, every conditional write granted)
        let (endpoint, dynamodb) = nightshift::loopback::serve(|_, _| (200, "{}".to_owned()));
        let sdk = nightshift::loopback::sdk_config(&endpoint);
        let signed = Arc::new(nightshift::signed::SignedHttp::new(&sdk));
        let codedeploy = nightshift::rollout::codedeploy::CodeDeploy::new(signed.clone());
        let state = StateTable::new(signed, "nightshift-state");
        let config = DeployConfig {
            clusters: vec!["shop".into()],
            dry_run: false,
            state_table: "nightshift-state".into(),
            registry_accounts: Vec::new(),
            identity: IdentityPatterns::default(),
        };
        let function = DeployOnPush::new(config, ecs, ecr, codedeploy, state);
        let event = json!({
            "version": "0", "id": "1", "detail-type": "ECR Image Action", "source": "aws.ecr",
            "account": "123456789012", "time": "2026-11-26T01:54:34Z", "region": "eu-west-1", "resources": [],
            "detail": {"result": "SUCCESS", "action-type": "PUSH", "repository-name": "shop/api",
                       "image-digest": "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "image-tag": "1.3.0"}
        });

        // When the push arrives
        let err = function.handle(LambdaEvent::new(event, lambda_runtime::Context::default())).await.unwrap_err();

        // Then b was still updated, to the one revision both share, and the invocation fails naming a
        assert_eq!((register.num_calls(), accept_b.num_calls(), refuse_a.num_calls()), (1, 1, 1));
        assert_eq!(tag_b.num_calls(), 1, "what b runs now is recorded on b alone");
        let calls = |operation: &str| dynamodb.lock().unwrap().iter().filter(|o| *o == operation).count();
        assert_eq!(calls("BatchGetItem"), 1, "the quarantine of both, one read");
        assert_eq!((calls("PutItem"), calls("DeleteItem")), (2, 2), "each update under its lease, given back");
        assert_eq!(images.num_calls(), 1, "one DescribeImages for every change");
        assert_eq!(nightshift::LambdaFailure::error_type(&err), "DeployFailed");
        assert_eq!(
            err.to_string(),
            "1 of 2 services failed: shop/a: ECS UpdateService on shop/a failed: Service was not ACTIVE."
        );
    }
}
