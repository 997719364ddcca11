//! The group's AWS calls (ECS, Application Auto Scaling): observe and apply, never decide.

use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
use aws_sdk_ecs::types::Service;
use chrono::{DateTime, SecondsFormat, Utc};
use lambda_runtime::Diagnostic;
use serde::Serialize;

use super::plan::{Member, MemberPlan, Step};
use super::{
    AWAKE_COUNT_TAG, LAST_ACTIVITY_TAG, MAX_CAPACITY_TAG, MIN_CAPACITY_TAG, SCALE_GROUP_TAG, ScaleGroup, WAKE_ORDER_TAG,
};
use crate::LambdaFailure;
use crate::aws::CallError;
use crate::ecs::tag_value;

#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    #[error(transparent)]
    Aws(#[from] CallError),
    #[error("{} of the group's services failed: {}", failures.len(), failures.join("; "))]
    Failed { failures: Vec<String> },
}

impl LambdaFailure for ScaleError {
    fn error_type(&self) -> &'static str {
        match self {
            Self::InvalidEvent(_) => "InvalidEvent",
            Self::Aws(_) => "AwsError",
            Self::Failed { .. } => "ScaleFailed",
        }
    }
}

impl From<ScaleError> for Diagnostic {
    fn from(err: ScaleError) -> Self {
        err.diagnostic()
    }
}

/// The Application Auto Scaling resource ID of an ECS service.
pub fn resource_id(cluster: &str, service: &str) -> String {
    format!("service/{cluster}/{service}")
}

fn tag<'a>(service: &'a Service, key: &str) -> Option<&'a str> {
    tag_value(service.tags(), key)
}

/// Reads a member from its service's tags; `None` when not in the group.
pub fn member_of(service: &Service, group: &str) -> Option<Member> {
    if tag(service, SCALE_GROUP_TAG) != Some(group) {
        return None;
    }
    let mut problems = Vec::new();
    let mut number = |key: &str, default: i64, min: i64| -> i64 {
        match tag(service, key) {
            None => default,
            Some(v) => v.trim().parse::<i64>().ok().filter(|n| *n >= min).unwrap_or_else(|| {
                problems.push(format!("{key} {v:?} is not a whole number from {min}"));
                default
            }),
        }
    };
    let awake_count = number(AWAKE_COUNT_TAG, 1, 0);
    let wake_order = number(WAKE_ORDER_TAG, 0, i64::MIN);
    let min = tag(service, MIN_CAPACITY_TAG).map(|_| number(MIN_CAPACITY_TAG, 0, 0));
    let max = tag(service, MAX_CAPACITY_TAG).map(|_| number(MAX_CAPACITY_TAG, 0, 0));
    let remembered = match (min, max) {
        (Some(min), Some(max)) => Some((min as i32, max as i32)),
        (None, None) => None,
        _ => {
            problems.push(format!("only one of {MIN_CAPACITY_TAG} and {MAX_CAPACITY_TAG} is set"));
            None
        }
    };
    let cluster_arn = service.cluster_arn().unwrap_or_default();
    Some(Member {
        cluster: crate::ecs::last_segment(cluster_arn).to_owned(),
        service: service.service_name().unwrap_or_default().to_owned(),
        arn: service.service_arn().unwrap_or_default().to_owned(),
        desired: service.desired_count(),
        awake_count: i32::try_from(awake_count).unwrap_or(1),
        wake_order,
        // An unreadable time counts as none: the next ingress writes a good one.
        last_activity: tag(service, LAST_ACTIVITY_TAG)
            .and_then(|t| DateTime::parse_from_rfc3339(t.trim()).ok())
            .map(|t| t.with_timezone(&Utc)),
        remembered,
        target: None,
        problem: (!problems.is_empty()).then(|| problems.join("; ")),
        tag_count: crate::ecs::counted_tags(service.tags()),
    })
}

/// The group's services in the configured clusters, with their scalable targets.
pub async fn observe_members(group: &ScaleGroup) -> Result<Vec<Member>, ScaleError> {
    let (ecs, scaling, config) = (&group.ecs, &group.scaling, &group.config);
    let services = crate::ecs::services_in(ecs, &config.clusters).await?;
    let mut members: Vec<Member> = services.iter().filter_map(|s| member_of(s, &config.group)).collect();
    let ids: Vec<String> = members.iter().map(|m| resource_id(&m.cluster, &m.service)).collect();
    for batch in ids.chunks(50) {
        let out = scaling
            .describe_scalable_targets()
            .service_namespace(ServiceNamespace::Ecs)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .set_resource_ids(Some(batch.to_vec()))
            .send()
            .await
            .map_err(|e| CallError::new("DescribeScalableTargets", &config.group, e.into_service_error()))?;
        for target in out.scalable_targets() {
            if let Some(m) = members.iter_mut().find(|m| resource_id(&m.cluster, &m.service) == target.resource_id()) {
                m.target = Some((target.min_capacity(), target.max_capacity()));
            }
        }
    }
    super::plan::mark_tag_room(&mut members);
    Ok(members)
}

