//! Blue/green services (the CODE_DEPLOY controller): which CodeDeploy
//! deployment group deploys one, whether the group can take a deployment now,
//! and the AppSpec of the deployment. No AWS calls here.

use std::collections::HashMap;

use super::codedeploy::{DeploymentGroupInfo, EcsService, Revision};
use crate::ecs::tag_value;
use aws_sdk_ecs::types::{DeploymentControllerType, Service, TaskDefinition};
use serde::Serialize;
use serde_json::json;

use super::{ImageChange, ServiceId};

/// The optional service tag naming the group: `<application>/<deployment-group>`.
pub const CODEDEPLOY_TAG: &str = "nightshift:codedeploy";
/// The optional service tag naming the deployment configuration to use instead of the group's.
pub const DEPLOYMENT_CONFIG_TAG: &str = "nightshift:deployment-config";
/// The optional service tag naming the Lambda function run as the `AfterAllowTestTraffic` hook.
pub const TEST_HOOK_TAG: &str = "nightshift:test-hook";
/// What CodeDeploy uses for an ECS group that names no configuration.
pub const DEFAULT_CONFIG: &str = "CodeDeployDefault.ECSAllAtOnce";

/// Whether ECS leaves the service's deployments to CodeDeploy.
pub fn is_blue_green(service: &Service) -> bool {
    service.deployment_controller().map(|c| c.r#type()) == Some(&DeploymentControllerType::CodeDeploy)
}

/// A CodeDeploy deployment group, by its application and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct GroupName {
    pub application: String,
    pub deployment_group: String,
}

impl GroupName {
    pub fn of(info: &DeploymentGroupInfo) -> Self {
        Self {
            application: info.application_name.clone().unwrap_or_default(),
            deployment_group: info.deployment_group_name.clone().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for GroupName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.application, self.deployment_group)
    }
}

/// The group `nightshift:codedeploy` names, when the service carries the tag.
pub fn named_group(service: &Service) -> Option<Result<GroupName, String>> {
    let value = tag_value(service.tags(), CODEDEPLOY_TAG)?;
    Some(match value.split_once('/') {
        Some((application, group)) if !application.is_empty() && !group.is_empty() && !group.contains('/') => {
            Ok(GroupName { application: application.to_owned(), deployment_group: group.to_owned() })
        }
        _ => Err(format!("{CODEDEPLOY_TAG} is {value:?}, not <application>/<deployment-group>")),
    })
}

/// Whether the group deploys this service (its `ecsServices` names the pair).
pub fn deploys(info: &DeploymentGroupInfo, id: &ServiceId) -> bool {
    info.ecs_services.iter().any(|s| {
        s.cluster_name.as_deref() == Some(id.cluster.as_str()) && s.service_name.as_deref() == Some(id.service.as_str())
    })
}

/// Which group deploys each ECS service, from every group of the account's ECS applications.
pub fn index(groups: &[DeploymentGroupInfo]) -> HashMap<ServiceId, GroupName> {
    let mut index = HashMap::new();
    for info in groups.iter().filter(|g| g.compute_platform.as_deref() == Some("ECS")) {
        for id in info.ecs_services.iter().filter_map(EcsService::id) {
            index.entry(id).or_insert_with(|| GroupName::of(info));
        }
    }
    index
}

/// The deployment configuration a deployment nightshift creates uses: the
/// tag's, else the group's. The first is `Some` only when the tag names one.
pub fn deployment_config(service: &Service, info: &DeploymentGroupInfo) -> (Option<String>, String) {
    match tag_value(service.tags(), DEPLOYMENT_CONFIG_TAG).filter(|v| !v.trim().is_empty()) {
        Some(named) => (Some(named.to_owned()), named.to_owned()),
        None => (None, info.deployment_config_name.as_deref().unwrap_or(DEFAULT_CONFIG).to_owned()),
    }
}

/// The task definition the group's target revision (its last deployment) deploys.
pub fn target_task_definition(info: &DeploymentGroupInfo) -> Option<String> {
    info.target_revision.as_ref().and_then(Revision::app_spec).and_then(super::appspec::task_definition)
}

/// Whether a revision already carries the change: same family, and every
/// changing container runs the image the change pins.
pub fn carries(target: &TaskDefinition, family: Option<&str>, changes: &[ImageChange]) -> bool {
    target.family() == family
        && changes.iter().all(|change| {
            target
                .container_definitions()
                .iter()
                .any(|c| c.name() == Some(change.container.as_str()) && c.image() == Some(change.to.as_str()))
        })
}

/// Whether the group can take the deployment now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Free,
    /// Its last deployment already deploys this change: a replay, nothing to do.
    Already(String),
    /// A deployment of something else has not ended: CodeDeploy takes no second one.
    Busy(String),
}

