//! Realistic platforms to seed the sandbox with, shared by the tests and the demo.

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    ContainerDefinition, DeploymentController, DeploymentControllerType, KeyValuePair, LoadBalancer, NetworkMode,
    PortMapping, Tag, Volume,
};

use sha2::Digest;

use crate::event;
use crate::sandbox::{ACCOUNT, REGION};

pub const CLUSTER: &str = "shop";

pub fn registry() -> String {
    format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com")
}

/// The digest of the push in `events/deploy-on-push.ecr-push.json` (`shop/api:1.3.0`).
pub fn pushed_digest() -> String {
    event("deploy-on-push.ecr-push.json")["detail"]["image-digest"].as_str().unwrap().to_owned()
}

/// A Docker image manifest whose one layer is named after `content`: the same
/// content gives the same image, other content another one.
pub fn manifest(content: &str) -> String {
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let layer = hex(&sha2::Sha256::digest(content.as_bytes()));
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":1469,"digest":"sha256:{layer}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":2811478,"digest":"sha256:{layer}"}}]}}"#
    )
}

/// ECR's digest of a manifest: SHA-256 of its bytes.
pub fn digest_of(manifest: &str) -> String {
    let digest = sha2::Sha256::digest(manifest.as_bytes());
    format!("sha256:{}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Pushes an image (named by its content) to ECR under `tag`, creating the
/// repository when needed; returns its digest.
pub async fn push_image(ecr: &aws_sdk_ecr::Client, repository: &str, tag: &str, content: &str) -> String {
    let exists = ecr.describe_repositories().repository_names(repository).send().await.is_ok();
    if !exists {
        ecr.create_repository().repository_name(repository).send().await.unwrap();
    }
    let out = ecr
        .put_image()
        .repository_name(repository)
        .image_tag(tag)
        .image_manifest(manifest(content))
        .send()
        .await
        .unwrap_or_else(|e| panic!("push {repository}:{tag}: {e:?}"));
    out.image().and_then(|i| i.image_id()).and_then(|i| i.image_digest()).unwrap().to_owned()
}

/// Pushes an image to `account`'s registry whose config carries `labels`,
/// under every tag of `tags` (one image, several tags, as a CI push gives it);
/// returns its digest. The repository is created when needed.
pub async fn push_labelled_image(
    sandbox: &crate::sandbox::Sandbox,
    ecr: &aws_sdk_ecr::Client,
    account: &str,
    repository: &str,
    tags: &[&str],
    labels: &[(&str, &str)],
) -> String {
    if ecr.describe_repositories().repository_names(repository).send().await.is_err() {
        ecr.create_repository().repository_name(repository).send().await.unwrap();
    }
    let labels: serde_json::Map<String, serde_json::Value> =
        labels.iter().map(|(k, v)| ((*k).to_owned(), serde_json::json!(v))).collect();
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "config": {"Labels": labels}}).to_string();
    let config_digest = sandbox.put_blob(account, repository, &config);
    let layer = digest_of(&format!("{repository} {}", tags.join(" ")));
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":{},"digest":"{config_digest}"}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":2811478,"digest":"{layer}"}}]}}"#,
        config.len()
    );
    for tag in tags {
        ecr.put_image()
            .repository_name(repository)
            .image_tag(*tag)
            .image_manifest(&manifest)
            .image_manifest_media_type("application/vnd.oci.image.manifest.v1+json")
            .send()
            .await
            .unwrap_or_else(|e| panic!("push {repository}:{tag}: {e:?}"));
    }
    digest_of(&manifest)
}