/// The RFC 3339 UTC form nightshift writes times in.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Applies one step to one member.
pub async fn apply_step(
    ecs: &aws_sdk_ecs::Client,
    scaling: &aws_sdk_applicationautoscaling::Client,
    member: &Member,
    step: &Step,
) -> Result<(), ScaleError> {
    let target = format!("{}/{}", member.cluster, member.service);
    let tagged = |pairs: &[(&str, String)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect::<Vec<_>>();
    match step {
        Step::RememberCapacity { min, max } => {
            let tags = tagged(&[(MIN_CAPACITY_TAG, min.to_string()), (MAX_CAPACITY_TAG, max.to_string())]);
            crate::ecs::tag_resource(ecs, &member.arn, &tags).await?;
        }
        Step::RecordActivity { at } => {
            crate::ecs::tag_resource(ecs, &member.arn, &tagged(&[(LAST_ACTIVITY_TAG, rfc3339(*at))])).await?;
        }
        Step::ForgetCapacity => {
            ecs.untag_resource()
                .resource_arn(&member.arn)
                .tag_keys(MIN_CAPACITY_TAG)
                .tag_keys(MAX_CAPACITY_TAG)
                .send()
                .await
                .map_err(|e| CallError::new("UntagResource", &target, e.into_service_error()))?;
        }
        Step::SetCapacity { min, max } => {
            scaling
                .register_scalable_target()
                .service_namespace(ServiceNamespace::Ecs)
                .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                .resource_id(resource_id(&member.cluster, &member.service))
                .min_capacity(*min)
                .max_capacity(*max)
                .send()
                .await
                .map_err(|e| CallError::new("RegisterScalableTarget", &target, e.into_service_error()))?;
        }
        Step::SetDesired { count } => {
            ecs.update_service()
                .cluster(&member.cluster)
                .service(&member.service)
                .desired_count(*count)
                .send()
                .await
                .map_err(|e| CallError::new("UpdateService", &target, e.into_service_error()))?;
        }
    }
    Ok(())
}

/// What was (or, with `DRY_RUN`, would be) done to one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceReport {
    pub cluster: String,
    pub service: String,
    pub wake_order: i64,
    pub desired_before: i32,
    pub steps: Vec<Step>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a run did to the group, as told at `NOTIFY_LEVEL=all`: put to sleep,
/// or woken; `None` when it changed no service's count.
pub fn notice(group: &str, services: &[&ServiceReport], reasons: &[String]) -> Option<crate::notify::Notice> {
    let (slept, woken) = slept_and_woken(services.iter().copied());
    let (what, changed) = match (slept, woken) {
        (0, 0) => return None,
        (_, 0) => ("put to sleep", slept),
        _ => ("woken", woken),
    };
    let names: Vec<String> = services
        .iter()
        .filter(|s| s.error.is_none() && s.steps.iter().any(|step| matches!(step, Step::SetDesired { .. })))
        .map(|s| format!("{}/{}", s.cluster, s.service))
        .collect();
    Some(crate::notify::Notice {
        tone: crate::notify::Tone::Info,
        title: format!("Scale group {group} {what}"),
        summary: format!("{changed} services of the scale group {group} were {what}."),
        facts: vec![("Services".into(), names.join(", ")), ("Why".into(), reasons.join("; "))],
        link: None,
    })
}

/// How many services a run put to sleep and woke (set to 0, set above 0).
pub fn slept_and_woken<'a>(services: impl IntoIterator<Item = &'a ServiceReport>) -> (usize, usize) {
    let mut counts = (0, 0);
    for service in services.into_iter().filter(|s| s.error.is_none()) {
        for step in &service.steps {
            match step {
                Step::SetDesired { count: 0 } => counts.0 += 1,
                Step::SetDesired { .. } => counts.1 += 1,
                _ => {}
            }
        }
    }
    counts
}

/// Applies the plans in their order (unless `DRY_RUN`); a member whose step
/// fails stops there, the others go on. Returns the reports and the failures.
pub async fn execute(
    group: &ScaleGroup,
    members: &[Member],
    plans: Vec<MemberPlan>,
) -> (Vec<ServiceReport>, Vec<String>) {
    let dry_run = group.config.dry_run;
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for plan in plans {
        let member = &members[plan.member];
        let mut error = None;
        if !dry_run {
            for step in &plan.steps {
                if let Err(err) = apply_step(&group.ecs, &group.scaling, member, step).await {
                    tracing::warn!(cluster = %member.cluster, service = %member.service, error = %err, "step failed");
                    failures.push(err.to_string());
                    error = Some(err.to_string());
                    break;
                }
            }
        }
        tracing::info!(cluster = %member.cluster, service = %member.service, steps = ?plan.steps, dry_run, "scaled");
        reports.push(ServiceReport {
            cluster: member.cluster.clone(),
            service: member.service.clone(),
            wake_order: member.wake_order,
            desired_before: member.desired,
            steps: plan.steps,
            error,
        });
    }
    (reports, failures)
}
