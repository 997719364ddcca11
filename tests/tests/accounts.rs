//! Many accounts around one registry, against the sandbox: the built binaries
//! through the Runtime API. The child account is the sandbox's default one
//! (123456789012), where the functions run; the registry (210987654321) and
//! any other account are reached as AWS reaches them, through assumed roles.

use aws_sdk_ecs::types::TaskDefinitionField;
use nightshift_tests::accounts::{
    PROD, REGISTRY, STAGING, STRANGER, image_in, in_staging, on_bus, prod_watch, pull_policy, registry_host,
    staging_desired_and_capacity, three_accounts,
};
use nightshift_tests::event;
use nightshift_tests::platform::{
    SCHEDULE_GROUP, app, complete_rollout_in, push_labelled_image, schedule_role, task_definition, task_definition_in,
};
use nightshift_tests::runtime::{FunctionProcess, Outcome, binary};
use nightshift_tests::sandbox::{REGION, Sandbox};
use serde_json::{Value, json};

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
    let tag =
        |key: &str| described.tags().iter().find(|t| t.key() == Some(key)).and_then(|t| t.value()).map(str::to_owned);
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

/// Pushes the merge's 1.3.0 in the registry, and rolls it out to staging as
/// the forwarded push and staging's rollout make it: staging's deploy-on-push,
/// then its watch-rollouts, which announces the success. Its digest.
async fn push_and_roll_out_to_staging(sandbox: &Sandbox) -> String {
    let registry_ecr = aws_sdk_ecr::Client::new(&sandbox.config_in(REGISTRY, REGION));
    let digest = push_labelled_image(
        sandbox,
        &registry_ecr,
        REGISTRY,
        "shop/api",
        &["1.3.0", "pr-42"],
        &[("org.opencontainers.image.revision", "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432")],
    )
    .await;
    // ECR told the registry's bus; its rule forwarded the push to staging's.
    let pushes = on_bus(sandbox, STAGING, "aws.ecr", "ECR Image Action");
    let push = pushes.iter().find(|e| e["detail"]["image-tag"] == "1.3.0").expect("the push reached staging's bus");
    assert_eq!(push["account"], REGISTRY, "forwarded events keep the sender's account");
    let deployed = in_staging(sandbox, "deploy-on-push").invoke(push).response();
    assert_eq!(deployed["deployed"].as_array().map(Vec::len), Some(1), "{deployed:#}");
    let completed = complete_rollout_in(sandbox, STAGING, "staging", "shop");
    let watched = in_staging(sandbox, "watch-rollouts").invoke(&completed).response();
    assert_eq!(
        (watched["outcome"].as_str(), watched["announced"].as_bool()),
        (Some("succeeded"), Some(true)),
        "{watched:#}"
    );
    digest
}

#[tokio::test]
async fn prod_promotes_from_a_staging_account_through_its_read_only_role_and_writes_nothing_there() {
    // Given a registry, a staging account and a prod account that follows staging's shop
    let sandbox = Sandbox::start();
    three_accounts(&sandbox).await;
    let mut prod = prod_watch(&sandbox);

    // When a merge's image is pushed, and staging rolls it out
    let digest = push_and_roll_out_to_staging(&sandbox).await;
    let staging_before = image_in(&sandbox, STAGING, "staging").await;

    // Then staging's outcome reaches prod's bus, and prod schedules its own promotion after the soak
    let outcomes = on_bus(&sandbox, PROD, "nightshift", "Rollout Outcome");
    assert_eq!(outcomes.len(), 1, "{outcomes:#?}");
    let outcome = &outcomes[0];
    assert_eq!((outcome["account"].as_str(), outcome["detail"]["account"].as_str()), (Some(STAGING), Some(STAGING)));
    assert_eq!(outcome["detail"]["identity"]["pr"], "42");
    assert_eq!(outcome["detail"]["digests"][0], digest);
    let heard = prod.invoke(outcome).response();
    assert_eq!(heard["scheduled"].as_array().map(Vec::len), Some(1), "{heard:#}");
    assert_eq!(heard["upstream"], "111122223333:staging/shop");

    // When the soak has passed and the schedule runs
    let fired = sandbox.pass_time(31.0);
    assert_eq!(fired.len(), 1, "{fired:#?}");
    let input: Value = serde_json::from_str(fired[0]["target"]["Input"].as_str().unwrap()).unwrap();
    let promoted = prod.invoke(&input).response();

    // Then prod runs staging's digest, read through staging's reader role, and names the merge
    assert_eq!(promoted["promotion"]["result"], "promoted", "{promoted:#}");
    let (image, tags) = image_in(&sandbox, PROD, "prod").await;
    assert_eq!(image, format!("{}/shop/api@{digest}", registry_host(REGISTRY)));
    let tag = |key: &str| tags.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value()).map(str::to_owned);
    assert_eq!(tag("nightshift:pr").as_deref(), Some("42"));
    assert_eq!(tag("nightshift:commit").as_deref(), Some("9f8e7d6c5b4a39281706f5e4d3c2b1a098765432"));
    let told = sandbox.webhooks("releases");
    let started = told.iter().map(ToString::to_string).find(|t| t.contains("Promotion started")).expect("told");
    assert!(started.contains("PR #42, commit 9f8e7d6c5b4a"), "{started}");
    // And staging is as it was: nothing written there (its reader role allows no write; the sandbox enforces it)
    assert_eq!(image_in(&sandbox, STAGING, "staging").await, staging_before);
}