/// The shop's registry: `shop/api` 1.2.0, latest, RC_1.2.0 and nightly-41,
/// `shop/api-v2` 1.2.0, then `shop/api` 1.3.0, the push of `events/deploy-on-push.ecr-push.json`.
pub async fn seed_registry(ecr: &aws_sdk_ecr::Client) {
    push_image(ecr, "shop/api", "1.2.0", "shop/api 1.2.0").await;
    push_image(ecr, "shop/api", "latest", "shop/api latest 1").await;
    push_image(ecr, "shop/api-v2", "1.2.0", "shop/api-v2 1.2.0").await;
    push_image(ecr, "shop/api", "RC_1.2.0", "shop/api RC_1.2.0").await;
    push_image(ecr, "shop/api", "nightly-41", "shop/api nightly-41").await;
    let digest = push_image(ecr, "shop/api", "1.3.0", "shop/api 1.3.0").await;
    assert_eq!(digest, pushed_digest(), "events/deploy-on-push.ecr-push.json holds the digest of shop/api 1.3.0");
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

/// The shop's application container: `app`, running `image`, port 8080.
pub fn app(image: &str) -> ContainerDefinition {
    ContainerDefinition::builder()
        .name("app")
        .image(image)
        .memory(512)
        .cpu(256)
        .essential(true)
        .port_mappings(PortMapping::builder().container_port(8080).build())
        .environment(KeyValuePair::builder().name("DAGSTER_HOME").value("/opt/dagster").build())
        .build()
}

/// `app` whose own policy is the docker label `nightshift.deploy`.
pub fn labelled_app(image: &str, policy: &str) -> ContainerDefinition {
    let mut app = app(image);
    app.docker_labels = Some([("nightshift.deploy".to_owned(), policy.to_owned())].into());
    app
}

fn proxy() -> ContainerDefinition {
    ContainerDefinition::builder()
        .name("proxy")
        .image("public.ecr.aws/nginx/nginx:1.25")
        .memory(128)
        .essential(false)
        .build()
}

/// Registers a task definition whose first container runs `image`; returns its ARN.
pub async fn task_definition(ecs: &Client, family: &str, image: &str) -> String {
    task_definition_of(ecs, family, vec![app(image)]).await
}

/// Registers a task definition of these containers and an nginx proxy; returns its ARN.
pub async fn task_definition_of(ecs: &Client, family: &str, containers: Vec<ContainerDefinition>) -> String {
    task_definition_in(ecs, ACCOUNT, family, containers).await
}

/// As [`task_definition_of`], in `account` (whose roles its tasks run as; `ecs` must act there).
pub async fn task_definition_in(
    ecs: &Client,
    account: &str,
    family: &str,
    mut containers: Vec<ContainerDefinition>,
) -> String {
    containers.push(proxy());
    ecs.register_task_definition()
        .family(family)
        .set_container_definitions(Some(containers))
        .network_mode(NetworkMode::Awsvpc)
        .task_role_arn(format!("arn:aws:iam::{account}:role/{family}-task"))
        .execution_role_arn(format!("arn:aws:iam::{account}:role/{family}-execution"))
        .cpu("512")
        .memory("1024")
        .volumes(Volume::builder().name("scratch").build())
        .tags(tag("team", "shop"))
        .send()
        .await
        .unwrap()
        .task_definition()
        .unwrap()
        .task_definition_arn()
        .unwrap()
        .to_owned()
}

async fn service(
    ecs: &Client,
    name: &str,
    td: &str,
    tags: &[(&str, &str)],
    controller: Option<DeploymentControllerType>,
) {
    let blue_green = controller == Some(DeploymentControllerType::CodeDeploy);
    // Settings of the team's own, and the circuit breaker off: a deploy must turn it on and keep the rest.
    let deployment = aws_sdk_ecs::types::DeploymentConfiguration::builder()
        .maximum_percent(150)
        .minimum_healthy_percent(50)
        .deployment_circuit_breaker(
            aws_sdk_ecs::types::DeploymentCircuitBreaker::builder().enable(false).rollback(false).build(),
        )
        .build();
    let mut create = ecs
        .create_service()
        .cluster(CLUSTER)
        .service_name(name)
        .task_definition(td)
        .desired_count(1)
        .deployment_configuration(deployment)
        .set_tags(Some(tags.iter().map(|(k, v)| tag(k, v)).collect()));
    if let Some(c) = controller {
        create = create.deployment_controller(DeploymentController::builder().r#type(c).build().unwrap());
    }
    if blue_green {
        // Its production target group; CodeDeploy shifts traffic to the other of the pair.
        create = create.load_balancers(
            LoadBalancer::builder()
                .target_group_arn(format!(
                    "arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/{name}-blue/0123456789abcdef"
                ))
                .container_name("app")
                .container_port(8080)
                .build(),
        );
    }
    create.send().await.unwrap();
}

/// The CodeDeploy application of the shop's blue/green service.
pub const CODEDEPLOY_APPLICATION: &str = "shop";
/// Its deployment group (named after the service) and the group's deployment configuration.
pub const CODEDEPLOY_GROUP: &str = "blue-green";
pub const CANARY: &str = "CodeDeployDefault.ECSCanary10Percent5Minutes";

/// A service as ECS describes it now, with its tags.
pub async fn described(ecs: &Client, cluster: &str, name: &str) -> aws_sdk_ecs::types::Service {
    let out = ecs
        .describe_services()
        .cluster(cluster)
        .services(name)
        .include(aws_sdk_ecs::types::ServiceField::Tags)
        .send()
        .await
        .unwrap_or_else(|e| panic!("describe {cluster}/{name}: {e:?}"));
    out.services().first().cloned().unwrap_or_else(|| panic!("ECS has no service {cluster}/{name}"))
}

/// The tag that lets nightshift deploy through a CodeDeploy application or deployment group.
pub fn opted_in() -> aws_sdk_codedeploy::types::Tag {
    aws_sdk_codedeploy::types::Tag::builder().key("nightshift:deploys").value("ecs").build()
}

/// The CodeDeploy side of the shop's blue/green service: an ECS application
/// whose one group deploys `shop/blue-green` by canary, and an EC2/on-premises
/// application beside it (which nightshift must pass over).
pub async fn seed_codedeploy(codedeploy: &aws_sdk_codedeploy::Client) {
    use aws_sdk_codedeploy::types::{
        BlueGreenDeploymentConfiguration, BlueInstanceTerminationOption, ComputePlatform, DeploymentOption,
        DeploymentReadyOption, DeploymentStyle, DeploymentType, EcsService, InstanceAction,
    };
    codedeploy
        .create_application()
        .application_name("servers")
        .compute_platform(ComputePlatform::Server)
        .send()
        .await
        .unwrap();
    codedeploy
        .create_application()
        .application_name(CODEDEPLOY_APPLICATION)
        .compute_platform(ComputePlatform::Ecs)
        .tags(opted_in())
        .send()
        .await
        .unwrap();
    codedeploy
        .create_deployment_group()
        .application_name(CODEDEPLOY_APPLICATION)
        .deployment_group_name(CODEDEPLOY_GROUP)
        .tags(opted_in())
        .service_role_arn(format!("arn:aws:iam::{ACCOUNT}:role/codedeploy-ecs"))
        .deployment_config_name(CANARY)
        .deployment_style(
            DeploymentStyle::builder()
                .deployment_type(DeploymentType::BlueGreen)
                .deployment_option(DeploymentOption::WithTrafficControl)
                .build(),
        )
        .blue_green_deployment_configuration(
            BlueGreenDeploymentConfiguration::builder()
                .deployment_ready_option(
                    DeploymentReadyOption::builder()
                        .action_on_timeout(aws_sdk_codedeploy::types::DeploymentReadyAction::ContinueDeployment)
                        .build(),
                )
                .terminate_blue_instances_on_deployment_success(
                    BlueInstanceTerminationOption::builder()
                        .action(InstanceAction::Terminate)
                        .termination_wait_time_in_minutes(5)
                        .build(),
                )
                .build(),
        )
        .ecs_services(EcsService::builder().cluster_name(CLUSTER).service_name("blue-green").build())
        .send()
        .await
        .unwrap();
}

/// Every service of the shop, in the order [`seed_shop`] creates them.
pub const SHOP: [&str; 10] =
    ["api", "worker", "legacy", "api-v2", "preview", "blue-green", "odd", "rc", "nightly", "pair"];

/// The shop: its registry (see [`seed_registry`]), and services following
/// `shop/api` with different policies (service tags and docker labels), one
/// of them blue/green with its CodeDeploy group (see [`seed_codedeploy`]),
/// and some that must not move. Returns each service with its task definition.
pub async fn seed_shop(
    ecs: &Client,
    ecr: &aws_sdk_ecr::Client,
    codedeploy: &aws_sdk_codedeploy::Client,
) -> Vec<(String, String)> {
    seed_registry(ecr).await;
    seed_codedeploy(codedeploy).await;
    ecs.create_cluster().cluster_name(CLUSTER).send().await.unwrap();
    let api = format!("{}/shop/api", registry());
    let td_api = task_definition(ecs, "api", &format!("{api}:1.2.0")).await;
    let td_worker = task_definition(ecs, "worker", &format!("{api}:1.2.0")).await;
    let td_legacy = task_definition(ecs, "legacy", &format!("{api}:1.2.0")).await;
    let td_v2 = task_definition(ecs, "api-v2", &format!("{}/shop/api-v2:1.2.0", registry())).await;
    let td_latest = task_definition(ecs, "preview", &format!("{api}:latest")).await;
    let td_rc = task_definition_of(ecs, "rc", vec![labelled_app(&format!("{api}:RC_1.2.0"), "glob:RC_*")]).await;
    let td_nightly =
        task_definition_of(ecs, "nightly", vec![labelled_app(&format!("{api}:nightly-41"), "regex:nightly-[0-9]+")])
            .await;
    let mut worker = app(&format!("{api}:1.2.0"));
    worker.name = Some("worker".into());
    let td_pair = task_definition_of(ecs, "pair", vec![app(&format!("{api}:1.2.0")), worker]).await;
    let services = [
        ("api", td_api.clone(), vec![("nightshift:deploy", "semver"), ("nightshift:containers", "app")], None),
        ("worker", td_worker, vec![("nightshift:deploy", "patch")], None),
        ("legacy", td_legacy, vec![], None),
        ("api-v2", td_v2, vec![("nightshift:deploy", "semver")], None),
        ("preview", td_latest, vec![("nightshift:deploy", "track")], None),
        (
            "blue-green",
            td_api.clone(),
            vec![("nightshift:deploy", "semver")],
            Some(DeploymentControllerType::CodeDeploy),
        ),
        ("odd", td_api, vec![("nightshift:deploy", "whenever")], None),
        ("rc", td_rc, vec![("nightshift:deploy", "label")], None),
        // The container's label overrides the service's policy.
        ("nightly", td_nightly, vec![("nightshift:deploy", "semver")], None),
        ("pair", td_pair, vec![("nightshift:deploy", "semver"), ("nightshift:containers", "app worker")], None),
    ];
    let mut running = Vec::new();
    for (name, td, tags, controller) in services {
        service(ecs, name, &td, &tags, controller).await;
        running.push((name.to_owned(), td));
    }
    running
}

/// The stages of the shop's image, each a cluster with a service `shop`.
pub const STAGES: [&str; 3] = ["staging", "qa", "prod"];
/// The group promotions are scheduled in: the template's ScheduleGroup, as the IAM proof names it.
pub const SCHEDULE_GROUP: &str = "ScheduleGroup";
/// The role EventBridge Scheduler runs watch-rollouts with, as the template names it.
pub fn schedule_role() -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/PromotionSchedulerRole")
}

/// Staging, QA and prod of one repository (`shop/api`, all on 1.2.0, by tag):
/// staging follows pushes (semver); qa is promoted from staging (soak 30
/// minutes, the default), prod from qa (soak 60), prod telling `slack/releases`.
/// Also the schedule group of promotions. With `blue_green_prod`, prod is a
/// blue/green service that the CodeDeploy group `shop-prod/prod` deploys.
pub async fn seed_stages(
    ecs: &Client,
    ecr: &aws_sdk_ecr::Client,
    scheduler: &aws_sdk_scheduler::Client,
    codedeploy: &aws_sdk_codedeploy::Client,
    blue_green_prod: bool,
) {
    seed_registry(ecr).await;
    scheduler.create_schedule_group().name(SCHEDULE_GROUP).send().await.unwrap();
    let image = format!("{}/shop/api:1.2.0", registry());
    let tags: [&[(&str, &str)]; 3] = [
        &[("nightshift:deploy", "semver")],
        &[("nightshift:promote-from", "staging/shop")],
        &[
            ("nightshift:promote-from", "qa/shop"),
            ("nightshift:soak-minutes", "60"),
            ("nightshift:notify", "slack/releases"),
        ],
    ];
    for (stage, tags) in STAGES.into_iter().zip(tags) {
        ecs.create_cluster().cluster_name(stage).send().await.unwrap();
        let td = task_definition(ecs, &format!("shop-{stage}"), &image).await;
        let mut create = ecs
            .create_service()
            .cluster(stage)
            .service_name("shop")
            .task_definition(td)
            .desired_count(1)
            .set_tags(Some(tags.iter().map(|(k, v)| tag(k, v)).collect()));
        if blue_green_prod && stage == "prod" {
            let controller = DeploymentController::builder().r#type(DeploymentControllerType::CodeDeploy).build();
            create = create.deployment_controller(controller.unwrap()).load_balancers(
                LoadBalancer::builder()
                    .target_group_arn(format!(
                        "arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/prod-blue/0123456789abcdef"
                    ))
                    .container_name("app")
                    .container_port(8080)
                    .build(),
            );
        }
        create.send().await.unwrap();
    }
    if blue_green_prod {
        use aws_sdk_codedeploy::types::{ComputePlatform, DeploymentStyle, DeploymentType, EcsService};
        let application = codedeploy.create_application().application_name("shop-prod").tags(opted_in());
        application.compute_platform(ComputePlatform::Ecs).send().await.unwrap();
        codedeploy
            .create_deployment_group()
            .application_name("shop-prod")
            .deployment_group_name("prod")
            .tags(opted_in())
            .service_role_arn(format!("arn:aws:iam::{ACCOUNT}:role/codedeploy-ecs"))
            .deployment_config_name(CANARY)
            .deployment_style(DeploymentStyle::builder().deployment_type(DeploymentType::BlueGreen).build())
            .ecs_services(EcsService::builder().cluster_name("prod").service_name("shop").build())
            .send()
            .await
            .unwrap();
    }
}

/// Ends `<stage>/shop`'s rollout in the sandbox as ECS would (`COMPLETED`,
/// or `FAILED` and then the breaker's rollback); the events ECS sends for it,
/// as `events/` shapes them: the end, then the rollback's start when there is one.
pub fn end_stage_rollout(sandbox: &crate::sandbox::Sandbox, stage: &str, outcome: &str) -> Vec<serde_json::Value> {
    let deployments = sandbox.end_rollout(stage, "shop", outcome);
    let deployments = deployments.as_array().cloned().unwrap_or_else(|| panic!("end the rollout: {deployments}"));
    let ended = deployments.iter().find(|d| d["rolloutState"] == outcome).unwrap_or_else(|| panic!("{deployments:?}"));
    let file = if outcome == "COMPLETED" {
        "watch-rollouts.ecs-deployment-completed.json"
    } else {
        "watch-rollouts.ecs-deployment-failed.json"
    };
    let mut events = vec![rollout_event(file, stage, ended)];
    let rolling_back =
        |d: &&serde_json::Value| d["rolloutStateReason"].as_str().is_some_and(|r| r.contains("rolling back"));
    if outcome == "FAILED"
        && let Some(rollback) = deployments.iter().find(rolling_back)
    {
        events.push(rollout_event("watch-rollouts.ecs-deployment-rolling-back.json", stage, rollback));
    }
    events
}

/// Completes the rollout under way of `<cluster>/<service>` in `account`; ECS's event of its completion.
pub fn complete_rollout_in(
    sandbox: &crate::sandbox::Sandbox,
    account: &str,
    cluster: &str,
    service: &str,
) -> serde_json::Value {
    let deployments = sandbox.end_rollout_in(account, cluster, service, "COMPLETED");
    let deployments = deployments.as_array().cloned().unwrap_or_else(|| panic!("end the rollout: {deployments}"));
    let ended =
        deployments.iter().find(|d| d["rolloutState"] == "COMPLETED").unwrap_or_else(|| panic!("{deployments:?}"));
    let mut event = rollout_event_of("watch-rollouts.ecs-deployment-completed.json", account, cluster, service, ended);
    event["account"] = serde_json::json!(account);
    event
}

/// The event of `file` for this deployment of `<stage>/shop`, as the sandbox answered it.
fn rollout_event(file: &str, stage: &str, deployment: &serde_json::Value) -> serde_json::Value {
    rollout_event_of(file, ACCOUNT, stage, "shop", deployment)
}

fn rollout_event_of(
    file: &str,
    account: &str,
    cluster: &str,
    service: &str,
    deployment: &serde_json::Value,
) -> serde_json::Value {
    let mut event = event(file);
    event["resources"] = serde_json::json!([format!("arn:aws:ecs:{REGION}:{account}:service/{cluster}/{service}")]);
    event["detail"]["deploymentId"] = deployment["id"].clone();
    event["detail"]["reason"] = deployment["rolloutStateReason"].clone();
    // moto writes its times as "2026-11-27 16:49:36.123456".
    let updated = deployment["updatedAt"].as_str().unwrap_or_default();
    let at = chrono::NaiveDateTime::parse_from_str(updated.get(..19).unwrap_or_default(), "%Y-%m-%d %H:%M:%S")
        .unwrap_or_else(|e| panic!("updatedAt {updated:?}: {e}"))
        .and_utc();
    let at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    (event["time"], event["detail"]["updatedAt"]) = (serde_json::json!(at), serde_json::json!(at));
    event
}

/// What `<stage>/shop` runs: its revision's `app` image.
pub async fn stage_image(ecs: &Client, stage: &str) -> String {
    let service = ecs.describe_services().cluster(stage).services("shop").send().await.unwrap();
    let td = service.services()[0].task_definition().unwrap().to_owned();
    let out = ecs.describe_task_definition().task_definition(td).send().await.unwrap();
    out.task_definition().unwrap().container_definitions()[0].image().unwrap().to_owned()
}

/// The Dagster cluster of the scale group.
pub const DAGSTER: &str = "dagster";

/// Dagster on ECS: a code-location server (wake order 0, with a scalable
/// target 1..4), the daemon and the webserver (wake order 1), all awake; and
/// Metabase in the same cluster, outside the group.
pub async fn seed_dagster(ecs: &Client, scaling: &aws_sdk_applicationautoscaling::Client) {
    ecs.create_cluster().cluster_name(DAGSTER).send().await.unwrap();
    let image = format!("{}/dagster", registry());
    let members: [(&str, &[(&str, &str)]); 4] = [
        ("code-location", &[("nightshift:scale-group", "dagster"), ("nightshift:wake-order", "0")]),
        ("daemon", &[("nightshift:scale-group", "dagster"), ("nightshift:wake-order", "1")]),
        (
            "webserver",
            &[("nightshift:scale-group", "dagster"), ("nightshift:wake-order", "1"), ("nightshift:awake-count", "1")],
        ),
        ("metabase", &[]),
    ];
    for (name, tags) in members {
        let td = task_definition(ecs, &format!("dagster-{name}"), &format!("{image}:1.9.0")).await;
        ecs.create_service()
            .cluster(DAGSTER)
            .service_name(name)
            .task_definition(td)
            .desired_count(1)
            .set_tags(Some(tags.iter().map(|(k, v)| tag(k, v)).collect()))
            .send()
            .await
            .unwrap();
    }
    scaling
        .register_scalable_target()
        .service_namespace(aws_sdk_applicationautoscaling::types::ServiceNamespace::Ecs)
        .scalable_dimension(aws_sdk_applicationautoscaling::types::ScalableDimension::EcsServiceDesiredCount)
        .resource_id(format!("service/{DAGSTER}/code-location"))
        .min_capacity(1)
        .max_capacity(4)
        .send()
        .await
        .unwrap();
}

/// Starts a Dagster run as EcsRunLauncher does: a Fargate task tagged
/// `dagster/run_id`. Returns the task's ARN.
pub async fn start_run(sandbox: &crate::sandbox::Sandbox, ecs: &Client, run_id: &str) -> String {
    use aws_sdk_ecs::types::{AwsVpcConfiguration, Compatibility, LaunchType, NetworkConfiguration};
    sandbox.pin_task_states();
    let (subnet, security_group) = sandbox.default_network();
    let run =
        ContainerDefinition::builder().name("run").image(format!("{}/dagster:1.9.0", registry())).memory(512).build();
    ecs.register_task_definition()
        .family("dagster-run")
        .container_definitions(run)
        .requires_compatibilities(Compatibility::Fargate)
        .network_mode(NetworkMode::Awsvpc)
        .cpu("256")
        .memory("512")
        .send()
        .await
        .unwrap();
    let network = NetworkConfiguration::builder()
        .awsvpc_configuration(
            AwsVpcConfiguration::builder().subnets(subnet).security_groups(security_group).build().unwrap(),
        )
        .build();
    let out = ecs
        .run_task()
        .cluster(DAGSTER)
        .task_definition("dagster-run")
        .launch_type(LaunchType::Fargate)
        .network_configuration(network)
        .tags(tag("dagster/run_id", run_id))
        .send()
        .await
        .unwrap();
    out.tasks()[0].task_arn().unwrap().to_owned()
}

/// Where the dataspace's manifest is kept in the sandbox.
pub const MANIFEST_BUCKET: &str = "mvd-config";
pub const MANIFEST_KEY: &str = "manifests/mvd.json";

/// The shipped manifest, `dataspace/mvd.json`.
pub fn mvd_manifest() -> serde_json::Value {
    let path = crate::sandbox::workspace_root().join("dataspace/mvd.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("dataspace/mvd.json")).expect("the manifest is JSON")
}

/// The public dataspace as the manifest declares it: per participant a
/// cluster with its services (at their declared counts, on revision 1 of
/// their task definitions), a DID bucket and a data bucket, all tagged
/// `nightshift:dataspace=mvd`; and the manifest itself in S3.
pub async fn seed_dataspace(ecs: &Client, s3: &aws_sdk_s3::Client) {
    let manifest = mvd_manifest();
    let dataspace = manifest["dataspace"].as_str().unwrap().to_owned();
    for p in manifest["participants"].as_array().unwrap() {
        let cluster = p["cluster"].as_str().unwrap();
        ecs.create_cluster().cluster_name(cluster).send().await.unwrap();
        for s in p["services"].as_array().unwrap() {
            let service = s["service"].as_str().unwrap();
            let family = format!("{cluster}-{service}");
            let image = format!("ghcr.io/eclipse-edc/mvd/{service}:0.7.0");
            task_definition(ecs, &family, &image).await;
            task_definition(ecs, &family, &image.replace("0.7.0", "0.8.0-dev")).await;
            ecs.create_service()
                .cluster(cluster)
                .service_name(service)
                .task_definition(format!("{family}:1"))
                .desired_count(i32::try_from(s["desired_count"].as_i64().unwrap()).unwrap())
                .tags(tag("nightshift:dataspace", &dataspace))
                .send()
                .await
                .unwrap();
        }
        let buckets = std::iter::once(p["did"]["bucket"].as_str().unwrap())
            .chain(p["purge"].as_array().unwrap().iter().map(|x| x["bucket"].as_str().unwrap()));
        for bucket in buckets {
            s3.create_bucket().bucket(bucket).send().await.unwrap();
            let tagging = aws_sdk_s3::types::Tagging::builder()
                .tag_set(
                    aws_sdk_s3::types::Tag::builder().key("nightshift:dataspace").value(&dataspace).build().unwrap(),
                )
                .build()
                .unwrap();
            s3.put_bucket_tagging().bucket(bucket).tagging(tagging).send().await.unwrap();
        }
    }
    s3.create_bucket().bucket(MANIFEST_BUCKET).send().await.unwrap();
    s3.put_object()
        .bucket(MANIFEST_BUCKET)
        .key(MANIFEST_KEY)
        .body(aws_sdk_s3::primitives::ByteStream::from(serde_json::to_vec_pretty(&manifest).unwrap()))
        .send()
        .await
        .unwrap();
}

/// Puts every key with the same body, sixteen requests at a time.
pub async fn put_many(s3: &aws_sdk_s3::Client, bucket: &str, keys: Vec<String>, body: &'static [u8]) {
    let mut puts = tokio::task::JoinSet::new();
    for chunk in keys.chunks(keys.len().div_ceil(16).max(1)) {
        let (s3, bucket, chunk) = (s3.clone(), bucket.to_owned(), chunk.to_vec());
        puts.spawn(async move {
            for key in chunk {
                let put = s3
                    .put_object()
                    .bucket(&bucket)
                    .key(&key)
                    .body(aws_sdk_s3::primitives::ByteStream::from_static(body));
                put.send().await.unwrap_or_else(|e| panic!("put {key}: {e:?}"));
            }
        });
    }
    while let Some(done) = puts.join_next().await {
        done.expect("a put task");
    }
}
