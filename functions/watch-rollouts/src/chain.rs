//! The promotion chain, applied: after an upstream rollout succeeded, one
//! EventBridge Scheduler one-time schedule per service that follows it
//! (`nightshift:promote-from`); when one comes due, or by hand, the promotion
//! observed (both services now), decided (`promote`) and deployed the way
//! deploy-on-push deploys (`nightshift::rollout`).

use aws_sdk_codedeploy::types::DeploymentStatus;
use aws_sdk_ecs::types::{DeploymentRolloutState, Service};
use chrono::{DateTime, Utc};
use nightshift::ecs::{IMAGE_TAG_PREFIX, tag_value};
use nightshift::notify::Level;
use nightshift::quarantine::{self, QUARANTINE_TAG};
use nightshift::rollout::{Deployed, Invocation, Rolled, Rollout, ServiceId, bluegreen};
use serde::Serialize;
use tracing::{info, warn};

use crate::outcome::{Mark, Record, TOLD_TAG, is_rollback_reason};
use crate::promote::{self, Downstream, Due, PROMOTE_FROM_TAG, Promotion, Settings, Settled, Upstream};
use crate::scheduler::{self, Created, OneTime};
use crate::{WatchError, WatchReport, WatchRollouts, message};

/// A promotion scheduled (or, with `DRY_RUN`, that would be).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scheduled {
    /// The service promoted into.
    #[serde(flatten)]
    pub id: ServiceId,
    pub schedule: String,
    pub at: DateTime<Utc>,
    /// The schedule existed already: a duplicate, nothing new scheduled.
    pub already: bool,
}

/// What a promotion did.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct PromotionReport {
    /// The service promoted into.
    pub service: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub by_hand: bool,
    /// `promoted`, `waiting` (scheduled again), `already` or `refused`.
    pub result: &'static str,
    pub why: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub digests: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployed: Option<Deployed>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<Scheduled>,
}

/// The upstream rollout that succeeded.
pub struct Succeeded<'a> {
    pub upstream: ServiceId,
    pub deployment: &'a str,
    pub task_definition: &'a str,
    pub completed: DateTime<Utc>,
}

