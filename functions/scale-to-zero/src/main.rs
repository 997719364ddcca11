use std::sync::Arc;

use lambda_runtime::{Error, run, service_fn};
use nightshift::notify::{self, Notifier, NotifyConfig};
use nightshift::scale::{ScaleConfig, ScaleGroup};
use nightshift::signed::SignedHttp;
use nightshift::state::StateTable;
use nightshift::{SystemClock, aws, config::ProcessEnv};
use scale_to_zero::ScaleToZero;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    nightshift::logging::init(&ProcessEnv);
    let config = ScaleConfig::from_vars(&ProcessEnv).inspect_err(|err| {
        tracing::error!(error = %err, "scale-to-zero cannot start");
    })?;
    let notify = NotifyConfig::from_vars(&ProcessEnv).inspect_err(|err| {
        tracing::error!(error = %err, "scale-to-zero cannot start");
    })?;
    let sdk = aws::sdk_config();
    // The webhooks' and DynamoDB's requests, over one connector.
    let signed = Arc::new(SignedHttp::new(&sdk));
    let notifier = Notifier::over(notify, signed.clone());
    let mut function = ScaleToZero::new(ScaleGroup {
        config,
        ecs: aws::ecs_client(&sdk),
        scaling: aws::scaling_client(&sdk),
        clock: Arc::new(SystemClock),
    });
    // Overrides by hand (nightshift wake|sleep) are kept in the state table, when the stack has one.
    if nightshift::config::optional(&ProcessEnv, nightshift::state::STATE_TABLE_VAR).is_some() {
        let table = nightshift::state::table_name(&ProcessEnv).inspect_err(|err| {
            tracing::error!(error = %err, "scale-to-zero cannot start");
        })?;
        function = function.with_state(StateTable::new(signed, table));
    }
    run(service_fn(|event| notify::with_alerts(&notifier, scale_to_zero::FUNCTION, function.handle(event)))).await
}
