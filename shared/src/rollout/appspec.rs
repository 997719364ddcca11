//! Reading a CodeDeploy AppSpec back (nightshift writes them, `bluegreen::AppSpec`; watch-rollouts reads the one a deployment ran).

use serde_json::Value;

/// The task definition an ECS AppSpec (JSON) deploys. `None` for YAML or anything else.
pub fn task_definition(content: &str) -> Option<String> {
    let spec: Value = serde_json::from_str(content).ok()?;
    let resources = spec.get("Resources")?.as_array()?;
    resources.iter().find_map(|resource| {
        let target = resource.as_object()?.values().next()?;
        (target.get("Type")?.as_str()? == "AWS::ECS::Service")
            .then(|| target.get("Properties")?.get("TaskDefinition")?.as_str().map(str::to_owned))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_ecs_target_in_json_is_read() {
        let spec = r#"{"version":0.0,"Resources":[{"TargetService":{"Type":"AWS::ECS::Service","Properties":{"TaskDefinition":"arn:td/api:8"}}}]}"#;
        assert_eq!(task_definition(spec).as_deref(), Some("arn:td/api:8"));
        assert_eq!(task_definition("version: 0.0\nResources: []"), None, "YAML is not read");
        assert_eq!(task_definition(r#"{"Resources":[{"Fn":{"Type":"AWS::Lambda::Function"}}]}"#), None);
    }
}
