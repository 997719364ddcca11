//! What nightshift remembers lives in the state table (DynamoDB), not in ECS
//! tags: the built binaries through the Lambda Runtime API, against a local
//! AWS whose DynamoDB is moto's, checked against DynamoDB's API model.

use std::thread;

use aws_sdk_ecs::types::Tag;
use nightshift_tests::event;
use nightshift_tests::platform::{CLUSTER, push_image, pushed_digest, seed_shop};
use nightshift_tests::runtime::{FunctionProcess, Outcome, binary};
use nightshift_tests::sandbox::{ACCOUNT, REGION, Sandbox};
use serde_json::{Value, json};

fn api_arn() -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service/{CLUSTER}/api")
}

/// The shop, its blue/green service left out (CodeDeploy takes one deployment at a time; these tests are about api).
async fn shop(sandbox: &Sandbox) {
    seed_shop(&sandbox.ecs(), &sandbox.ecr(), &sandbox.codedeploy()).await;
    let blue_green = format!("arn:aws:ecs:{REGION}:{ACCOUNT}:service/{CLUSTER}/blue-green");
    sandbox.ecs().untag_resource().resource_arn(blue_green).tag_keys("nightshift:deploy").send().await.unwrap();
}

fn spawn(sandbox: &Sandbox, function: &str) -> FunctionProcess {
    let mut env = sandbox.function_env();
    env.push(("CLUSTERS".into(), CLUSTER.into()));
    FunctionProcess::spawn(&binary(function), &env)
}

/// The push event of `shop/api:<tag>` with this digest.
fn push_event(tag: &str, digest: &str) -> Value {
    let mut payload = event("deploy-on-push.ecr-push.json");
    payload["detail"]["image-tag"] = json!(tag);
    payload["detail"]["image-digest"] = json!(digest);
    payload
}

async fn api(sandbox: &Sandbox) -> aws_sdk_ecs::types::Service {
    nightshift_tests::platform::described(&sandbox.ecs(), CLUSTER, "api").await
}

/// ECS's FAILED event of api's rollout now under way, after the circuit breaker
/// failed it and started the rollback (end it with [`rolled_back`]).
async fn fail_rollout(sandbox: &Sandbox) -> Value {
    sandbox.end_rollout(CLUSTER, "api", "FAILED");
    let failed = api(sandbox).await.deployments()[1].id().unwrap().to_owned();
    let mut failure = event("watch-rollouts.ecs-deployment-failed.json");
    failure["detail"]["deploymentId"] = json!(failed);
    // When it failed: now (ECS's history is read as it stood then).
    failure["detail"]["updatedAt"] = json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    failure
}

/// The rollback of api's failed rollout completes.
fn rolled_back(sandbox: &Sandbox) {
    sandbox.end_rollout(CLUSTER, "api", "COMPLETED");
}

/// Tags api up to ECS's limit of 50, so no tag could be added to it.
async fn fill_tags(sandbox: &Sandbox) {
    let ecs = sandbox.ecs();
    let have = api(sandbox).await.tags().len();
    let tags: Vec<Tag> = (have..50).map(|n| Tag::builder().key(format!("team:{n}")).value("x").build()).collect();
    for chunk in tags.chunks(10) {
        ecs.tag_resource().resource_arn(api_arn()).set_tags(Some(chunk.to_vec())).send().await.unwrap();
    }
    assert_eq!(api(sandbox).await.tags().len(), 50);
}

