//! The reads, and the conversion of what they return into the plain values
//! the decisions take: a CodeDeploy deployment, the ECS service its group
//! deploys, a service with its tags and deployments. Observe only, never decide.

use aws_sdk_ecs::types::Service;
use chrono::{DateTime, Utc};
use nightshift::aws::CallError;
use nightshift::ecs::tag_value;
use nightshift::rollout::ServiceId;
use nightshift::rollout::codedeploy::{CodeDeploy, DeploymentGroupInfo, DeploymentInfo, Revision};

use nightshift::quarantine::QUARANTINE_TAG;
use nightshift::signed::SignedHttp;
use nightshift::state::{Memory, StateTable, VerdictSeen};
use serde_json::{Value, json};

use crate::outcome::{
    CodeDeployEndState, CodeDeployNow, Deployment, DeploymentStatus, Mark, PastRollout, PastStatus, RolloutState,
    TOLD_TAG, ToldRecord,
};
use crate::plan::{LastDeployment, ServiceNow, UpstreamRollout};
use crate::promote::RunningTask;

/// The deployment as the decision reads it; `None` when CodeDeploy has no such deployment.
pub async fn deployment(
    codedeploy: &CodeDeploy,
    id: &str,
    state: CodeDeployEndState,
) -> Result<Option<CodeDeployNow>, CallError> {
    Ok(codedeploy.deployment(id).await?.map(|info| read(id, state, &info)))
}

/// What the decision needs of a deployment that ended in `state`.
pub fn read(id: &str, state: CodeDeployEndState, info: &DeploymentInfo) -> CodeDeployNow {
    let rollback = info.rollback_info.as_ref();
    let automatic: &[String] =
        info.auto_rollback_configuration.as_ref().filter(|c| c.enabled).map_or(&[], |c| c.events.as_slice());
    let covers = match state {
        CodeDeployEndState::Failure => automatic.iter().any(|e| e == "DEPLOYMENT_FAILURE"),
        CodeDeployEndState::Stop => {
            automatic.iter().any(|e| e == "DEPLOYMENT_STOP_ON_ALARM" || e == "DEPLOYMENT_STOP_ON_REQUEST")
        }
        CodeDeployEndState::Success => false,
    };
    let message = info
        .error_information
        .as_ref()
        .and_then(|e| e.message.as_deref())
        .or_else(|| rollback.and_then(|r| r.rollback_message.as_deref()))
        .unwrap_or_default();
    CodeDeployNow {
        id: id.to_owned(),
        is_rollback: info.creator.as_deref() == Some("codeDeployRollback"),
        task_definition: info
            .revision
            .as_ref()
            .and_then(Revision::app_spec)
            .and_then(nightshift::rollout::appspec::task_definition),
        rolled_back: covers || rollback.and_then(|r| r.rollback_deployment_id.as_ref()).is_some(),
        rollback_of: rollback.and_then(|r| r.rollback_triggering_deployment_id.clone()),
        message: message.to_owned(),
        created_at: info.create_time.and_then(seconds),
    }
}

