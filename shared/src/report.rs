//! The JSON report every handler returns, logged as one line that CloudWatch
//! reads twice: Logs Insights queries its fields (the report is an object,
//! not an escaped string), and the line carries CloudWatch metrics in the
//! Embedded Metric Format (namespace `nightshift`, dimensions `Function` and,
//! when `STACK_NAME` is set, `Stack`). And the error a failed run ends with.

use std::io::Write;

use lambda_runtime::Diagnostic;
use serde::Serialize;
use serde_json::{Map, Value, json};

/// The CloudWatch namespace of every nightshift metric.
pub const NAMESPACE: &str = "nightshift";

/// A CloudWatch unit, as EMF names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Bytes,
    /// A 0/1 state (`GroupAwake`, `SweepComplete`).
    None,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Bytes => "Bytes",
            Self::None => "None",
        }
    }
}

/// One metric a run reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    pub value: f64,
    pub unit: Unit,
}

impl Metric {
    pub fn count(name: &'static str, n: usize) -> Self {
        Self { name, value: n as f64, unit: Unit::Count }
    }

    pub fn flag(name: &'static str, on: bool) -> Self {
        Self { name, value: if on { 1.0 } else { 0.0 }, unit: Unit::None }
    }
}

/// A report that says what its run measured.
pub trait Measured {
    fn metrics(&self) -> Vec<Metric>;
}

/// The report line: the report as an object, its metrics and `RunFailed`
/// (the run ends in an error) in EMF. `stack` is the `Stack` dimension.
pub fn report_line(
    function: &str,
    stack: Option<&str>,
    report: Option<Value>,
    error: Option<(&str, String)>,
    metrics: &[Metric],
    timestamp_ms: i64,
) -> Value {
    let mut line = Map::new();
    line.insert("level".into(), json!(if error.is_some() { "ERROR" } else { "INFO" }));
    line.insert("message".into(), json!("report"));
    line.insert("function".into(), json!(function));
    if let Some(report) = report {
        line.insert("report".into(), report);
    }
    if let Some((error_type, message)) = error.as_ref() {
        line.insert("error".into(), json!({"errorType": error_type, "errorMessage": message}));
    }
    let mut dimensions = vec!["Function"];
    line.insert("Function".into(), json!(function));
    if let Some(stack) = stack {
        dimensions.push("Stack");
        line.insert("Stack".into(), json!(stack));
    }
    let run_failed = Metric::flag("RunFailed", error.is_some());
    let mut definitions = Vec::new();
    for metric in metrics.iter().chain(std::iter::once(&run_failed)) {
        line.insert(metric.name.into(), json!(metric.value));
        definitions.push(json!({"Name": metric.name, "Unit": metric.unit.name()}));
    }
    line.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [dimensions], "Metrics": definitions}]
        }),
    );
    Value::Object(line)
}

fn write_line(line: &Value) {
    // One write of the whole line, so it is one CloudWatch log event.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn stack() -> Option<String> {
    std::env::var("STACK_NAME").ok().filter(|s| !s.trim().is_empty())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// How a run ended: with its report (and the error it fails with, if any),
/// or with an error before it had a report (a bad event, an unreadable bucket).
pub type Ran<R, E> = Result<(R, Option<E>), E>;

/// Ends the run: logs its report line, the only writer of it, then returns
/// the report, or the error with the report in the log. A run that failed
/// before it had a report still logs its line, with the error and `RunFailed`.
pub fn conclude<R: Serialize + Measured, E: LambdaFailure>(function: &str, ran: Ran<R, E>) -> Result<R, E> {
    match ran {
        Ok((report, error)) => {
            let value = serde_json::to_value(&report).unwrap_or_else(|err| {
                tracing::error!(function, error = %err, "report could not be serialized");
                Value::Null
            });
            log_report(function, Some((value, report.metrics())), error.as_ref());
            error.map_or(Ok(report), Err)
        }
        Err(error) => {
            log_report(function, None, Some(&error));
            Err(error)
        }
    }
}

fn log_report<E: LambdaFailure>(function: &str, report: Option<(Value, Vec<Metric>)>, error: Option<&E>) {
    let (value, metrics) = report.map_or((None, Vec::new()), |(value, metrics)| (Some(value), metrics));
    let failure = error.map(|e| (e.error_type(), e.to_string()));
    write_line(&report_line(function, stack().as_deref(), value, failure, &metrics, now_ms()));
}

/// An error with a stable `error_type`, for alarms and retries to match on.
pub trait LambdaFailure: std::fmt::Display {
    fn error_type(&self) -> &'static str;

    fn diagnostic(&self) -> Diagnostic {
        Diagnostic { error_type: self.error_type().to_owned(), error_message: self.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_line_is_an_object_with_its_metrics_in_emf() {
        let metrics =
            [Metric::count("ObjectsExpired", 12), Metric { name: "BytesFreed", value: 2048.0, unit: Unit::Bytes }];
        let line = report_line("expire-logs", Some("prod"), Some(json!({"complete": true})), None, &metrics, 1_700_000);
        assert_eq!(line["report"], json!({"complete": true}), "the report is an object, not a string");
        assert_eq!((line["ObjectsExpired"].as_f64(), line["BytesFreed"].as_f64()), (Some(12.0), Some(2048.0)));
        assert_eq!(line["RunFailed"].as_f64(), Some(0.0));
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(directive["Dimensions"], json!([["Function", "Stack"]]));
        assert_eq!((line["Function"].as_str(), line["Stack"].as_str()), (Some("expire-logs"), Some("prod")));
        let names: Vec<&str> =
            directive["Metrics"].as_array().unwrap().iter().map(|m| m["Name"].as_str().unwrap()).collect();
        assert_eq!(names, ["ObjectsExpired", "BytesFreed", "RunFailed"]);
        assert_eq!(line["_aws"]["Timestamp"], 1_700_000);
    }

    #[test]
    fn a_failed_run_says_so_and_a_run_outside_a_stack_has_only_the_function_dimension() {
        let line = report_line("deploy-on-push", None, None, Some(("InvalidEvent", "bad".into())), &[], 1);
        assert_eq!(line["RunFailed"].as_f64(), Some(1.0));
        assert_eq!(line["level"], "ERROR");
        assert_eq!(line["error"], json!({"errorType": "InvalidEvent", "errorMessage": "bad"}));
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Function"]]));
        assert!(line.get("Stack").is_none() && line.get("report").is_none());
    }
}
