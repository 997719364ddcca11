//! Many accounts around one registry, against the sandbox: the built binaries
//! through the Runtime API. The child account is the sandbox's default one
//! (123456789012), where the functions run; the registry (210987654321) and
//! any other account are reached as AWS reaches them, through assumed roles.

use aws_sdk_ecs::types::TaskDefinitionField;
use nightshift_tests::event;
use nightshift_tests::platform::{push_labelled_image, task_definition};
use nightshift_tests::runtime::{FunctionProcess, Outcome, binary};
use nightshift_tests::sandbox::{REGION, Sandbox};
use serde_json::{Value, json};

const REGISTRY: &str = "210987654321";
const STRANGER: &str = "444455556666";

fn registry_host(account: &str) -> String {
    format!("{account}.dkr.ecr.{REGION}.amazonaws.com")
}

/// The repository policy `registry.yaml` prints: the child accounts may read and pull.
fn pull_policy(accounts: &[&str]) -> String {
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

/// The registry holds shop/api 1.2.0 and a merge's 1.3.0 (tags pr-42 and
/// sha-…, OCI labels); the child runs 1.2.0 from it in `shop/api`, tagged to
/// follow pushes and to tell a channel. Returns the digest of 1.3.0.
async fn seed(sandbox: &Sandbox, policy_for: Option<&[&str]>) -> String {
    let registry_ecr = aws_sdk_ecr::Client::new(&sandbox.config_in(REGISTRY, REGION));
    push_labelled_image(sandbox, &registry_ecr, REGISTRY, "shop/api", &["1.2.0"], &[]).await;
    let digest = push_labelled_image(
        sandbox,
        &registry_ecr,
        REGISTRY,
        "shop/api",
        &["1.3.0", "pr-42", "sha-9f8e7d6c5b4a"],
        &[
            ("org.opencontainers.image.revision", "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432"),
            ("org.opencontainers.image.source", "https://github.com/acme/shop"),
        ],
    )
    .await;
    if let Some(accounts) = policy_for {
        registry_ecr
            .set_repository_policy()
            .repository_name("shop/api")
            .policy_text(pull_policy(accounts))
            .send()
            .await
            .unwrap();
    }
    let ecs = sandbox.ecs();
    ecs.create_cluster().cluster_name("shop").send().await.unwrap();
    let td = task_definition(&ecs, "api", &format!("{}/shop/api:1.2.0", registry_host(REGISTRY))).await;
    ecs.create_service()
        .cluster("shop")
        .service_name("api")
        .task_definition(td)
        .desired_count(1)
        .tags(aws_sdk_ecs::types::Tag::builder().key("nightshift:deploy").value("semver").build())
        .tags(aws_sdk_ecs::types::Tag::builder().key("nightshift:notify").value("slack/shop").build())
        .send()
        .await
        .unwrap();
    sandbox.channel("slack/shop", "shop").await;
    digest
}

fn registry_push(digest: &str) -> Value {
    let mut push = event("deploy-on-push.ecr-push-from-registry.json");
    push["detail"]["image-digest"] = json!(digest);
    push
}

fn deploy_on_push(sandbox: &Sandbox, registries: &str) -> FunctionProcess {
    let mut env = sandbox.function_env();
    env.extend([
        ("CLUSTERS".to_owned(), "shop".to_owned()),
        ("REGISTRY_ACCOUNT_IDS".to_owned(), registries.to_owned()),
        ("NOTIFY_LEVEL".to_owned(), "all".to_owned()),
    ]);
    FunctionProcess::spawn(&binary("deploy-on-push"), &env)
}

async fn running(sandbox: &Sandbox) -> String {
    let found = sandbox.ecs().describe_services().cluster("shop").services("api").send().await.unwrap();
    found.services()[0].task_definition().unwrap().to_owned()
}

#[tokio::test]
async fn a_push_in_the_registry_account_deploys_in_the_child_by_digest_and_names_its_merge() {
    // Given a registry whose repository policy lets the child read and pull, and a child listing it
    let sandbox = Sandbox::start();
    let digest = seed(&sandbox, Some(&["123456789012"])).await;
    let mut function = deploy_on_push(&sandbox, REGISTRY);

    // When the registry's push of 1.3.0 arrives (forwarded to the child's bus)
    let report = function.invoke(&registry_push(&digest)).response();

    // Then the child's service runs the registry's image, by digest
    assert_eq!(report["deployed"].as_array().map(Vec::len), Some(1), "{report:#}");
    let image = report["deployed"][0]["images"][0]["to"].as_str().unwrap();
    assert_eq!(image, format!("{}/shop/api@{digest}", registry_host(REGISTRY)));
    let new = running(&sandbox).await;
    assert!(new.ends_with("task-definition/api:2"), "{new}");
    // And the new revision names the merge: pull request, commit (the label's, whole), source
    let described = sandbox
        .ecs()
        .describe_task_definition()
        .task_definition(&new)
        .include(TaskDefinitionField::Tags)
        .send()
        .await
        .unwrap();
    let tag = |key: &str| described.tags().iter().find(|t| t.key() == Some(key)).and_then(|t| t.value()).map(str::to_owned);
    assert_eq!(tag("nightshift:pr").as_deref(), Some("42"));
    assert_eq!(tag("nightshift:commit").as_deref(), Some("9f8e7d6c5b4a39281706f5e4d3c2b1a098765432"));
    assert_eq!(tag("nightshift:source").as_deref(), Some("https://github.com/acme/shop"));
    assert_eq!(report["identity"]["pr"], "42", "{report:#}");
    // And the notification says which merge it is
    let told = sandbox.webhooks("shop");
    assert_eq!(told.len(), 1, "{told:#?}");
    let text = told[0].to_string();
    assert!(text.contains("PR #42, commit 9f8e7d6c5b4a"), "{text}");
    assert!(text.contains("https://github.com/acme/shop"), "{text}");

    // And the same push again changes nothing
    let again = function.invoke(&registry_push(&digest)).response();
    assert_eq!(again["deployed"], json!([]), "{again:#}");
    assert_eq!(running(&sandbox).await, new);
}

#[tokio::test]
async fn a_push_from_an_account_not_listed_changes_nothing_and_says_whose_it_was() {
    // Given a child that lists no registry, and one that lists another account
    let sandbox = Sandbox::start();
    let digest = seed(&sandbox, Some(&["123456789012"])).await;
    let before = running(&sandbox).await;
    for listed in ["", STRANGER] {
        let mut function = deploy_on_push(&sandbox, listed);

        // When the registry's push arrives
        let report = function.invoke(&registry_push(&digest)).response();

        // Then it is ignored, naming the account, and nothing moved
        let why = report["ignored"].as_str().unwrap_or_default();
        assert!(why.contains("the push came from account 210987654321"), "{report:#}");
        assert!(why.contains("nor listed in REGISTRY_ACCOUNT_IDS"), "{why}");
        assert_eq!(running(&sandbox).await, before);
    }
    assert!(sandbox.webhooks("shop").is_empty());
}

#[tokio::test]
async fn a_registry_whose_policy_does_not_let_the_child_read_fails_the_push_and_changes_nothing() {
    // Given a registry whose repository has no policy for the child (ECR refuses another account)
    let sandbox = Sandbox::start();
    let digest = seed(&sandbox, None).await;
    let before = running(&sandbox).await;
    let mut function = deploy_on_push(&sandbox, REGISTRY);

    // When its push arrives
    let outcome = function.invoke(&registry_push(&digest));

    // Then the push fails (to be retried once the policy is there), saying ECR refused, and nothing moved
    let Outcome::Error { error_type: kind, error_message: message } = outcome else { panic!("{outcome:?}") };
    assert_eq!(kind, "DeployFailed");
    assert!(message.contains("AccessDeniedException") || message.contains("no resource-based policy"), "{message}");
    assert_eq!(running(&sandbox).await, before);
}
