use std::sync::Arc;

use lambda_runtime::{Error, run, service_fn};
use nightshift::notify::{self, Notifier, NotifyConfig};
use nightshift::scale::{ScaleConfig, ScaleGroup};
use nightshift::{SystemClock, aws, config::ProcessEnv};
use scale_on_ingress::ScaleOnIngress;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    nightshift::logging::init(&ProcessEnv);
    let config = ScaleConfig::from_vars(&ProcessEnv).inspect_err(|err| {
        tracing::error!(error = %err, "scale-on-ingress cannot start");
    })?;
    let notify = NotifyConfig::from_vars(&ProcessEnv).inspect_err(|err| {
        tracing::error!(error = %err, "scale-on-ingress cannot start");
    })?;
    let sdk = aws::sdk_config();
    let notifier = Notifier::new(notify, &sdk);
    let function = ScaleOnIngress::new(ScaleGroup {
        config,
        ecs: aws::ecs_client(&sdk),
        scaling: aws::scaling_client(&sdk),
        clock: Arc::new(SystemClock),
    });
    run(service_fn(|event| notify::with_alerts(&notifier, scale_on_ingress::FUNCTION, function.handle(event)))).await
}
