//! EventBridge Scheduler's CreateSchedule (REST-JSON), as one signed request
//! (`nightshift::signed`): the SDK's Scheduler client, for this one call,
//! took watch-rollouts past the 6 MB budget (see docs/performance.md).
//! Observe and apply, never decide.

use chrono::{DateTime, Utc};
use nightshift::aws::CallError;
use nightshift::signed::{SignedHttp, SignedResponse};
use serde_json::json;

/// A one-time schedule that invokes a Lambda function with an input, then deletes itself.
pub struct OneTime<'a> {
    /// 1 to 64 of `[0-9a-zA-Z-_.]`.
    pub name: &'a str,
    pub group: &'a str,
    pub at: DateTime<Utc>,
    pub function_arn: &'a str,
    /// The role Scheduler invokes the function with (and sends to the dead-letter queue with).
    pub role_arn: &'a str,
    /// Where the input goes once the retries are spent.
    pub dead_letter_arn: Option<&'a str>,
    pub input: String,
    pub description: String,
}

/// Whether the schedule was made, or one of that name existed already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    New,
    Existed,
}

/// How often Scheduler tries again a promotion whose invocation failed (Lambda
/// throttled, or the function refused), and for how long: as the stack's own
/// schedules do.
pub const MAXIMUM_RETRY_ATTEMPTS: u32 = 5;
pub const MAXIMUM_EVENT_AGE_SECONDS: u32 = 3600;

/// The request's body, as the Scheduler API model names its members.
pub fn body(schedule: &OneTime) -> String {
    let mut target = json!({
        "Arn": schedule.function_arn,
        "RoleArn": schedule.role_arn,
        "Input": schedule.input,
        "RetryPolicy": {
            "MaximumRetryAttempts": MAXIMUM_RETRY_ATTEMPTS,
            "MaximumEventAgeInSeconds": MAXIMUM_EVENT_AGE_SECONDS,
        },
    });
    if let Some(queue) = schedule.dead_letter_arn {
        target["DeadLetterConfig"] = json!({"Arn": queue});
    }
    json!({
        "ScheduleExpression": format!("at({})", schedule.at.format("%Y-%m-%dT%H:%M:%S")),
        "ScheduleExpressionTimezone": "UTC",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "ActionAfterCompletion": "DELETE",
        "GroupName": schedule.group,
        "Description": schedule.description,
        "Target": target,
    })
    .to_string()
}

pub async fn create(aws: &SignedHttp, schedule: &OneTime<'_>) -> Result<Created, CallError> {
    let target = format!("{}/{}", schedule.group, schedule.name);
    let call_error = |code: Option<String>, message: String| CallError {
        operation: "CreateSchedule",
        target: target.clone(),
        code,
        message,
    };
    let path = format!("/schedules/{}", schedule.name);
    let answer = aws
        .post_json("scheduler", &path, &[("content-type", "application/json")], body(schedule))
        .await
        .map_err(|why| call_error(None, why))?;
    match created(&answer) {
        Some(created) => Ok(created),
        None => Err(call_error(answer.code(), answer.error())),
    }
}

/// What an answer to CreateSchedule says: made, or a schedule of that name
/// exists already (a ConflictException saying so, and no other conflict,
/// such as one about the group); `None` for any other error.
pub fn created(answer: &SignedResponse) -> Option<Created> {
    if (200..300).contains(&answer.status) {
        return Some(Created::New);
    }
    let exists = answer.code().as_deref() == Some("ConflictException")
        && answer.message().is_some_and(|m| m.starts_with("Schedule ") && m.ends_with(" already exists."));
    exists.then_some(Created::Existed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_conflict_that_says_the_schedule_exists_is_a_schedule_that_exists() {
        let answer = |status: u16, body: &str| SignedResponse {
            status,
            error_type: (status >= 400).then(|| "ConflictException".to_owned()),
            date: None,
            body: body.as_bytes().to_vec(),
        };
        let table = [
            (answer(200, r#"{"ScheduleArn": "arn"}"#), Some(Created::New)),
            (answer(409, r#"{"Message": "Schedule promote-shop-0123 already exists."}"#), Some(Created::Existed)),
            (answer(409, r#"{"Message": "Schedule group nightshift is being deleted."}"#), None),
            (answer(409, r#"{}"#), None),
        ];
        for (answer, want) in table {
            assert_eq!(created(&answer), want, "{}", String::from_utf8_lossy(&answer.body));
        }
    }
    use chrono::TimeZone;
    use serde_json::Value;

    #[test]
    fn the_body_is_a_one_time_schedule_in_utc_that_deletes_itself_retries_and_dead_letters() {
        let schedule = OneTime {
            name: "promote-shop-0123456789abcdef",
            group: "nightshift",
            at: Utc.with_ymd_and_hms(2026, 11, 27, 12, 30, 0).unwrap(),
            function_arn: "arn:aws:lambda:eu-west-1:123456789012:function:nightshift-watch-rollouts",
            role_arn: "arn:aws:iam::123456789012:role/nightshift-PromotionSchedulerRole-1",
            dead_letter_arn: Some("arn:aws:sqs:eu-west-1:123456789012:nightshift-FailedInvocationsQueue-1"),
            input: r#"{"promotion":{}}"#.into(),
            description: "nightshift: promote qa/shop".into(),
        };
        let body: Value = serde_json::from_str(&body(&schedule)).unwrap();
        assert_eq!(
            body,
            json!({
                "ScheduleExpression": "at(2026-11-27T12:30:00)", "ScheduleExpressionTimezone": "UTC",
                "FlexibleTimeWindow": {"Mode": "OFF"}, "ActionAfterCompletion": "DELETE", "GroupName": "nightshift",
                "Description": "nightshift: promote qa/shop",
                "Target": {"Arn": "arn:aws:lambda:eu-west-1:123456789012:function:nightshift-watch-rollouts",
                           "RoleArn": "arn:aws:iam::123456789012:role/nightshift-PromotionSchedulerRole-1",
                           "Input": "{\"promotion\":{}}",
                           "RetryPolicy": {"MaximumRetryAttempts": 5, "MaximumEventAgeInSeconds": 3600},
                           "DeadLetterConfig": {"Arn": "arn:aws:sqs:eu-west-1:123456789012:nightshift-FailedInvocationsQueue-1"}}
            })
        );
    }
}
