//! `scale-to-zero`'s own read: the Dagster runs in flight. Observe only, never decide.

use aws_sdk_ecs::types::{DesiredStatus, TaskField};
use nightshift::aws::CallError;
use nightshift::ecs::tag_value;
use nightshift::scale::aws::ScaleError;

/// Tasks Dagster's EcsRunLauncher starts carry this tag.
pub const DAGSTER_RUN_TAG: &str = "dagster/run_id";

/// The Dagster runs in flight: tasks tagged `dagster/run_id` that are not
/// STOPPED, stopping ones included.
pub async fn runs_in_flight(ecs: &aws_sdk_ecs::Client, clusters: &[String]) -> Result<Vec<String>, ScaleError> {
    let mut runs = Vec::new();
    for cluster in clusters {
        let mut arns = Vec::new();
        for desired in [DesiredStatus::Running, DesiredStatus::Stopped] {
            let mut pages = ecs.list_tasks().cluster(cluster).desired_status(desired).into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| CallError::new("ListTasks", cluster, e.into_service_error()))?;
                arns.extend(page.task_arns().iter().cloned());
            }
        }
        for batch in arns.chunks(100) {
            let out = ecs
                .describe_tasks()
                .cluster(cluster)
                .set_tasks(Some(batch.to_vec()))
                .include(TaskField::Tags)
                .send()
                .await
                .map_err(|e| CallError::new("DescribeTasks", cluster, e.into_service_error()))?;
            for task in out.tasks() {
                let run = tag_value(task.tags(), DAGSTER_RUN_TAG);
                if let Some(run) = run
                    && task.last_status() != Some("STOPPED")
                    && !runs.iter().any(|r| r == run)
                {
                    runs.push(run.to_owned());
                }
            }
        }
    }
    Ok(runs)
}