/// The group's deployment that has not ended, if any: its id.
pub fn active_deployment(info: &DeploymentGroupInfo) -> Option<&str> {
    let last = info.last_attempted_deployment.as_ref()?;
    last.status.as_deref().filter(|s| is_active(s)).and(last.deployment_id.as_deref())
}

/// CodeDeploy's deployment states that have not ended.
fn is_active(status: &str) -> bool {
    matches!(status, "Created" | "Queued" | "InProgress" | "Baking" | "Ready")
}

/// Decides from the group's last attempted deployment and whether its target
/// already carries the change.
pub fn readiness(info: &DeploymentGroupInfo, target_is_the_change: bool) -> Readiness {
    let Some(last) = &info.last_attempted_deployment else {
        return Readiness::Free;
    };
    let (Some(id), Some(status)) = (&last.deployment_id, last.status.as_deref()) else {
        return Readiness::Free;
    };
    let group = GroupName::of(info);
    if target_is_the_change {
        let deploys = if is_active(status) { "already deploys" } else { "already deployed" };
        return Readiness::Already(format!("CodeDeploy deployment {id} of {group} {deploys} this revision ({status})"));
    }
    if is_active(status) {
        return Readiness::Busy(format!(
            "CodeDeploy deployment {id} of {group} is {status}: the group takes no second deployment until it ends \
             (the push is retried)"
        ));
    }
    Readiness::Free
}

/// What the AppSpec of a deployment to a service holds besides the revision:
/// its container and port from the service's load balancer, its platform
/// version when it has one, and the test hook when the service names one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpec {
    container: String,
    port: i32,
    platform_version: Option<String>,
    test_hook: Option<String>,
}

impl AppSpec {
    pub fn of(service: &Service) -> Result<Self, String> {
        let (container, port) =
            service.load_balancers().iter().find_map(|lb| Some((lb.container_name()?, lb.container_port()?))).ok_or(
                "a blue/green service routes its traffic through a load balancer, and ECS describes none here",
            )?;
        let test_hook = match tag_value(service.tags(), TEST_HOOK_TAG).map(str::trim) {
            Some(hook) if hook.is_empty() || hook.contains(char::is_whitespace) => {
                return Err(format!("{TEST_HOOK_TAG} is {hook:?}, not a Lambda function name or ARN"));
            }
            hook => hook.map(str::to_owned),
        };
        Ok(Self {
            container: container.to_owned(),
            port,
            platform_version: service.platform_version().filter(|v| !v.is_empty()).map(str::to_owned),
            test_hook,
        })
    }

    /// The AppSpec (JSON) deploying `task_definition_arn`.
    pub fn render(&self, task_definition_arn: &str) -> String {
        let mut properties = json!({
            "TaskDefinition": task_definition_arn,
            "LoadBalancerInfo": {"ContainerName": self.container, "ContainerPort": self.port},
        });
        if let Some(version) = &self.platform_version {
            properties["PlatformVersion"] = json!(version);
        }
        let mut spec = json!({
            "version": 0.0,
            "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": properties}}],
        });
        if let Some(hook) = &self.test_hook {
            spec["Hooks"] = json!([{"AfterAllowTestTraffic": hook}]);
        }
        spec.to_string()
    }
}

