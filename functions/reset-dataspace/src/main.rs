use std::sync::Arc;

use lambda_runtime::{Error, run, service_fn};
use nightshift::notify::{self, Notifier, NotifyConfig};
use nightshift::{SystemClock, aws, config::ProcessEnv};
use reset_dataspace::{ResetConfig, ResetDataspace};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    nightshift::logging::init(&ProcessEnv);
    let config = ResetConfig::from_vars(&ProcessEnv).inspect_err(|err| {
        tracing::error!(error = %err, "reset-dataspace cannot start");
    })?;
    let notify = NotifyConfig::from_vars(&ProcessEnv).inspect_err(|err| {
        tracing::error!(error = %err, "reset-dataspace cannot start");
    })?;
    let sdk = aws::sdk_config();
    let notifier = Notifier::new(notify, &sdk);
    let function = ResetDataspace::new(config, aws::ecs_client(&sdk), aws::s3_client(&sdk), Arc::new(SystemClock));
    run(service_fn(|event| notify::with_alerts(&notifier, reset_dataspace::FUNCTION, function.handle(event)))).await
}
