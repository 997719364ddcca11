use std::sync::Arc;

use expire_logs::{ExpireConfig, ExpireLogs};
use lambda_runtime::{Error, run, service_fn};
use nightshift::notify::{self, Notifier, NotifyConfig};
use nightshift::{SystemClock, aws, config::ProcessEnv};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    nightshift::logging::init(&ProcessEnv);
    let config = ExpireConfig::from_vars(&ProcessEnv).inspect_err(|err| {
        tracing::error!(error = %err, "expire-logs cannot start");
    })?;
    let notify = NotifyConfig::from_vars(&ProcessEnv).inspect_err(|err| {
        tracing::error!(error = %err, "expire-logs cannot start");
    })?;
    let sdk = aws::sdk_config();
    let notifier = Notifier::new(notify, &sdk);
    let function = ExpireLogs::new(config, aws::s3_client(&sdk), Arc::new(SystemClock));
    run(service_fn(|event| notify::with_alerts(&notifier, expire_logs::FUNCTION, function.handle(event)))).await
}
