use lambda_runtime::{Error, run, service_fn};
use nightshift::notify::{self, Notifier, NotifyConfig};
use nightshift::rollout::codedeploy::CodeDeploy;
use nightshift::signed::SignedHttp;
use nightshift::state::StateTable;
use nightshift::{aws, config::ProcessEnv};
use std::sync::Arc;
use watch_rollouts::{WatchConfig, WatchRollouts};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    nightshift::logging::init(&ProcessEnv);
    let config = WatchConfig::from_vars(&ProcessEnv).inspect_err(|err| {
        tracing::error!(error = %err, "watch-rollouts cannot start");
    })?;
    let notify = NotifyConfig::from_vars(&ProcessEnv).inspect_err(|err| {
        tracing::error!(error = %err, "watch-rollouts cannot start");
    })?;
    let sdk = aws::sdk_config();
    // SSM's, the webhooks', Scheduler's, DynamoDB's and CodeDeploy's requests, over the one connector.
    let signed = Arc::new(SignedHttp::new(&sdk));
    let notifier = Notifier::over(notify, signed.clone());
    let codedeploy = CodeDeploy::new(signed.clone());
    let state = StateTable::new(signed.clone(), &config.state_table);
    let function = WatchRollouts::new(config, aws::ecs_client(&sdk), codedeploy, signed, state, &notifier);
    run(service_fn(|event| notify::with_alerts(&notifier, watch_rollouts::FUNCTION, function.handle(event)))).await
}
