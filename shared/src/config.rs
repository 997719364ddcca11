//! Reading configuration from environment variables, once, at init.
//!
//! Every error names the variable, what it held, and the form it expects, so a
//! misconfigured function fails its init with a message an operator can act on.

use std::collections::HashMap;
use std::fmt;
use std::ops::RangeInclusive;

/// Where variables come from: the process environment, or a map in tests.
pub trait Vars {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Vars for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Vars for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl<const N: usize> Vars for [(&str, &str); N] {
    fn var(&self, name: &str) -> Option<String> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: String,
    /// What the variable held; `None` when it was unset or empty.
    pub found: Option<String>,
    pub expected: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.found {
            None => write!(f, "{} is not set; expected {}", self.variable, self.expected),
            Some(found) => write!(f, "{} is {found:?}; expected {}", self.variable, self.expected),
        }
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    pub fn new(variable: &str, found: Option<&str>, expected: impl Into<String>) -> Self {
        Self { variable: variable.to_owned(), found: found.map(str::to_owned), expected: expected.into() }
    }
}

/// The variable's value, trimmed; unset and blank both read as `None`.
pub fn optional(vars: &impl Vars, name: &str) -> Option<String> {
    vars.var(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// The variable's value; an error naming it and `expected` when unset or blank.
pub fn required(vars: &impl Vars, name: &str, expected: &str) -> Result<String, ConfigError> {
    optional(vars, name).ok_or_else(|| ConfigError::new(name, None, expected))
}

/// `true` or `false` (any case); `default` when unset.
pub fn flag(vars: &impl Vars, name: &str, default: bool) -> Result<bool, ConfigError> {
    match optional(vars, name) {
        None => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(ConfigError::new(name, Some(&v), "true or false")),
    }
}

/// A whole number within `range`; `default` when unset.
pub fn number_in(vars: &impl Vars, name: &str, range: RangeInclusive<u32>, default: u32) -> Result<u32, ConfigError> {
    let Some(v) = optional(vars, name) else {
        return Ok(default);
    };
    v.parse::<u32>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
        ConfigError::new(name, Some(&v), format!("a whole number from {} to {}", range.start(), range.end()))
    })
}

/// A comma-separated list with blanks dropped; empty when unset.
pub fn list(vars: &impl Vars, name: &str) -> Vec<String> {
    optional(vars, name)
        .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// A comma list of 12-digit AWS account ids (`REGISTRY_ACCOUNT_IDS`, `PROMOTE_TO_ACCOUNT_IDS`); empty when unset.
pub fn account_ids(vars: &impl Vars, name: &str) -> Result<Vec<String>, ConfigError> {
    let ids = list(vars, name);
    match ids.iter().find(|id| id.len() != 12 || !id.chars().all(|c| c.is_ascii_digit())) {
        Some(bad) => Err(ConfigError::new(
            name,
            optional(vars, name).as_deref(),
            format!("AWS account ids (12 digits) separated by commas; {bad:?} is not one"),
        )),
        None => Ok(ids),
    }
}

/// `DRY_RUN`: decide and report, change nothing. Every function reads it.
pub fn dry_run(vars: &impl Vars) -> Result<bool, ConfigError> {
    flag(vars, "DRY_RUN", false)
}

/// A manual event that asks for this one run to change nothing, as `DRY_RUN`
/// does (`"dryRun": true`, as `nightshift <command> --dry-run` sends it).
pub fn dry_run_asked(payload: &serde_json::Value) -> bool {
    payload.get("dryRun").and_then(serde_json::Value::as_bool) == Some(true)
}

/// A text member of a manual event's object, trimmed; `None` when missing, not a string, or empty.
pub fn field<'a>(asked: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    asked.get(name).and_then(serde_json::Value::as_str).map(str::trim).filter(|t| !t.is_empty())
}

/// Who asks for a manual event (its `by`, as the `nightshift` command puts the caller there), else `by hand`.
pub fn asked_by(asked: &serde_json::Value) -> String {
    field(asked, "by").unwrap_or("by hand").to_owned()
}

/// The function to run an event with: itself, or, when the event asks for a
/// run that changes nothing and it is not dry already, its dry twin (made by
/// `twin`, kept in `slot` for the run).
pub fn dry_if_asked<'a, T>(
    function: &'a T,
    dry_already: bool,
    payload: &serde_json::Value,
    slot: &'a mut Option<T>,
    twin: impl FnOnce(&T) -> T,
) -> &'a T {
    if dry_already || !dry_run_asked(payload) {
        return function;
    }
    slot.insert(twin(function))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_lists_are_twelve_digit_ids_separated_by_commas() {
        assert_eq!(account_ids(&[("A", "111122223333, 444455556666")], "A").unwrap(), ["111122223333", "444455556666"]);
        assert!(account_ids(&[("B", "")], "A").unwrap().is_empty());
        let err = account_ids(&[("A", "111122223333,1234")], "A").unwrap_err().to_string();
        assert_eq!(
            err,
            "A is \"111122223333,1234\"; expected AWS account ids (12 digits) separated by commas; \"1234\" is not one"
        );
    }

    #[test]
    fn required_names_the_variable_when_missing_or_blank() {
        for vars in [[("OTHER", "x")], [("LOG_BUCKET", "  ")]] {
            let err = required(&vars, "LOG_BUCKET", "an S3 bucket name").unwrap_err();
            assert_eq!(err.to_string(), "LOG_BUCKET is not set; expected an S3 bucket name");
        }
        assert_eq!(required(&[("LOG_BUCKET", " logs ")], "LOG_BUCKET", "x").unwrap(), "logs");
    }

    #[test]
    fn flag_reads_true_and_false_in_any_case_and_rejects_the_rest() {
        let table = [
            ("true", Ok(true)),
            ("TRUE", Ok(true)),
            ("False", Ok(false)),
            ("", Ok(true)),
            ("yes", Err("SWEEP is \"yes\"; expected true or false")),
            ("1", Err("SWEEP is \"1\"; expected true or false")),
        ];
        for (given, want) in table {
            let got = flag(&[("SWEEP", given)], "SWEEP", true).map_err(|e| e.to_string());
            assert_eq!(got, want.map_err(str::to_owned), "SWEEP={given:?}");
        }
    }

    #[test]
    fn number_in_enforces_the_range_and_the_form() {
        let expected = "expected a whole number from 1 to 3650";
        let table = [
            ("30", Ok(30)),
            ("1", Ok(1)),
            ("3650", Ok(3650)),
            ("", Ok(30)),
            ("0", Err(format!("RETENTION_DAYS is \"0\"; {expected}"))),
            ("3651", Err(format!("RETENTION_DAYS is \"3651\"; {expected}"))),
            ("-5", Err(format!("RETENTION_DAYS is \"-5\"; {expected}"))),
            ("30d", Err(format!("RETENTION_DAYS is \"30d\"; {expected}"))),
        ];
        for (given, want) in table {
            let got =
                number_in(&[("RETENTION_DAYS", given)], "RETENTION_DAYS", 1..=3650, 30).map_err(|e| e.to_string());
            assert_eq!(got, want, "RETENTION_DAYS={given:?}");
        }
    }

    #[test]
    fn list_splits_on_commas_and_drops_blanks() {
        assert_eq!(list(&[("CLUSTERS", " a, b ,,c ")], "CLUSTERS"), ["a", "b", "c"]);
        assert!(list(&[("CLUSTERS", " ")], "CLUSTERS").is_empty());
    }
}