/// The service's newest service deployment created no later than `before`
/// (ECS's history, which outlives the deployments DescribeServices lists),
/// with the revisions it deployed and replaced when it did not succeed; `None`
/// when ECS keeps no history of the service (or not in this region).
///
/// ECS's history is read by signed requests of its JSON protocol, like the
/// tasks: the SDK's three operations and their shapes cost watch-rollouts
/// more than its code (docs/performance.md).
pub async fn last_rollout(
    aws: &SignedHttp,
    id: &ServiceId,
    before: DateTime<Utc>,
) -> Result<Option<PastRollout>, CallError> {
    let request = json!({
        "cluster": id.cluster,
        "service": id.service,
        "createdAt": {"before": before.timestamp() + 1},
        "maxResults": 20,
    });
    let Some(listed) = service_deployments(aws, id, &request).await? else {
        return Ok(None);
    };
    let created = |d: &Value| d["createdAt"].as_f64().and_then(seconds);
    let Some(newest) = listed.iter().max_by_key(|d| created(d)) else {
        return Ok(None);
    };
    let status = match newest["status"].as_str() {
        Some("SUCCESSFUL") => PastStatus::Successful,
        Some("ROLLBACK_REQUESTED" | "ROLLBACK_IN_PROGRESS" | "ROLLBACK_SUCCESSFUL") => PastStatus::RolledBack,
        Some("ROLLBACK_FAILED") => PastStatus::RollbackFailed,
        Some("STOPPED" | "STOP_REQUESTED") => PastStatus::Stopped,
        _ => PastStatus::Running,
    };
    let mut past = PastRollout {
        arn: newest["serviceDeploymentArn"].as_str().unwrap_or_default().to_owned(),
        status,
        task_definition: None,
        previous: None,
        created_at: created(newest),
    };
    if matches!(status, PastStatus::Successful | PastStatus::Running) {
        return Ok(Some(past));
    }
    let described = aws
        .json_operation(
            &nightshift::signed::ECS,
            "DescribeServiceDeployments",
            &past.arn,
            &json!({"serviceDeploymentArns": [past.arn]}),
        )
        .await?;
    let Some(deployment) = described["serviceDeployments"].get(0) else {
        return Ok(Some(past));
    };
    let revision = deployment["targetServiceRevision"]["arn"].as_str().map(str::to_owned);
    // What it rolled back to, else what it replaced.
    let before = deployment["rollback"]["serviceRevisionArn"]
        .as_str()
        .or_else(|| deployment["sourceServiceRevisions"][0]["arn"].as_str())
        .map(str::to_owned);
    let arns: Vec<String> = revision.iter().chain(before.iter()).cloned().collect();
    if arns.is_empty() {
        return Ok(Some(past));
    }
    let task_definitions = revision_task_definitions(aws, &past.arn, &arns).await?;
    let task_definition_of = |arn: &Option<String>| arn.as_ref().and_then(|arn| task_definitions.get(arn)).cloned();
    past.task_definition = task_definition_of(&revision);
    past.previous = task_definition_of(&before);
    Ok(Some(past))
}