/// The deployment's description: who made it, and why (kept to CodeDeploy's 100 characters).
pub fn description(text: &str) -> String {
    match text.char_indices().nth(100) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::codedeploy::{AppSpecContent, EcsService, LastDeployment};
    use aws_sdk_ecs::types::{ContainerDefinition, DeploymentController, LoadBalancer, Tag};
    use serde_json::Value;

    const TD: &str = "arn:aws:ecs:eu-west-1:123456789012:task-definition/api:7";

    fn service(tags: &[(&str, &str)], lbs: Vec<LoadBalancer>, platform: Option<&str>) -> Service {
        Service::builder()
            .service_name("blue-green")
            .cluster_arn("arn:aws:ecs:eu-west-1:123456789012:cluster/shop")
            .deployment_controller(
                DeploymentController::builder().r#type(DeploymentControllerType::CodeDeploy).build().unwrap(),
            )
            .set_load_balancers(Some(lbs))
            .set_platform_version(platform.map(str::to_owned))
            .set_tags(Some(tags.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect()))
            .build()
    }

    fn lb(container: Option<&str>, port: Option<i32>) -> LoadBalancer {
        LoadBalancer::builder()
            .target_group_arn(
                "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/bg-blue/0123456789abcdef",
            )
            .set_container_name(container.map(str::to_owned))
            .set_container_port(port)
            .build()
    }

    #[test]
    fn the_appspec_takes_container_port_platform_version_and_hook_from_the_service() {
        let web = || vec![lb(Some("app"), Some(8080))];
        let base = |extra: Value| {
            let mut properties = json!({
                "TaskDefinition": TD,
                "LoadBalancerInfo": {"ContainerName": "app", "ContainerPort": 8080},
            });
            for (k, v) in extra.as_object().unwrap() {
                properties[k] = v.clone();
            }
            json!({"version": 0.0, "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": properties}}]})
        };
        let with_hook = |mut spec: Value, hook: &str| {
            spec["Hooks"] = json!([{"AfterAllowTestTraffic": hook}]);
            spec
        };
        let cases: Vec<(&str, Service, Result<Value, &str>)> = vec![
            ("the load balancer's container and port", service(&[], web(), None), Ok(base(json!({})))),
            (
                "the first entry that names a container and port",
                service(&[], vec![lb(None, None), lb(Some("proxy"), Some(443))], None),
                Ok(
                    json!({"version": 0.0, "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": {
                    "TaskDefinition": TD, "LoadBalancerInfo": {"ContainerName": "proxy", "ContainerPort": 443}}}}]}),
                ),
            ),
            (
                "a Fargate platform version",
                service(&[], web(), Some("1.4.0")),
                Ok(base(json!({"PlatformVersion": "1.4.0"}))),
            ),
            ("an empty platform version is left out", service(&[], web(), Some("")), Ok(base(json!({})))),
            (
                "the test hook as AfterAllowTestTraffic",
                service(&[(TEST_HOOK_TAG, "CodeDeployHook_canary")], web(), Some("LATEST")),
                Ok(with_hook(base(json!({"PlatformVersion": "LATEST"})), "CodeDeployHook_canary")),
            ),
            (
                "a hook by ARN",
                service(&[(TEST_HOOK_TAG, "arn:aws:lambda:eu-west-1:123456789012:function:canary:live")], web(), None),
                Ok(with_hook(base(json!({})), "arn:aws:lambda:eu-west-1:123456789012:function:canary:live")),
            ),
            (
                "a hook that is no name",
                service(&[(TEST_HOOK_TAG, "two words")], web(), None),
                Err("nightshift:test-hook is \"two words\", not a Lambda function name or ARN"),
            ),
            (
                "no load balancer",
                service(&[], vec![], None),
                Err("a blue/green service routes its traffic through a load balancer, and ECS describes none here"),
            ),
        ];
        for (case, service, expected) in cases {
            let got = AppSpec::of(&service).map(|a| serde_json::from_str::<Value>(&a.render(TD)).unwrap());
            assert_eq!(got, expected.map_err(str::to_owned), "{case}");
        }
    }

    #[test]
    fn the_appspec_names_its_task_definition_to_whoever_reads_it_back() {
        let spec = AppSpec::of(&service(&[], vec![lb(Some("app"), Some(80))], None)).unwrap().render(TD);
        assert_eq!(crate::rollout::appspec::task_definition(&spec).as_deref(), Some(TD));
    }

    #[test]
    fn the_group_is_the_tags_or_the_one_whose_ecs_services_name_the_service() {
        let cases = [
            ("shop/blue-green", Ok(("shop", "blue-green"))),
            ("shop", Err("nightshift:codedeploy is \"shop\", not <application>/<deployment-group>")),
            ("/g", Err("nightshift:codedeploy is \"/g\", not <application>/<deployment-group>")),
            ("a/b/c", Err("nightshift:codedeploy is \"a/b/c\", not <application>/<deployment-group>")),
        ];
        for (value, expected) in cases {
            let got = named_group(&service(&[(CODEDEPLOY_TAG, value)], vec![], None)).unwrap();
            let expected = expected
                .map(|(a, g)| GroupName { application: a.into(), deployment_group: g.into() })
                .map_err(str::to_owned);
            assert_eq!(got, expected, "{value}");
        }
        assert_eq!(named_group(&service(&[], vec![], None)), None);

        let group = |app: &str, name: &str, platform: &str, services: &[(&str, &str)]| DeploymentGroupInfo {
            application_name: Some(app.into()),
            deployment_group_name: Some(name.into()),
            compute_platform: Some(platform.into()),
            ecs_services: services
                .iter()
                .map(|(c, s)| EcsService { cluster_name: Some((*c).into()), service_name: Some((*s).into()) })
                .collect(),
            ..DeploymentGroupInfo::default()
        };
        let groups = [
            group("shop", "bg", "ECS", &[("shop", "blue-green")]),
            group("servers", "fleet", "Server", &[("shop", "api")]),
            group("shop", "second", "ECS", &[("shop", "blue-green"), ("batch", "bg")]),
        ];
        let index = index(&groups);
        let id = |c: &str, s: &str| ServiceId { cluster: c.into(), service: s.into() };
        let name = |a: &str, g: &str| GroupName { application: a.into(), deployment_group: g.into() };
        assert_eq!(index.get(&id("shop", "blue-green")), Some(&name("shop", "bg")), "the first group found");
        assert_eq!(index.get(&id("batch", "bg")), Some(&name("shop", "second")));
        assert_eq!(index.get(&id("shop", "api")), None, "only ECS groups deploy ECS services");
        assert!(deploys(&groups[0], &id("shop", "blue-green")));
        assert!(!deploys(&groups[0], &id("batch", "blue-green")));
    }

    fn group_with(last: Option<(&str, &str)>, config: Option<&str>) -> DeploymentGroupInfo {
        let spec = AppSpec::of(&service(&[], vec![lb(Some("app"), Some(80))], None)).unwrap().render(TD);
        DeploymentGroupInfo {
            application_name: Some("shop".into()),
            deployment_group_name: Some("bg".into()),
            deployment_config_name: config.map(str::to_owned),
            last_attempted_deployment: last.map(|(id, status)| LastDeployment {
                deployment_id: Some(id.into()),
                status: Some(status.into()),
                end_time: None,
            }),
            target_revision: Some(Revision { app_spec_content: Some(AppSpecContent { content: Some(spec) }) }),
            ..DeploymentGroupInfo::default()
        }
    }

    #[test]
    fn a_group_takes_a_deployment_only_when_its_last_one_ended_and_a_replay_changes_nothing() {
        let busy = |status: &str| {
            Readiness::Busy(format!(
                "CodeDeploy deployment d-1 of shop/bg is {status}: the group takes no second deployment until it \
                 ends (the push is retried)"
            ))
        };
        let already = |verb: &str, status: &str| {
            Readiness::Already(format!("CodeDeploy deployment d-1 of shop/bg {verb} this revision ({status})"))
        };
        let cases = [
            (None, false, Readiness::Free),
            (Some(("d-1", "Succeeded")), false, Readiness::Free),
            (Some(("d-1", "Failed")), false, Readiness::Free),
            (Some(("d-1", "Stopped")), false, Readiness::Free),
            (Some(("d-1", "InProgress")), false, busy("InProgress")),
            (Some(("d-1", "Ready")), false, busy("Ready")),
            (Some(("d-1", "Baking")), false, busy("Baking")),
            (Some(("d-1", "Created")), false, busy("Created")),
            (Some(("d-1", "Queued")), false, busy("Queued")),
            (Some(("d-1", "InProgress")), true, already("already deploys", "InProgress")),
            (Some(("d-1", "Failed")), true, already("already deployed", "Failed")),
            (Some(("d-1", "Succeeded")), true, already("already deployed", "Succeeded")),
        ];
        for (last, ours, expected) in cases {
            assert_eq!(readiness(&group_with(last, None), ours), expected, "{last:?} {ours}");
        }
    }

    #[test]
    fn the_target_revision_and_the_configuration_are_read_from_the_group() {
        let info = group_with(Some(("d-1", "Succeeded")), Some("CodeDeployDefault.ECSCanary10Percent5Minutes"));
        assert_eq!(target_task_definition(&info).as_deref(), Some(TD));
        let canary = "CodeDeployDefault.ECSCanary10Percent5Minutes";
        assert_eq!(deployment_config(&service(&[], vec![], None), &info), (None, canary.to_owned()));
        let named =
            service(&[(DEPLOYMENT_CONFIG_TAG, "CodeDeployDefault.ECSLinear10PercentEvery1Minutes")], vec![], None);
        let linear = "CodeDeployDefault.ECSLinear10PercentEvery1Minutes".to_owned();
        assert_eq!(deployment_config(&named, &info), (Some(linear.clone()), linear));
        assert_eq!(
            deployment_config(&service(&[], vec![], None), &group_with(None, None)),
            (None, DEFAULT_CONFIG.to_owned())
        );
    }

    #[test]
    fn a_revision_carries_a_change_when_each_changing_container_runs_the_pinned_image() {
        let td = |family: &str, image: &str| {
            TaskDefinition::builder()
                .family(family)
                .container_definitions(ContainerDefinition::builder().name("app").image(image).build())
                .container_definitions(ContainerDefinition::builder().name("proxy").image("nginx").build())
                .build()
        };
        let change = |to: &str| ImageChange { container: "app".into(), from: "r/shop/api:1.2.0".into(), to: to.into() };
        assert!(carries(&td("api", "r/shop/api@sha256:b"), Some("api"), &[change("r/shop/api@sha256:b")]));
        assert!(!carries(&td("api", "r/shop/api@sha256:a"), Some("api"), &[change("r/shop/api@sha256:b")]));
        assert!(!carries(&td("other", "r/shop/api@sha256:b"), Some("api"), &[change("r/shop/api@sha256:b")]));
    }
}
