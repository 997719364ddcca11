//! The checks' I/O: each round's requests, sent together to the new
//! revision's traffic, and the named CloudWatch alarms (DescribeAlarms and
//! DescribeAlarmHistory, by signed request of CloudWatch's JSON protocol: its
//! SDK client would cost the binary more than these two calls).

use std::time::Instant;

use nightshift::signed::Connector;
use nightshift::signed::SignedHttp;
use serde_json::{Value, json};

use crate::suite::{Answer, Check, Suite};

/// The most of an answer's body kept to judge it (a check reads a status, a
/// few JSON fields or a substring).
const BODY_LIMIT: usize = 256 * 1024;

/// The most requests of a round in flight at once. A suite has at most 20;
/// the new revision's first tasks, just started, get at most this many at the
/// same instant, and each answer is timed from its own sending, so a request
/// that waited for room is not judged slower for it.
pub const POOL: usize = 8;

/// Sends every request of the suite once, concurrently within [`POOL`]; the answers in the suite's order.
pub async fn round(http: &Connector, suite: &Suite) -> Vec<Answer> {
    use futures_util::stream::{self, StreamExt};
    stream::iter(suite.requests.iter().map(|check| sample(http, &suite.target, check))).buffered(POOL).collect().await
}

/// One request, timed from sending to the last byte of its answer.
pub async fn sample(http: &Connector, target: &str, check: &Check) -> Answer {
    let url = format!("{target}{}", check.path);
    let body = match &check.body {
        None => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(json) => json.to_string(),
    };
    let json_body = matches!(check.body, Some(ref b) if !b.is_string());
    let has_type = check.headers.keys().any(|k| k.eq_ignore_ascii_case("content-type"));
    let mut headers: Vec<(&str, &str)> = check.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    if json_body && !has_type {
        headers.push(("content-type", "application/json"));
    }
    headers.push(("user-agent", "nightshift-verify-rollout"));
    let who = format!("{} {url}", check.method);
    let started = Instant::now();
    let response = match nightshift::aws::send(http, &check.method, &url, headers.into_iter(), body, &who).await {
        Ok(response) => response,
        Err(why) => return Answer::NoAnswer(why),
    };
    let status = response.status().as_u16();
    let collected = aws_smithy_types::byte_stream::ByteStream::new(response.into_body()).collect().await;
    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match collected {
        Ok(bytes) => {
            let bytes = bytes.into_bytes();
            let kept = &bytes[..bytes.len().min(BODY_LIMIT)];
            Answer::Got { status, ms, body: String::from_utf8_lossy(kept).into_owned() }
        }
        Err(_) => Answer::NoAnswer(format!("{who}: the answer's body could not be read")),
    }
}

/// One CloudWatch operation; the error as AWS says it, named after the operation.
async fn cloudwatch(aws: &SignedHttp, operation: &'static str, request: Value) -> Result<Value, String> {
    aws.json_operation(&nightshift::signed::CLOUDWATCH, operation, "CloudWatch", &request).await.map_err(|e| {
        match e.code {
            Some(code) if code != e.message => format!("CloudWatch {operation}: {code}: {}", e.message),
            _ => format!("CloudWatch {operation}: {}", e.message),
        }
    })
}

/// The named alarms now in ALARM; `Err` when one of them does not exist (a
/// typo must not pass checks) or CloudWatch could not be asked.
pub async fn in_alarm(aws: &SignedHttp, names: &[String]) -> Result<Vec<String>, String> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let request = json!({"AlarmNames": names, "AlarmTypes": ["MetricAlarm", "CompositeAlarm"], "MaxRecords": 100});
    let answer = cloudwatch(aws, "DescribeAlarms", request).await?;
    let alarms: Vec<&Value> = ["MetricAlarms", "CompositeAlarms"]
        .iter()
        .flat_map(|kind| answer[kind].as_array().into_iter().flatten())
        .collect();
    let mut fired = Vec::new();
    for name in names {
        let Some(alarm) = alarms.iter().find(|a| a["AlarmName"].as_str() == Some(name)) else {
            return Err(format!("CloudWatch has no alarm named {name:?}"));
        };
        if alarm["StateValue"].as_str() == Some("ALARM") {
            fired.push(name.clone());
        }
    }
    Ok(fired)
}

/// The named alarms that went into ALARM since `since` (epoch seconds), as
/// their history says: a state that came and went between two rounds.
pub async fn went_into_alarm(aws: &SignedHttp, names: &[String], since: i64) -> Result<Vec<String>, String> {
    let mut fired = Vec::new();
    for name in names {
        let mut token: Option<String> = None;
        loop {
            let mut request = json!({
                "AlarmName": name,
                "AlarmTypes": ["MetricAlarm", "CompositeAlarm"],
                "HistoryItemType": "StateUpdate",
                "StartDate": since,
                "MaxRecords": 100,
            });
            if let Some(token) = token.take() {
                request["NextToken"] = json!(token);
            }
            let answer = cloudwatch(aws, "DescribeAlarmHistory", request).await?;
            let items = answer["AlarmHistoryItems"].as_array().into_iter().flatten();
            if items.filter_map(|item| item["HistoryData"].as_str()).any(entered_alarm) {
                fired.push(name.clone());
                break;
            }
            match answer["NextToken"].as_str() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => break,
            }
        }
    }
    Ok(fired)
}

/// Whether a state update's `HistoryData` (JSON in a string) went into ALARM.
pub fn entered_alarm(data: &str) -> bool {
    serde_json::from_str::<Value>(data).is_ok_and(|d| d["newState"]["stateValue"].as_str() == Some("ALARM"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_update_into_alarm_is_read_from_its_history_data() {
        let into =
            r#"{"version":"1.0","oldState":{"stateValue":"OK"},"newState":{"stateValue":"ALARM","stateReason":"x"}}"#;
        let out = r#"{"version":"1.0","oldState":{"stateValue":"ALARM"},"newState":{"stateValue":"OK"}}"#;
        assert!(entered_alarm(into));
        assert!(!entered_alarm(out));
        assert!(!entered_alarm("not json"));
    }
}
