//! Many accounts in one sandbox, for the tests and the demo: a registry, a
//! staging account and a prod account, each with the parts of its stack that
//! reach across accounts made from the templates themselves.

use aws_sdk_ecs::types::TaskDefinitionField;
use serde_json::{Value, json};

use crate::platform::{
    SCHEDULE_GROUP, app, complete_rollout_in, push_labelled_image, schedule_role, task_definition_in,
};
use crate::runtime::{FunctionProcess, binary};
use crate::sandbox::{REGION, Sandbox};

pub const REGISTRY: &str = "210987654321";
pub const STRANGER: &str = "444455556666";

pub fn registry_host(account: &str) -> String {
    format!("{account}.dkr.ecr.{REGION}.amazonaws.com")
}

/// The repository policy `registry.yaml` prints: the child accounts may read and pull.
pub fn pull_policy(accounts: &[&str]) -> String {
    let principals: Vec<String> = accounts.iter().map(|a| format!("arn:aws:iam::{a}:root")).collect();
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "NightshiftChildAccountsReadAndPull",
            "Effect": "Allow",
            "Principal": {"AWS": principals},
            "Action": ["ecr:DescribeImages", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
        }]
    })
    .to_string()
}

pub const STAGING: &str = "111122223333";
pub const PROD: &str = "123456789012";

/// A registry, a staging account and a prod account, each with the parts of
/// its stack that reach across accounts (made from the templates themselves):
/// the registry forwards pushes to staging; staging follows pushes from it and
/// lets prod read it; prod follows `111122223333:staging/shop` after a 30-minute soak.
pub async fn three_accounts(sandbox: &Sandbox) {
    sandbox.deploy_stack(REGISTRY, "registry.yaml", json!({"ChildAccountIds": STAGING}));
    let made = sandbox.deploy_stack(
        STAGING,
        "template.yaml",
        json!({"RegistryAccountIds": REGISTRY, "PromoteToAccountIds": PROD, "EcsTaskRoleNamePattern": "*"}),
    );
    for part in ["StateTable", "ReaderRole", "ReaderDescription", "ForwardOutcomesDownRule", "RegistryPushesBusPolicy"]
    {
        assert!(made.contains(&part.to_owned()), "{part} not made in staging: {made:?}");
    }
    sandbox.deploy_stack(
        PROD,
        "template.yaml",
        json!({"PromoteFromAccountIds": STAGING, "EcsTaskRoleNamePattern": "*"}),
    );
    let registry_ecr = aws_sdk_ecr::Client::new(&sandbox.config_in(REGISTRY, REGION));
    push_labelled_image(sandbox, &registry_ecr, REGISTRY, "shop/api", &["1.2.0"], &[]).await;
    registry_ecr
        .set_repository_policy()
        .repository_name("shop/api")
        .policy_text(pull_policy(&[STAGING, PROD]))
        .send()
        .await
        .unwrap();
    let image = format!("{}/shop/api:1.2.0", registry_host(REGISTRY));
    type Stage<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>);
    let stages: [Stage; 2] = [
        (STAGING, "staging", vec![("nightshift:deploy", "semver")]),
        (
            PROD,
            "prod",
            vec![("nightshift:promote-from", "111122223333:staging/shop"), ("nightshift:notify", "slack/releases")],
        ),
    ];
    for (account, cluster, tags) in stages {
        let ecs = aws_sdk_ecs::Client::new(&sandbox.config_in(account, REGION));
        ecs.create_cluster().cluster_name(cluster).send().await.unwrap();
        let td = task_definition_in(&ecs, account, &format!("shop-{cluster}"), vec![app(&image)]).await;
        let mut create =
            ecs.create_service().cluster(cluster).service_name("shop").task_definition(td).desired_count(2);
        for (key, value) in tags {
            create = create.tags(aws_sdk_ecs::types::Tag::builder().key(key).value(value).build());
        }
        create.send().await.unwrap();
        complete_rollout_in(sandbox, account, cluster, "shop");
    }
    sandbox.scheduler().create_schedule_group().name(SCHEDULE_GROUP).send().await.unwrap();
    sandbox.channel("slack/releases", "releases").await;
}

pub fn in_staging(sandbox: &Sandbox, function: &str) -> FunctionProcess {
    let mut env = sandbox.function_env();
    env.extend([
        ("CLUSTERS".to_owned(), "staging".to_owned()),
        ("REGISTRY_ACCOUNT_IDS".to_owned(), REGISTRY.to_owned()),
        ("PROMOTE_TO_ACCOUNT_IDS".to_owned(), PROD.to_owned()),
    ]);
    FunctionProcess::spawn_in(sandbox, STAGING, &binary(function), &env)
}

pub fn prod_watch(sandbox: &Sandbox) -> FunctionProcess {
    let mut env = sandbox.function_env();
    env.extend([
        ("CLUSTERS".to_owned(), "prod".to_owned()),
        ("SCHEDULE_GROUP".to_owned(), SCHEDULE_GROUP.to_owned()),
        ("SCHEDULE_ROLE_ARN".to_owned(), schedule_role()),
        ("NOTIFY_LEVEL".to_owned(), "all".to_owned()),
    ]);
    FunctionProcess::spawn(&binary("watch-rollouts"), &env)
}

/// The events on `account`'s default bus of this source and detail-type, oldest first.
pub fn on_bus(sandbox: &Sandbox, account: &str, source: &str, detail_type: &str) -> Vec<Value> {
    sandbox.bus(account).into_iter().filter(|e| e["source"] == source && e["detail-type"] == detail_type).collect()
}

pub async fn image_in(sandbox: &Sandbox, account: &str, cluster: &str) -> (String, Vec<aws_sdk_ecs::types::Tag>) {
    let ecs = aws_sdk_ecs::Client::new(&sandbox.config_in(account, REGION));
    let service = ecs.describe_services().cluster(cluster).services("shop").send().await.unwrap();
    let td = service.services()[0].task_definition().unwrap().to_owned();
    let out =
        ecs.describe_task_definition().task_definition(td).include(TaskDefinitionField::Tags).send().await.unwrap();
    (out.task_definition().unwrap().container_definitions()[0].image().unwrap().to_owned(), out.tags().to_vec())
}

/// Staging's desired count and its scalable target's (min, max), as AWS has them now.
pub async fn staging_desired_and_capacity(sandbox: &Sandbox) -> (i32, Option<(i32, i32)>) {
    let config = sandbox.config_in(STAGING, REGION);
    let ecs = aws_sdk_ecs::Client::new(&config);
    let service = ecs.describe_services().cluster("staging").services("shop").send().await.unwrap();
    let scaling = aws_sdk_applicationautoscaling::Client::new(&config);
    let targets = scaling
        .describe_scalable_targets()
        .service_namespace(aws_sdk_applicationautoscaling::types::ServiceNamespace::Ecs)
        .resource_ids("service/staging/shop")
        .send()
        .await
        .unwrap();
    let capacity = targets.scalable_targets().first().map(|t| (t.min_capacity(), t.max_capacity()));
    (service.services()[0].desired_count(), capacity)
}
