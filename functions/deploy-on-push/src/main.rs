use deploy_on_push::{DeployConfig, DeployOnPush};
use lambda_runtime::{Error, run, service_fn};
use nightshift::notify::{self, Notifier, NotifyConfig};
use nightshift::rollout::codedeploy::CodeDeploy;
use nightshift::signed::SignedHttp;
use nightshift::state::StateTable;
use nightshift::{aws, config::ProcessEnv};
use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    nightshift::logging::init(&ProcessEnv);
    let config = DeployConfig::from_vars(&ProcessEnv).inspect_err(|err| {
        tracing::error!(error = %err, "deploy-on-push cannot start");
    })?;
    let notify = NotifyConfig::from_vars(&ProcessEnv).inspect_err(|err| {
        tracing::error!(error = %err, "deploy-on-push cannot start");
    })?;
    let sdk = aws::sdk_config();
    // SSM's, the webhooks', DynamoDB's and CodeDeploy's requests, over the one connector.
    let signed = Arc::new(SignedHttp::new(&sdk));
    let notifier = Arc::new(Notifier::over(notify, signed.clone()));
    let (ecr, codedeploy) = (aws_sdk_ecr::Client::new(&sdk), CodeDeploy::new(signed.clone()));
    let state = StateTable::new(signed.clone(), &config.state_table);
    let function = DeployOnPush::new(config, aws::ecs_client(&sdk), ecr, codedeploy, state)
        .with_notifier(notifier.clone())
        .with_downloads(signed);
    run(service_fn(|event| notify::with_alerts(&notifier, deploy_on_push::FUNCTION, function.handle(event)))).await
}
