//! `--wait`: follows a rollout nightshift started until ECS says how it ended.

use std::time::{Duration, Instant};

use aws_config::SdkConfig;

use crate::cloud::{Failure, said};
use crate::status::Paint;

/// How often ECS is asked.
const EVERY: Duration = Duration::from_secs(3);

/// How a rollout to `revision` stands, from the service's deployments (ECS
/// controller) or task sets (blue/green): `Some(true)` done, `Some(false)`
/// failed or replaced, `None` still rolling (with a line of progress).
pub fn judge(service: &aws_sdk_ecs::types::Service, revision: &str) -> (Option<bool>, String) {
    use aws_sdk_ecs::types::DeploymentRolloutState as State;
    if !service.task_sets().is_empty() {
        let primary = service.task_sets().iter().find(|t| t.status() == Some("PRIMARY"));
        let steady = primary.and_then(|t| t.stability_status()).map(|s| s.as_str() == "STEADY_STATE");
        return match primary.and_then(|t| t.task_definition()) {
            Some(td) if td == revision && steady == Some(true) => {
                (Some(true), "the new task set is primary and steady".into())
            }
            _ => (None, format!("{} task sets, waiting for the new one to become primary", service.task_sets().len())),
        };
    }
    let Some(deployment) = service.deployments().iter().find(|d| d.task_definition() == Some(revision)) else {
        let now = service.task_definition().unwrap_or("?");
        return (Some(false), format!("the service moved on to {now} (rolled back, or another rollout replaced it)"));
    };
    let progress = format!(
        "{}: {} of {} tasks running",
        deployment.rollout_state().map_or("?", State::as_str),
        deployment.running_count(),
        deployment.desired_count()
    );
    match deployment.rollout_state() {
        Some(State::Completed) => (Some(true), progress),
        Some(State::Failed) => {
            (Some(false), format!("{progress}: {}", deployment.rollout_state_reason().unwrap_or("failed")))
        }
        _ => (None, progress),
    }
}

/// Waits for the service's rollout to `revision` to end; `Ok(false)` when it failed or timed out.
pub async fn rollout(
    config: &SdkConfig,
    cluster: &str,
    service: &str,
    revision: &str,
    timeout_minutes: u64,
    paint: Paint,
) -> Result<bool, Failure> {
    let ecs = aws_sdk_ecs::Client::new(config);
    let started = Instant::now();
    let mut said_last = String::new();
    loop {
        let out = ecs
            .describe_services()
            .cluster(cluster)
            .services(service)
            .send()
            .await
            .map_err(|e| said(&format!("ECS DescribeServices {cluster}/{service}"), e))?;
        let Some(found) = out.services().first() else {
            return Err(Failure::new(format!("ECS has no service {cluster}/{service} any more")));
        };
        let (ended, line) = judge(found, revision);
        if line != said_last {
            println!("  {line}");
            said_last = line.clone();
        }
        match ended {
            Some(true) => {
                println!("{}", paint.green(&format!("{cluster}/{service}: rolled out")));
                return Ok(true);
            }
            Some(false) => {
                println!("{}", paint.red(&format!("{cluster}/{service}: the rollout failed: {line}")));
                return Ok(false);
            }
            None if started.elapsed() > Duration::from_secs(timeout_minutes * 60) => {
                println!(
                    "{}",
                    paint.red(&format!(
                        "{cluster}/{service}: still rolling out after {timeout_minutes} min; stopped waiting"
                    ))
                );
                return Ok(false);
            }
            None => tokio::time::sleep(EVERY).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::{Deployment, DeploymentRolloutState, Service};

    fn service(deployments: &[(&str, DeploymentRolloutState)]) -> Service {
        let mut builder = Service::builder().task_definition(deployments[0].0);
        for (td, state) in deployments {
            builder = builder.deployments(
                Deployment::builder()
                    .task_definition(*td)
                    .rollout_state(state.clone())
                    .desired_count(2)
                    .running_count(1)
                    .build(),
            );
        }
        builder.build()
    }

    #[test]
    fn a_rollout_ends_when_ecs_says_completed_or_failed_or_moves_on() {
        use DeploymentRolloutState::*;
        assert_eq!(judge(&service(&[("td:2", InProgress), ("td:1", Completed)]), "td:2").0, None);
        assert_eq!(judge(&service(&[("td:2", Completed)]), "td:2").0, Some(true));
        assert_eq!(judge(&service(&[("td:2", Failed)]), "td:2").0, Some(false));
        let (ended, why) = judge(&service(&[("td:1", InProgress)]), "td:2");
        assert_eq!(ended, Some(false));
        assert!(why.contains("moved on to td:1"), "{why}");
    }
}
