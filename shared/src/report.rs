//! The JSON report every handler returns, and the error it fails with.

use lambda_runtime::Diagnostic;
use serde::Serialize;

/// Logs the report as one structured event; the handler then returns it.
pub fn emit<R: Serialize>(function: &str, report: &R) {
    match serde_json::to_string(report) {
        Ok(json) => tracing::info!(function, report = %json, "report"),
        Err(err) => tracing::error!(function, error = %err, "report could not be serialized"),
    }
}

/// An error with a stable `error_type`, for alarms and retries to match on.
pub trait LambdaFailure: std::fmt::Display {
    fn error_type(&self) -> &'static str;

    fn diagnostic(&self) -> Diagnostic {
        Diagnostic { error_type: self.error_type().to_owned(), error_message: self.to_string() }
    }
}
