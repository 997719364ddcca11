//! `deploy-on-push`: an image pushed to ECR is rolled out to the ECS services
//! that follow its repository (tag `nightshift:deploy`), with the deployment
//! circuit breaker's rollback.
//!
//! Parse (ECR push) -> observe (services, then only the task definitions that
//! matter) -> plan (policy per container) -> apply (register, update) -> report.

pub mod ecs;
pub mod error;
pub mod event;
pub mod image;
pub mod plan;
pub mod policy;

use std::collections::HashMap;

use aws_sdk_ecs::types::{Service, Tag, TaskDefinition};
use lambda_runtime::LambdaEvent;
use nightshift::config::{self, ConfigError, Vars};
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

pub use error::DeployError;
use event::{Push, Trigger};
use plan::{Candidate, ImageChange, ServiceId, ServicePlan};

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
        Ok(Self {
            clusters: config::list(vars, "CLUSTERS"),
            dry_run: config::dry_run(vars)?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deployed {
    #[serde(flatten)]
    pub id: ServiceId,
    pub old_task_definition: String,
    /// `None` with `DRY_RUN`.
    pub new_task_definition: Option<String>,
    pub images: Vec<ImageChange>,
}

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
}

pub struct DeployOnPush {
    config: DeployConfig,
    ecs: aws_sdk_ecs::Client,
}

/// A service that may follow the push, with what its decision needs.
struct Examined {
    service: Service,
    id: ServiceId,
    task_definition_arn: String,
}

impl DeployOnPush {
    pub fn new(config: DeployConfig, ecs: aws_sdk_ecs::Client) -> Self {
        Self { config, ecs }
    }

    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<DeployReport, DeployError> {
        let mut report = DeployReport {
            function: FUNCTION,
            dry_run: self.config.dry_run,
            ..DeployReport::default()
        };
        let push = match event::parse(&event.payload).map_err(DeployError::InvalidEvent)? {
            Trigger::Ignored(why) => {
                info!(reason = %why, "event ignored");
                report.ignored = Some(why);
                nightshift::emit(FUNCTION, &report);
                return Ok(report);
            }
            Trigger::Push(push) => push,
        };
        info!(repository = %push.repository, tag = ?push.tag, digest = %push.digest, "push");
        report.push = Some(push.clone());
        let Some(tag) = push.tag.clone() else {
            report.ignored = Some("the push has no tag, and every policy decides by tag: nothing deployed".into());
            nightshift::emit(FUNCTION, &report);
            return Ok(report);
        };

        let examined = self.observe_services(&tag, &mut report).await?;
        let task_definitions = self.describe_task_definitions(&examined, &mut report).await;
        // Services that share a task definition and a change share one new revision.
        let mut registered: HashMap<(String, Vec<ImageChange>), String> = HashMap::new();
        for candidate in examined {
            let Some((td, td_tags)) = task_definitions.get(&candidate.task_definition_arn) else {
                continue;
            };
            match plan::plan_service(&candidate.service, td, td_tags, &push, &tag) {
                ServicePlan::Skip(reason) => {
                    info!(cluster = %candidate.id.cluster, service = %candidate.id.service, %reason, "skipped");
                    report.skipped.push(NotDeployed { id: candidate.id, reason });
                }
                ServicePlan::Deploy(changes) => {
                    self.deploy(candidate, td, td_tags, changes, &tag, &mut registered, &mut report).await;
                }
            }
        }

        nightshift::emit(FUNCTION, &report);
        if report.failed.is_empty() {
            Ok(report)
        } else {
            Err(DeployError::ServicesFailed {
                total: report.deployed.len() + report.skipped.len() + report.failed.len(),
                failures: report
                    .failed
                    .iter()
                    .map(|f| format!("{}/{}: {}", f.id.cluster, f.id.service, f.reason))
                    .collect(),
            })
        }
    }

    /// Every service in the clusters, described with tags; returns the ones
    /// whose task definition must be read, and reports the ones skipped already.
    async fn observe_services(&self, tag: &str, report: &mut DeployReport) -> Result<Vec<Examined>, DeployError> {
        let clusters = if self.config.clusters.is_empty() {
            ecs::list_clusters(&self.ecs).await?
        } else {
            self.config.clusters.clone()
        };
        let mut examined = Vec::new();
        for cluster in &clusters {
            let arns = ecs::list_services(&self.ecs, cluster).await?;
            for service in ecs::describe_services(&self.ecs, cluster, &arns).await? {
                let id = ServiceId::of(&service);
                match plan::triage(&service, tag) {
                    Candidate::NotFollowing => {}
                    Candidate::Skip(reason) => {
                        info!(cluster = %id.cluster, service = %id.service, %reason, "skipped");
                        report.skipped.push(NotDeployed { id, reason });
                    }
                    Candidate::Examine => examined.push(Examined {
                        task_definition_arn: service.task_definition().unwrap_or_default().to_owned(),
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
                match ecs::describe_task_definition(&self.ecs, arn).await {
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
                report.failed.push(NotDeployed {
                    id: candidate.id.clone(),
                    reason: reason.clone(),
                });
            }
        }
        described
    }

    #[allow(clippy::too_many_arguments)]
    async fn deploy(
        &self,
        candidate: Examined,
        td: &TaskDefinition,
        td_tags: &[Tag],
        changes: Vec<ImageChange>,
        tag: &str,
        registered: &mut HashMap<(String, Vec<ImageChange>), String>,
        report: &mut DeployReport,
    ) {
        let Examined { service, id, task_definition_arn } = candidate;
        let old = td.task_definition_arn().unwrap_or(&task_definition_arn).to_owned();
        if self.config.dry_run {
            info!(cluster = %id.cluster, service = %id.service, ?changes, "would deploy");
            report.deployed.push(Deployed { id, old_task_definition: old, new_task_definition: None, images: changes });
            return;
        }
        let key = (old.clone(), changes.clone());
        let new_arn = match registered.get(&key) {
            Some(arn) => Ok(arn.clone()),
            None => {
                let containers = plan::updated_containers(td.container_definitions(), &changes);
                let tags = plan::updated_tags(td_tags, &changes, tag);
                ecs::register_clone(&self.ecs, td, containers, tags).await
            }
        };
        let result = match new_arn {
            Ok(new_arn) => {
                registered.insert(key, new_arn.clone());
                let config = plan::with_circuit_breaker(service.deployment_configuration());
                ecs::update_service(&self.ecs, &id.cluster, &id.service, &new_arn, config)
                    .await
                    .map(|()| new_arn)
            }
            Err(err) => Err(err),
        };
        match result {
            Ok(new_arn) => {
                info!(cluster = %id.cluster, service = %id.service, from = %old, to = %new_arn, "deployed");
                report.deployed.push(Deployed {
                    id,
                    old_task_definition: old,
                    new_task_definition: Some(new_arn),
                    images: changes,
                });
            }
            Err(err) => {
                warn!(cluster = %id.cluster, service = %id.service, error = %err, "failed");
                report.failed.push(NotDeployed { id, reason: err.to_string() });
            }
        }
    }
}