/// ListServiceDeployments' one page of `request`: the service deployments
/// listed, or `None` when ECS keeps no history of the service (not in this
/// region, or no such service).
async fn service_deployments(
    aws: &SignedHttp,
    id: &ServiceId,
    request: &Value,
) -> Result<Option<Vec<Value>>, CallError> {
    match aws.json_operation(&nightshift::signed::ECS, "ListServiceDeployments", &id.to_string(), request).await {
        Ok(mut out) => Ok(Some(match out["serviceDeployments"].take() {
            Value::Array(listed) => listed,
            _ => Vec::new(),
        })),
        Err(e) if matches!(e.code.as_deref(), Some("UnsupportedFeatureException" | "ServiceNotFoundException")) => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The task definition of each service revision of `arns`, by revision ARN
/// (DescribeServiceRevisions, 20 ARNs a request).
async fn revision_task_definitions(
    aws: &SignedHttp,
    target: &str,
    arns: &[String],
) -> Result<std::collections::HashMap<String, String>, CallError> {
    let mut task_definitions = std::collections::HashMap::new();
    for batch in arns.chunks(20) {
        let out = aws
            .json_operation(
                &nightshift::signed::ECS,
                "DescribeServiceRevisions",
                target,
                &json!({"serviceRevisionArns": batch}),
            )
            .await?;
        for revision in out["serviceRevisions"].as_array().into_iter().flatten() {
            if let (Some(arn), Some(td)) =
                (revision["serviceRevisionArn"].as_str(), revision["taskDefinition"].as_str())
            {
                task_definitions.insert(arn.to_owned(), td.to_owned());
            }
        }
    }
    Ok(task_definitions)
}

/// The service's tasks RUNNING now: when each started and the digests its
/// containers run (as ECS reports them, `imageDigest`), as promotions read
/// them. ListTasks and DescribeTasks go as signed requests of ECS's JSON
/// protocol over the function's signed connector: the SDK's DescribeTasks (its
/// whole `Task` shape) took watch-rollouts past the 6 MB budget (docs/performance.md).
pub async fn running_tasks(aws: &SignedHttp, id: &ServiceId) -> Result<Vec<RunningTask>, CallError> {
    let target = id.to_string();
    let mut arns: Vec<Value> = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut request = json!({"cluster": id.cluster, "serviceName": id.service, "desiredStatus": "RUNNING"});
        if let Some(token) = token.take() {
            request["nextToken"] = json!(token);
        }
        let page = aws.json_operation(&nightshift::signed::ECS, "ListTasks", &target, &request).await?;
        arns.extend(page["taskArns"].as_array().into_iter().flatten().cloned());
        match page["nextToken"].as_str() {
            Some(next) if !next.is_empty() => token = Some(next.to_owned()),
            _ => break,
        }
    }
    let mut tasks = Vec::new();
    for batch in arns.chunks(100) {
        let out = aws
            .json_operation(
                &nightshift::signed::ECS,
                "DescribeTasks",
                &target,
                &json!({"cluster": id.cluster, "tasks": batch}),
            )
            .await?;
        for task in out["tasks"].as_array().into_iter().flatten() {
            if task["lastStatus"].as_str() != Some("RUNNING") {
                continue;
            }
            let Some(started_at) = task["startedAt"].as_f64().and_then(seconds) else {
                continue;
            };
            let containers = task["containers"].as_array().into_iter().flatten();
            let digests = containers.filter_map(|c| c["imageDigest"].as_str()).map(str::to_owned).collect();
            tasks.push(RunningTask { started_at, digests });
        }
    }
    Ok(tasks)
}

/// The service as the plans read it.
pub fn service_now(service: &Service) -> ServiceNow {
    ServiceNow {
        id: ServiceId::of(service),
        arn: service.service_arn().unwrap_or_default().to_owned(),
        tags: service.tags().to_vec(),
    }
}

/// An SDK time (ECS's) as the decisions read it.
fn time(t: &aws_sdk_ecs::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// A time as AWS's JSON protocols send it (ECS's tasks, CodeDeploy's
/// deployments): seconds since the epoch, with a fraction.
fn seconds(at: f64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(at.trunc() as i64, (at.fract() * 1e9) as u32)
}

/// The service's deployments, as the decisions read them.
pub fn deployments(service: &Service) -> Vec<Deployment> {
    service
        .deployments()
        .iter()
        .map(|d| Deployment {
            id: d.id().unwrap_or_default().to_owned(),
            status: DeploymentStatus::parse(d.status().unwrap_or_default()),
            rollout_state: d.rollout_state().and_then(|s| RolloutState::parse(s.as_str())),
            rollout_reason: d.rollout_state_reason().unwrap_or_default().to_owned(),
            task_definition: d.task_definition().unwrap_or_default().to_owned(),
            created_at: d.created_at().and_then(time),
            updated_at: d.updated_at().and_then(time),
        })
        .collect()
}

/// What nightshift remembers of a service: the state table's items, and,
/// until they are carried over, the tags an older release kept them in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Remembered {
    /// The told marks, the table's first.
    pub record: ToldRecord,
    /// The digests held on it: whole, or short as the older tag held them.
    pub quarantine: Vec<String>,
    /// The older release's tag records, not yet carried into the table.
    pub to_carry: Option<TagRecords>,
    /// The verdicts of its revisions' checks (verify-rollout).
    pub verdicts: Vec<VerdictSeen>,
}

/// What an older release kept in the tags `nightshift:quarantine` and `nightshift:told`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TagRecords {
    /// Short digests.
    pub quarantine: Vec<String>,
    pub record: ToldRecord,
}

/// Reads the service's memory: the table's, with the older tags' until carried over.
pub fn remembered(service: &Service, memory: Memory) -> Remembered {
    let mut record = ToldRecord {
        entries: memory.marks.iter().filter_map(|(id, code)| Some((id.clone(), Mark::parse(code)?))).collect(),
    };
    let verdicts = memory.verdicts;
    let mut quarantine: Vec<String> = memory.quarantine.into_iter().map(|q| q.digest).collect();
    let tags = TagRecords {
        quarantine: tag_value(service.tags(), QUARANTINE_TAG)
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        record: ToldRecord::parse(tag_value(service.tags(), TOLD_TAG).unwrap_or_default()),
    };
    if memory.carried || (tags.quarantine.is_empty() && tags.record.entries.is_empty()) {
        return Remembered { record, quarantine, to_carry: None, verdicts };
    }
    for (id, mark) in &tags.record.entries {
        if record.mark(id).is_none() {
            record.entries.push((id.clone(), *mark));
        }
    }
    quarantine.extend(tags.quarantine.iter().filter(|d| !quarantine.contains(d)).cloned().collect::<Vec<_>>());
    Remembered { record, quarantine, to_carry: Some(tags), verdicts }
}

