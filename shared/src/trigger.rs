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
    /// An event with a `detail-type` is EventBridge's, and must be whole: a
    /// schedule's `time` says which run it is. Anything else is manual.
    pub fn parse(payload: &Value) -> Result<Self, String> {
        if payload.get("detail-type").is_none() {
            return Ok(Self::Manual);
        }
        let event = serde_json::from_value::<EventBridgeEvent<Value>>(payload.clone())
            .map_err(|e| format!("not an EventBridge event: {e}"))?;
        let time = event.time.ok_or("the EventBridge event has no `time`, so when it was due is unknown")?;
        Ok(Self::Scheduled { id: event.id.unwrap_or_default(), time })
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
            Ok(Trigger::Scheduled { id: "abc".into(), time: "2026-11-26T03:00:00Z".parse().unwrap() })
        );
        for manual in [json!({}), json!({"participants": ["x"]}), json!("go"), json!(null)] {
            assert_eq!(Trigger::parse(&manual), Ok(Trigger::Manual), "{manual}");
        }
    }

    #[test]
    fn a_scheduled_event_without_a_time_is_refused_not_read_as_1970() {
        let mut untimed = json!({"version": "0", "id": "abc", "detail-type": "Scheduled Event",
                                 "source": "aws.scheduler", "detail": {}});
        assert_eq!(
            Trigger::parse(&untimed),
            Err("the EventBridge event has no `time`, so when it was due is unknown".into())
        );
        untimed["time"] = json!("midnight");
        assert!(Trigger::parse(&untimed).unwrap_err().starts_with("not an EventBridge event"));
    }
}