#[tokio::test]
async fn a_digest_quarantined_upstream_is_not_promoted_from_it() {
    // Given staging ran the merge's digest, and then quarantined it
    let sandbox = Sandbox::start();
    three_accounts(&sandbox).await;
    let digest = push_and_roll_out_to_staging(&sandbox).await;
    let staging_state = nightshift::state::StateTable::new(
        std::sync::Arc::new(nightshift::signed::SignedHttp::new(&sandbox.config_in(STAGING, REGION))),
        nightshift_tests::sandbox::STATE_TABLE,
    );
    let write = nightshift::state::StateWrite::Quarantine {
        service: format!("arn:aws:ecs:{REGION}:{STAGING}:service/staging/shop"),
        digest: digest.clone(),
        reason: "rolled back in deployment ecs-svc/1".into(),
    };
    staging_state.write(&write, chrono::Utc::now()).await.unwrap();
    sandbox.pass_time(31.0);

    // When prod is asked to promote by hand
    let report = prod_watch(&sandbox).invoke(&json!({"promote": "prod/shop"})).response();

    // Then it refuses, saying the digest is quarantined upstream
    assert_eq!(report["promotion"]["result"], "refused", "{report:#}");
    let why = report["promotion"]["why"].as_str().unwrap();
    assert!(why.contains("quarantined"), "{why}");
    assert_eq!(image_in(&sandbox, PROD, "prod").await.0, format!("{}/shop/api:1.2.0", registry_host(REGISTRY)));
}