/// What the table remembers of the service (an empty memory for a service without an ARN).
pub async fn memory(state: &StateTable, service: &Service) -> Result<Memory, CallError> {
    match service.service_arn() {
        Some(arn) => state.memory(arn).await,
        None => Ok(Memory::default()),
    }
}

/// Whether the service's circuit breaker rolls a failed rollout back.
pub fn rolls_back(service: &Service) -> bool {
    service
        .deployment_configuration()
        .and_then(|c| c.deployment_circuit_breaker())
        .is_some_and(|b| b.enable && b.rollback)
}

/// How a blue/green service's group last deployed, as [`crate::plan::settled`] reads it.
pub fn last_attempted(info: &DeploymentGroupInfo) -> UpstreamRollout {
    let Some(last) = &info.last_attempted_deployment else {
        return UpstreamRollout::BlueGreen(LastDeployment::None);
    };
    let id = last.deployment_id.clone().unwrap_or_default();
    UpstreamRollout::BlueGreen(match last.status.as_deref() {
        Some("Succeeded") => LastDeployment::Succeeded { id, ended: last.end_time.and_then(seconds) },
        status => LastDeployment::Other { id, status: status.unwrap_or("of unknown status").to_owned() },
    })
}

/// ECS's history of the service, newest first (its last 20 rollouts): the
/// revision each deployed and those it replaced, as task definition ARNs.
/// Empty when ECS keeps none of it (or not in this region).
pub async fn history(aws: &SignedHttp, id: &ServiceId) -> Result<Vec<crate::byhand::PastDeployment>, CallError> {
    let target = id.to_string();
    let request = json!({"cluster": id.cluster, "service": id.service, "maxResults": 20});
    let Some(mut listed) = service_deployments(aws, id, &request).await? else {
        return Ok(Vec::new());
    };
    listed.sort_by_key(|d| std::cmp::Reverse(d["createdAt"].as_f64().and_then(seconds)));
    let arns: Vec<&str> = listed.iter().filter_map(|d| d["serviceDeploymentArn"].as_str()).collect();
    if arns.is_empty() {
        return Ok(Vec::new());
    }
    let described = aws
        .json_operation(
            &nightshift::signed::ECS,
            "DescribeServiceDeployments",
            &target,
            &json!({"serviceDeploymentArns": arns}),
        )
        .await?;
    let described = described["serviceDeployments"].as_array().map_or(&[][..], Vec::as_slice);
    let deployments: Vec<(Option<String>, Vec<String>)> = arns
        .iter()
        .filter_map(|arn| described.iter().find(|d| d["serviceDeploymentArn"].as_str() == Some(arn)))
        .map(|d| {
            let target = d["targetServiceRevision"]["arn"].as_str().map(str::to_owned);
            let sources = d["sourceServiceRevisions"].as_array().into_iter().flatten();
            (target, sources.filter_map(|r| r["arn"].as_str().map(str::to_owned)).collect())
        })
        .collect();
    let mut revisions: Vec<String> = deployments.iter().flat_map(|(t, s)| t.iter().chain(s.iter())).cloned().collect();
    revisions.sort();
    revisions.dedup();
    let task_definitions = revision_task_definitions(aws, &target, &revisions).await?;
    let td = |arn: &String| task_definitions.get(arn).cloned();
    Ok(deployments
        .iter()
        .map(|(target, sources)| crate::byhand::PastDeployment {
            target: target.as_ref().and_then(td),
            sources: sources.iter().filter_map(td).collect(),
        })
        .collect())
}
