//! What started a scheduled function's run: the schedule, or a person.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// What started this run; the run is the same either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Trigger {
    /// An EventBridge (Scheduler) event.
    Scheduled { id: String, time: DateTime<Utc> },
    /// Anything else: `aws lambda invoke`, a test, a console click.
    Manual,
}

impl Trigger {
    pub fn parse(payload: &Value) -> Self {
        match serde_json::from_value::<EventBridgeEvent<Value>>(payload.clone()) {
            Ok(event) => Self::Scheduled { id: event.id.unwrap_or_default(), time: event.time.unwrap_or_default() },
            Err(_) => Self::Manual,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_scheduler_event_is_scheduled_and_anything_else_is_manual() {
        let scheduled = json!({"version": "0", "id": "abc", "detail-type": "Scheduled Event", "source": "aws.scheduler",
                               "time": "2026-11-26T03:00:00Z", "detail": {}});
        assert_eq!(
            Trigger::parse(&scheduled),
            Trigger::Scheduled { id: "abc".into(), time: "2026-11-26T03:00:00Z".parse().unwrap() }
        );
        for manual in [json!({}), json!({"participants": ["x"]}), json!("go"), json!(null)] {
            assert_eq!(Trigger::parse(&manual), Trigger::Manual, "{manual}");
        }
    }
}