#[tokio::test]
async fn only_the_listed_accounts_watch_rollouts_may_read_through_the_reader_role() {
    // Given staging lets prod read it, and an account staging does not list that follows staging anyway
    let sandbox = Sandbox::start();
    three_accounts(&sandbox).await;
    push_and_roll_out_to_staging(&sandbox).await;
    sandbox.pass_time(31.0);
    let stranger_ecs = aws_sdk_ecs::Client::new(&sandbox.config_in(STRANGER, REGION));
    stranger_ecs.create_cluster().cluster_name("prod").send().await.unwrap();
    let image = format!("{}/shop/api:1.2.0", registry_host(REGISTRY));
    let td = task_definition_in(&stranger_ecs, STRANGER, "shop-prod", vec![app(&image)]).await;
    stranger_ecs
        .create_service()
        .cluster("prod")
        .service_name("shop")
        .task_definition(td)
        .desired_count(0)
        .tags(
            aws_sdk_ecs::types::Tag::builder()
                .key("nightshift:promote-from")
                .value("111122223333:staging/shop")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut env = sandbox.function_env();
    env.push(("CLUSTERS".to_owned(), "prod".to_owned()));

    // When its watch-rollouts promotes by hand
    let outcome = FunctionProcess::spawn_in(&sandbox, STRANGER, &binary("watch-rollouts"), &env)
        .invoke(&json!({"promote": "prod/shop"}));

    // Then STS refuses it the role: the trust names only the listed accounts
    let Outcome::Error { error_type, error_message } = outcome else { panic!("{outcome:?}") };
    assert_eq!(error_type, "UpstreamUnreadable");
    assert!(error_message.contains("AccessDenied") && error_message.contains("nightshift-reader"), "{error_message}");
}

#[tokio::test]
async fn staging_sleeps_once_its_digest_passed_in_prod_and_wakes_for_the_next_push() {
    // Given staging opted in to sleep after promotion, scaling 1..4 with 2 tasks, and prod following it
    let sandbox = Sandbox::start();
    three_accounts(&sandbox).await;
    let config = sandbox.config_in(STAGING, REGION);
    let staging_ecs = aws_sdk_ecs::Client::new(&config);
    let arn = format!("arn:aws:ecs:{REGION}:{STAGING}:service/staging/shop");
    let opt_in = aws_sdk_ecs::types::Tag::builder().key("nightshift:sleep-after-promotion").value("true").build();
    staging_ecs.tag_resource().resource_arn(&arn).tags(opt_in).send().await.unwrap();
    aws_sdk_applicationautoscaling::Client::new(&config)
        .register_scalable_target()
        .service_namespace(aws_sdk_applicationautoscaling::types::ServiceNamespace::Ecs)
        .scalable_dimension(aws_sdk_applicationautoscaling::types::ScalableDimension::EcsServiceDesiredCount)
        .resource_id("service/staging/shop")
        .min_capacity(1)
        .max_capacity(4)
        .send()
        .await
        .unwrap();
    let mut prod = prod_watch(&sandbox);
    let mut staging_watch = in_staging(&sandbox, "watch-rollouts");

    // When the merge reaches staging, is promoted to prod, and prod's rollout completes
    let digest = push_and_roll_out_to_staging(&sandbox).await;
    let announced = on_bus(&sandbox, PROD, "nightshift", "Rollout Outcome");
    prod.invoke(&announced[0]).response();
    let fired = sandbox.pass_time(31.0);
    let input: Value = serde_json::from_str(fired[0]["target"]["Input"].as_str().unwrap()).unwrap();
    assert_eq!(prod.invoke(&input).response()["promotion"]["result"], "promoted");
    let completed = complete_rollout_in(&sandbox, PROD, "prod", "shop");
    let prod_outcome = prod.invoke(&completed).response();
    assert_eq!(prod_outcome["announced"], true, "{prod_outcome:#}");

    // Then prod's outcome reaches staging, which sleeps: desired 0, capacity 0..0, what it ran with remembered
    let back: Vec<Value> = on_bus(&sandbox, STAGING, "nightshift", "Rollout Outcome")
        .into_iter()
        .filter(|e| e["account"] == PROD)
        .collect();
    assert_eq!(back.len(), 1, "prod's outcomes go back to the account it follows: {back:#?}");
    assert_eq!(back[0]["detail"]["promotedFrom"], "111122223333:staging/shop");
    let slept = staging_watch.invoke(&back[0]).response();
    assert_eq!(slept["sleep"]["result"], "slept", "{slept:#}");
    assert!(slept["sleep"]["why"].as_str().unwrap().contains("123456789012:prod/shop"), "{slept:#}");
    assert_eq!(slept["sleep"]["remembered"]["desired"], 2);
    assert_eq!(staging_desired_and_capacity(&sandbox).await, (0, Some((0, 0))));
    // And the same event again changes nothing
    let again = staging_watch.invoke(&back[0]).response();
    assert_eq!(again["sleep"]["result"], "awake", "{again:#}");
    assert_eq!(again["sleep"]["why"], "asleep already");

    // When the next merge is pushed
    let registry_ecr = aws_sdk_ecr::Client::new(&sandbox.config_in(REGISTRY, REGION));
    let next = push_labelled_image(&sandbox, &registry_ecr, REGISTRY, "shop/api", &["1.4.0"], &[]).await;
    let push = on_bus(&sandbox, STAGING, "aws.ecr", "ECR Image Action")
        .into_iter()
        .find(|e| e["detail"]["image-tag"] == "1.4.0")
        .unwrap();
    let woken = in_staging(&sandbox, "deploy-on-push").invoke(&push).response();

    // Then staging wakes to what it ran with, and runs the new image
    assert_eq!(woken["deployed"][0]["woke"], 2, "{woken:#}");
    assert_eq!(staging_desired_and_capacity(&sandbox).await, (2, Some((1, 4))));
    let (image, _) = image_in(&sandbox, STAGING, "staging").await;
    assert_eq!(image, format!("{}/shop/api@{next}", registry_host(REGISTRY)));
    assert_ne!(next, digest);
}

#[tokio::test]
async fn a_sleep_waits_for_a_followers_checks_and_is_decided_again_by_its_schedule() {
    // Given staging, qa and prod of one account; staging opted in to sleep; qa has a check suite
    let sandbox = Sandbox::start();
    let ecs = sandbox.ecs();
    nightshift_tests::platform::seed_stages(&ecs, &sandbox.ecr(), &sandbox.scheduler(), &sandbox.codedeploy(), false)
        .await;
    let staging = format!("arn:aws:ecs:{REGION}:{PROD}:service/staging/shop");
    let opt_in = aws_sdk_ecs::types::Tag::builder().key("nightshift:sleep-after-promotion").value("true").build();
    ecs.tag_resource().resource_arn(&staging).tags(opt_in).send().await.unwrap();
    let suite = r#"{"target": "http://127.0.0.1:9/", "requests": [{"path": "/health"}]}"#;
    sandbox
        .ssm()
        .put_parameter()
        .name("/nightshift/checks/qa/shop")
        .value(suite)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
    for stage in ["staging", "qa", "prod"] {
        nightshift_tests::platform::end_stage_rollout(&sandbox, stage, "COMPLETED");
    }
    let mut env = sandbox.function_env();
    env.extend([
        ("SCHEDULE_GROUP".to_owned(), SCHEDULE_GROUP.to_owned()),
        ("SCHEDULE_ROLE_ARN".to_owned(), schedule_role()),
    ]);
    let mut watch = FunctionProcess::spawn(&binary("watch-rollouts"), &env);

    // When 1.3.0 reaches staging, then qa after its soak, and qa's rollout completes
    FunctionProcess::spawn(&binary("deploy-on-push"), &env).invoke(&event("deploy-on-push.ecr-push.json")).response();
    let staging_done = nightshift_tests::platform::end_stage_rollout(&sandbox, "staging", "COMPLETED");
    watch.invoke(&staging_done[0]).response();
    let fired = sandbox.pass_time(31.0);
    let input: Value = serde_json::from_str(fired[0]["target"]["Input"].as_str().unwrap()).unwrap();
    assert_eq!(watch.invoke(&input).response()["promotion"]["result"], "promoted");
    let qa_done = nightshift_tests::platform::end_stage_rollout(&sandbox, "qa", "COMPLETED");
    let decided = watch.invoke(&qa_done[0]).response();

    // Then staging waits for qa's checks, with a schedule to decide again
    assert_eq!(decided["sleep"]["result"], "waiting", "{decided:#}");
    assert_eq!(decided["sleep"]["why"], "the checks of qa/shop have not ended");
    let scheduled = decided["sleep"]["scheduled"]["schedule"].as_str().unwrap().to_owned();
    assert!(scheduled.starts_with("sleep-shop-"), "{scheduled}");

    // When qa's checks pass, and the schedule comes
    let qa = ecs.describe_services().cluster("qa").services("shop").send().await.unwrap();
    let qa_revision = qa.services()[0].task_definition().unwrap().to_owned();
    let verdict = nightshift::state::StateWrite::Verdict {
        service: format!("arn:aws:ecs:{REGION}:{PROD}:service/qa/shop"),
        task_definition: qa_revision,
        passed: true,
        deployment: "ecs-svc/checked".into(),
        why: "every check passed".into(),
    };
    sandbox.state().write(&verdict, chrono::Utc::now()).await.unwrap();
    let fired = sandbox.pass_time(11.0);
    let check = fired.iter().find(|f| f["name"] == scheduled.as_str()).unwrap_or_else(|| panic!("{fired:#?}"));
    let input: Value = serde_json::from_str(check["target"]["Input"].as_str().unwrap()).unwrap();
    let slept = watch.invoke(&input).response();

    // Then staging sleeps
    assert_eq!(slept["sleep"]["result"], "slept", "{slept:#}");
    let now = ecs.describe_services().cluster("staging").services("shop").send().await.unwrap();
    assert_eq!(now.services()[0].desired_count(), 0);
}