impl WatchRollouts<'_> {
    /// One schedule per service that follows the upstream, due when its soak
    /// ends (in its window). A schedule that exists already (a duplicate
    /// outcome) is reported `already` and not made again.
    pub(crate) async fn schedule_promotions(
        &self,
        succeeded: &Succeeded<'_>,
        function_arn: &str,
        region: &str,
        report: &mut WatchReport,
    ) -> Result<(), WatchError> {
        let now = self.clock.now();
        for (service, settings) in self.downstreams(&succeeded.upstream, region, report).await? {
            let id = ServiceId::of(&service);
            let at = promote::due_at(succeeded.completed, &settings, now);
            let due = Due {
                service: id.to_string(),
                from: succeeded.upstream.to_string(),
                task_definition: succeeded.task_definition.to_owned(),
                deployment: succeeded.deployment.to_owned(),
            };
            let name = promote::schedule_name(&id, succeeded.deployment, None);
            let already = self.create_schedule(&name, at, &due, function_arn).await?;
            info!(service = %id, schedule = %name, %at, already, "promotion scheduled");
            report.scheduled.push(Scheduled { id, schedule: name, at, already });
        }
        Ok(())
    }

    /// Every service tagged `nightshift:promote-from=<upstream>`, with its
    /// settings; one whose other promotion tags are wrong is reported and told.
    async fn downstreams(
        &self,
        upstream: &ServiceId,
        region: &str,
        report: &mut WatchReport,
    ) -> Result<Vec<(Service, Settings)>, WatchError> {
        let mut found = Vec::new();
        for service in nightshift::ecs::services_in(&self.ecs, &self.config.clusters).await? {
            let follows = tag_value(service.tags(), PROMOTE_FROM_TAG)
                .is_some_and(|from| ServiceId::parse(from).as_ref() == Ok(upstream));
            if !follows {
                continue;
            }
            match Settings::of(service.tags(), &self.config.timezone) {
                Some(Ok(settings)) => found.push((service, settings)),
                Some(Err(why)) => {
                    let id = ServiceId::of(&service);
                    warn!(service = %id, %why, "promotion not scheduled");
                    report.warnings.push(format!("{id}: promotion not scheduled: {why}"));
                    let notice = message::promotion_refused(&id, upstream, &why, region);
                    self.tell_service(&service, &notice, report).await;
                }
                None => {}
            }
        }
        Ok(found)
    }

    /// Creates the one-time schedule; `true` when it existed already. Not with `DRY_RUN`.
    async fn create_schedule(
        &self,
        name: &str,
        at: DateTime<Utc>,
        due: &Due,
        function_arn: &str,
    ) -> Result<bool, WatchError> {
        if self.config.dry_run {
            return Ok(false);
        }
        let not_scheduled = |why: String| WatchError::NotScheduled { service: due.service.clone(), why };
        let role = self.config.schedule_role_arn.as_deref().ok_or_else(|| {
            not_scheduled(
                "SCHEDULE_ROLE_ARN is not set: EventBridge Scheduler needs a role to invoke watch-rollouts".into(),
            )
        })?;
        if function_arn.is_empty() {
            return Err(not_scheduled("the invocation does not say this function's ARN, the schedule's target".into()));
        }
        let schedule = OneTime {
            name,
            group: &self.config.schedule_group,
            at,
            function_arn,
            role_arn: role,
            input: serde_json::json!({ "promotion": due }).to_string(),
            description: format!("nightshift: promote {} to what {} runs ({})", due.service, due.from, due.deployment),
        };
        let created = scheduler::create(&self.aws, &schedule).await.map_err(WatchError::Scheduler)?;
        Ok(created == Created::Existed)
    }

    /// A promotion into `id`: due (its schedule's input) or by hand (`None`).
    pub(crate) async fn promote(
        &self,
        due: Option<Due>,
        id: ServiceId,
        function_arn: &str,
        region: &str,
        report: &mut WatchReport,
    ) -> Result<(), WatchError> {
        let mut result = PromotionReport {
            service: id.to_string(),
            by_hand: due.is_none(),
            result: "refused",
            ..Default::default()
        };
        let outcome = self.promote_into(due.as_ref(), &id, function_arn, &mut result).await;
        let refused = matches!(outcome, Ok(Some(_))) && result.result == "refused";
        if let Ok(Some(service)) = &outcome {
            if refused {
                let from = result.from.as_deref().and_then(|f| ServiceId::parse(f).ok()).unwrap_or_else(|| id.clone());
                let notice = message::promotion_refused(&id, &from, &result.why, region);
                self.tell_service(service, &notice, report).await;
            } else if let Some(deployed) = &result.deployed
                && self.notifier.config().level == Level::All
            {
                let notice = message::promotion_started(deployed, result.from.as_deref().unwrap_or_default(), region);
                self.tell_service(service, &notice, report).await;
            }
        }
        info!(service = %id, result = result.result, why = %result.why, "promotion");
        report.promotion = Some(result);
        outcome.map(|_| ())
    }

    /// Observes, decides and applies; `Ok(Some(service))` once the downstream
    /// service is known (to tell its channels).
    async fn promote_into(
        &self,
        due: Option<&Due>,
        id: &ServiceId,
        function_arn: &str,
        result: &mut PromotionReport,
    ) -> Result<Option<Service>, WatchError> {
        let Some(service) = self.service(id).await? else {
            result.why = format!("ECS has no service {id}");
            return Ok(None);
        };
        let settings = match Settings::of(service.tags(), &self.config.timezone) {
            Some(Ok(settings)) => settings,
            Some(Err(why)) => {
                result.why = why;
                return Ok(Some(service));
            }
            None => {
                result.why = format!("{id} is not tagged {PROMOTE_FROM_TAG}");
                return Ok(Some(service));
            }
        };
        let from = settings.from.clone();
        result.from = Some(from.to_string());
        let Some(upstream_service) = self.service(&from).await? else {
            result.why = format!("ECS has no service {from}, which {id} follows ({PROMOTE_FROM_TAG})");
            return Ok(Some(service));
        };
        let mut invocation = Invocation::default();
        let settled = self.settled(&upstream_service, &from, &mut invocation).await;
        let upstream_arn = upstream_service.task_definition().unwrap_or_default().to_owned();
        let (upstream_td, upstream_tags) = self.deployer.task_definition(&upstream_arn).await?;
        let downstream_arn = service.task_definition().unwrap_or_default().to_owned();
        let (td, td_tags) = self.deployer.task_definition(&downstream_arn).await?;
        let upstream = Upstream {
            task_definition: upstream_arn,
            settled,
            quarantine: tag_value(upstream_service.tags(), QUARANTINE_TAG).unwrap_or_default().to_owned(),
            containers: upstream_td.container_definitions().to_vec(),
            image_tags: upstream_tags
                .iter()
                .filter_map(|t| Some((t.key()?.strip_prefix(IMAGE_TAG_PREFIX)?.to_owned(), t.value()?.to_owned())))
                .collect(),
        };
        let downstream = Downstream {
            id: id.clone(),
            settings,
            quarantine: tag_value(service.tags(), QUARANTINE_TAG).unwrap_or_default().to_owned(),
            containers: td.container_definitions().to_vec(),
        };
        match promote::decide(due, &upstream, &downstream, self.clock.now()) {
            Promotion::Move { changes, image_tags, digests } => {
                result.digests = digests.iter().map(|d| quarantine::short(d)).collect();
                let rollout = Rollout {
                    service: &service,
                    id: id.clone(),
                    task_definition: &td,
                    td_tags: &td_tags,
                    changes,
                    image_tags,
                    description: format!("nightshift promotion from {from}"),
                };
                match self.deployer.roll_out(rollout, &mut invocation).await {
                    Rolled::Deployed { deployed, .. } => {
                        result.result = "promoted";
                        result.why = format!("{from} ran it without a failure");
                        result.deployed = Some(*deployed);
                    }
                    Rolled::Skipped(why) => {
                        result.result = "already";
                        result.why = why;
                    }
                    Rolled::Failed(why) => {
                        result.result = "failed";
                        result.why = why.clone();
                        return Err(WatchError::PromotionFailed { service: id.to_string(), why });
                    }
                }
            }
            Promotion::Wait { until, why } => {
                let Some(due) = due else {
                    // By hand nothing waits; `decide` checks soak and window only for a due promotion.
                    result.why = why;
                    return Ok(Some(service));
                };
                let name = promote::schedule_name(id, &due.deployment, Some(until));
                let already = self.create_schedule(&name, until, due, function_arn).await?;
                result.result = "waiting";
                result.why = why;
                result.scheduled = Some(Scheduled { id: id.clone(), schedule: name, at: until, already });
            }
            Promotion::Already(why) => {
                result.result = "already";
                result.why = why;
            }
            Promotion::Refuse(why) => result.why = why,
        }
        Ok(Some(service))
    }

    /// The upstream's last rollout, when it completed; else why it is not settled.
    async fn settled(&self, service: &Service, id: &ServiceId, invocation: &mut Invocation) -> Result<Settled, String> {
        if bluegreen::is_blue_green(service) {
            let info = self.deployer.group_for(service, id, invocation).await?;
            let last = info.last_attempted_deployment().ok_or("its CodeDeploy group has deployed nothing yet")?;
            let deployment = last.deployment_id().unwrap_or_default().to_owned();
            return match last.status() {
                Some(DeploymentStatus::Succeeded) => Ok(Settled {
                    completed_at: last
                        .end_time()
                        .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
                        .unwrap_or_else(|| self.clock.now()),
                    deployment,
                }),
                status => Err(format!(
                    "its CodeDeploy deployment {deployment} is {}",
                    status.map(|s| s.as_str()).unwrap_or("of unknown status")
                )),
            };
        }
        let deployments = service.deployments();
        let primary =
            deployments.iter().find(|d| d.status() == Some("PRIMARY")).ok_or("ECS lists no PRIMARY deployment")?;
        let deployment = primary.id().unwrap_or_default().to_owned();
        match primary.rollout_state() {
            Some(DeploymentRolloutState::Completed) => {}
            state => {
                return Err(format!(
                    "its rollout {deployment} is {}",
                    state.map(|s| s.as_str()).unwrap_or("of unknown state")
                ));
            }
        }
        if deployments.len() > 1 {
            return Err(format!("ECS lists {} deployments: a rollout is in progress", deployments.len()));
        }
        let record = Record::parse(tag_value(service.tags(), TOLD_TAG).unwrap_or_default());
        if record.mark(&deployment) == Some(Mark::Rollback)
            || is_rollback_reason(primary.rollout_state_reason().unwrap_or_default())
        {
            return Err(format!("its last rollout failed and {deployment} rolled it back"));
        }
        let completed_at = primary
            .updated_at()
            .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
            .unwrap_or_else(|| self.clock.now());
        Ok(Settled { deployment, completed_at })
    }

    /// The service with its tags, when it is ACTIVE.
    async fn service(&self, id: &ServiceId) -> Result<Option<Service>, WatchError> {
        Ok(self.describe(id).await?.filter(|s| s.status() == Some("ACTIVE")))
    }
}