#[tokio::test]
async fn sixty_failed_rollouts_on_a_service_with_no_room_for_a_tag_keep_every_digest_quarantined() {
    // Given api, with no room left for another tag
    let sandbox = Sandbox::start();
    shop(&sandbox).await;
    fill_tags(&sandbox).await;
    let (mut deploy, mut watch) = (spawn(&sandbox, "deploy-on-push"), spawn(&sandbox, "watch-rollouts"));

    // When 60 releases in a row are pushed, rolled out and failed by the circuit breaker
    let mut digests = Vec::new();
    for n in 1..=60 {
        let tag = format!("1.3.{n}");
        let digest = push_image(&sandbox.ecr(), "shop/api", &tag, &format!("release {n}")).await;
        let pushed = deploy.invoke(&push_event(&tag, &digest)).response();
        assert!(pushed["deployed"].as_array().unwrap().iter().any(|d| d["service"] == "api"), "{n}: {pushed:#}");
        let told = watch.invoke(&fail_rollout(&sandbox).await).response();
        assert_eq!(told["outcome"], "rolled back", "{n}: {told:#}");
        assert!(told.get("warnings").is_none(), "{n}: nothing dropped: {told:#}");
        rolled_back(&sandbox);
        digests.push(digest);
    }

    // Then all 60 are held (none freed to make room), and api carries no record tag
    let mut held = sandbox.quarantined(&api_arn()).await;
    held.sort();
    digests.sort();
    assert_eq!(held, digests);
    let service = api(&sandbox).await;
    assert_eq!(service.tags().len(), 50);
    assert!(service.tags().iter().all(|t| !t.key().unwrap_or_default().starts_with("nightshift:quarantine")));

    // And the first of them, pushed again, is refused
    let first = format!("{}", digests.iter().position(|d| d == &held[0]).unwrap());
    let again = deploy.invoke(&push_event("1.3.99", &held[0])).response();
    let skipped = again["skipped"].as_array().unwrap().iter().find(|s| s["service"] == "api").unwrap().clone();
    assert!(skipped["reason"].as_str().unwrap().contains("is quarantined on this service"), "{first}: {skipped}");
}

#[tokio::test]
async fn an_older_releases_tag_quarantine_is_honoured_then_carried_over_once() {
    // Given api carrying the records an older release kept in its tags: the pushed digest quarantined
    let sandbox = Sandbox::start();
    shop(&sandbox).await;
    let short = nightshift::quarantine::short(&pushed_digest());
    let old = [("nightshift:quarantine", short.as_str()), ("nightshift:told", "ecs-svc/1=succeeded")];
    let tags: Vec<Tag> = old.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect();
    sandbox.ecs().tag_resource().resource_arn(api_arn()).set_tags(Some(tags)).send().await.unwrap();
    let (mut deploy, mut watch) = (spawn(&sandbox, "deploy-on-push"), spawn(&sandbox, "watch-rollouts"));

    // When its digest is pushed, then deploy-on-push refuses it, from the tag
    let refused = deploy.invoke(&push_event("1.3.0", &pushed_digest())).response();
    let api_skip = |report: &Value| {
        report["skipped"].as_array().unwrap().iter().find(|s| s["service"] == "api").map(|s| s["reason"].clone())
    };
    assert!(api_skip(&refused).unwrap().as_str().unwrap().starts_with(&format!("{short} is quarantined")));

    // When another release fails on api, then watch-rollouts carries the tags' records into the table, once
    let digest = push_image(&sandbox.ecr(), "shop/api", "1.3.1", "release 1.3.1").await;
    deploy.invoke(&push_event("1.3.1", &digest)).response();
    let failure = fail_rollout(&sandbox).await;
    watch.invoke(&failure).response();
    rolled_back(&sandbox);
    let memory = sandbox.memory(&api_arn()).await;
    assert!(memory.carried);
    assert_eq!(memory.mark("ecs-svc/1"), Some("succeeded"));
    let mut held = sandbox.quarantined(&api_arn()).await;
    held.sort();
    let mut want = vec![short.clone(), digest];
    want.sort();
    assert_eq!(held, want);

    // And once carried over, the table alone decides: released there, the digest is taken again
    let key = std::collections::HashMap::from([
        ("pk".to_owned(), aws_sdk_dynamodb::types::AttributeValue::S(api_arn())),
        ("sk".to_owned(), aws_sdk_dynamodb::types::AttributeValue::S(format!("quarantine#{short}"))),
    ]);
    let dynamodb = aws_sdk_dynamodb::Client::new(&sandbox.sdk_config());
    dynamodb.delete_item().table_name("StateTable").set_key(Some(key)).send().await.unwrap();
    let taken = deploy.invoke(&push_event("1.3.0", &pushed_digest())).response();
    assert_eq!(api_skip(&taken), None, "{taken:#}");
}

#[tokio::test]
async fn a_failure_whose_event_arrives_after_ecs_stopped_listing_it_still_quarantines_its_digest() {
    // Given api's rollout failed, and its rollback completed, before the FAILED event arrives
    let sandbox = Sandbox::start();
    shop(&sandbox).await;
    spawn(&sandbox, "deploy-on-push").invoke(&event("deploy-on-push.ecr-push.json")).response();
    let failure = fail_rollout(&sandbox).await;
    rolled_back(&sandbox);
    assert_eq!(api(&sandbox).await.deployments().len(), 1, "ECS lists the rollback alone");

    // When it arrives, twice
    let mut watch = spawn(&sandbox, "watch-rollouts");
    let told = watch.invoke(&failure).response();
    let again = watch.invoke(&failure).response();

    // Then the failed revision is read from ECS's service deployment history: its digest is quarantined
    assert_eq!(told["outcome"], "rolled back", "{told:#}");
    assert!(told["task_definition"].as_str().unwrap().ends_with("task-definition/api:2"), "{told:#}");
    assert!(told["previous_task_definition"].as_str().unwrap().ends_with("task-definition/api:1"), "{told:#}");
    assert_eq!(sandbox.quarantined(&api_arn()).await, [pushed_digest()]);
    assert_eq!(again["outcome"], Value::Null, "{again:#}");
}

#[tokio::test]
async fn a_state_write_that_fails_fails_the_run_and_its_retry_completes_it() {
    // Given api's rollout failed, and DynamoDB failing the next writes (past the SDK's three attempts)
    let sandbox = Sandbox::start();
    shop(&sandbox).await;
    spawn(&sandbox, "deploy-on-push").invoke(&event("deploy-on-push.ecr-push.json")).response();
    let failure = fail_rollout(&sandbox).await;
    let error = json!({"status": 500, "type": "InternalServerError"});
    sandbox.fail("PutItem", json!([error.clone(), error.clone(), error]));

    // When the outcome arrives, then the run fails, saying so: never a warning
    let mut watch = spawn(&sandbox, "watch-rollouts");
    let Outcome::Error { error_type, error_message } = watch.invoke(&failure) else { panic!("the run must fail") };
    assert_eq!(error_type, "StateError", "{error_message}");
    assert!(error_message.starts_with("DynamoDB PutItem"), "{error_message}");
    assert!(sandbox.quarantined(&api_arn()).await.is_empty());

    // And Lambda's retry completes it: the digest is held
    let retried = watch.invoke(&failure).response();
    assert_eq!(retried["outcome"], "rolled back", "{retried:#}");
    assert_eq!(sandbox.quarantined(&api_arn()).await, [pushed_digest()]);
}

#[tokio::test]
async fn two_pushes_handled_at_once_end_on_the_later_version_in_50_of_50_runs() {
    // Given api on 1.2.0, and 1.3.0 and 1.3.1 pushed one after the other
    let sandbox = Sandbox::start();
    shop(&sandbox).await;
    let older = pushed_digest();
    let later = push_image(&sandbox.ecr(), "shop/api", "1.3.1", "release 1.3.1").await;
    let base = api(&sandbox).await.task_definition().unwrap().to_owned();
    let mut processes = [spawn(&sandbox, "deploy-on-push"), spawn(&sandbox, "deploy-on-push")];
    let events = [push_event("1.3.0", &older), push_event("1.3.1", &later)];

    for run in 0..50 {
        // When both pushes are handled at once, each reading api before either updates it
        sandbox.ecs().update_service().cluster(CLUSTER).service("api").task_definition(&base).send().await.unwrap();
        sandbox.together("DescribeServices", 2);
        let [a, b] = &mut processes;
        let (first, second) = if run % 2 == 0 { (&events[0], &events[1]) } else { (&events[1], &events[0]) };
        let reports = thread::scope(|scope| {
            let one = scope.spawn(|| a.invoke(first));
            let two = scope.spawn(|| b.invoke(second));
            [one.join().unwrap(), two.join().unwrap()]
        });
        for outcome in reports {
            let Outcome::Response(report) = outcome else { panic!("run {run}: {outcome:?}") };
            assert!(report["failed"].as_array().unwrap().is_empty(), "run {run}: {report:#}");
        }

        // Then api runs the later version
        let running = api(&sandbox).await.task_definition().unwrap().to_owned();
        let td = sandbox.ecs().describe_task_definition().task_definition(&running).send().await.unwrap();
        let containers = td.task_definition().unwrap().container_definitions();
        let app = containers.iter().find(|c| c.name() == Some("app")).unwrap();
        let image = app.image().unwrap().to_owned();
        assert!(image.ends_with(&later), "run {run}: api runs {image}, not 1.3.1 ({later})");
    }
}
