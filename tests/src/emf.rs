//! CloudWatch's Embedded Metric Format, checked as its specification states
//! it: the root is an object with `_aws` (`Timestamp`, a number of ms since
//! the epoch; `CloudWatchMetrics`, an array of metric directives), each
//! directive has a `Namespace`, `Dimensions` (arrays of at most 30 names,
//! each a string member of the root) and at most 100 `Metrics` (each a
//! `Name` that is a member of the root holding a number or an array of at
//! most 100 numbers, and an optional `Unit` CloudWatch knows, and an optional
//! `StorageResolution` of 1 or 60); the event is at most 1 MB.

use serde_json::Value;

const UNITS: [&str; 27] = [
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// Why the log line is not a valid EMF document, or `Ok`.
pub fn validate(line: &str) -> Result<Value, String> {
    if line.len() > 1024 * 1024 {
        return Err(format!("the event is {} bytes; EMF takes at most 1 MB", line.len()));
    }
    let root: Value = serde_json::from_str(line).map_err(|e| format!("not one JSON object: {e}"))?;
    let object = root.as_object().ok_or("the root is not an object")?;
    let aws = object.get("_aws").and_then(Value::as_object).ok_or("no _aws object")?;
    let timestamp = aws.get("Timestamp").and_then(Value::as_i64).ok_or("_aws.Timestamp is not a whole number")?;
    if timestamp < 1_000_000_000_000 {
        return Err(format!("_aws.Timestamp {timestamp} is not milliseconds since the epoch"));
    }
    let directives = aws.get("CloudWatchMetrics").and_then(Value::as_array).ok_or("no _aws.CloudWatchMetrics array")?;
    for (i, directive) in directives.iter().enumerate() {
        let at = format!("CloudWatchMetrics[{i}]");
        let namespace = directive["Namespace"].as_str().ok_or(format!("{at}.Namespace is not a string"))?;
        if namespace.is_empty() || namespace.len() > 1024 {
            return Err(format!("{at}.Namespace {namespace:?} is not 1 to 1024 characters"));
        }
        let dimension_sets = directive["Dimensions"].as_array().ok_or(format!("{at}.Dimensions is not an array"))?;
        for set in dimension_sets {
            let names = set.as_array().ok_or(format!("{at}.Dimensions holds a non-array"))?;
            if names.len() > 30 {
                return Err(format!("{at}: a dimension set of {} names; at most 30", names.len()));
            }
            for name in names {
                let name = name.as_str().ok_or(format!("{at}: a dimension name is not a string"))?;
                if !object.get(name).is_some_and(Value::is_string) {
                    return Err(format!("{at}: dimension {name} is not a string member of the root"));
                }
            }
        }
        let metrics = directive["Metrics"].as_array().ok_or(format!("{at}.Metrics is not an array"))?;
        if metrics.len() > 100 {
            return Err(format!("{at}: {} metrics; at most 100", metrics.len()));
        }
        for metric in metrics {
            let name = metric["Name"].as_str().ok_or(format!("{at}: a metric without a Name"))?;
            if name.is_empty() || name.len() > 1024 {
                return Err(format!("{at}: metric name {name:?} is not 1 to 1024 characters"));
            }
            if let Some(unit) = metric.get("Unit")
                && !unit.as_str().is_some_and(|u| UNITS.contains(&u))
            {
                return Err(format!("{at}: {name} has unit {unit}, which CloudWatch does not know"));
            }
            if let Some(resolution) = metric.get("StorageResolution")
                && !matches!(resolution.as_i64(), Some(1 | 60))
            {
                return Err(format!("{at}: {name} has StorageResolution {resolution}; 1 or 60"));
            }
            let numbers = match object.get(name) {
                Some(Value::Number(_)) => true,
                Some(Value::Array(values)) => values.len() <= 100 && values.iter().all(Value::is_number),
                _ => false,
            };
            if !numbers {
                return Err(format!("{at}: metric {name} is not a number (or up to 100 numbers) in the root"));
            }
        }
    }
    Ok(root)
}

/// Every report line a function process wrote (lines with `_aws`), checked.
pub fn report_lines(output: &str) -> Vec<Value> {
    output
        .lines()
        .filter(|line| line.contains("\"_aws\""))
        .map(|line| validate(line).unwrap_or_else(|why| panic!("not valid EMF: {why}\n{line}")))
        .collect()
}

/// The value of each named metric on a report line.
pub fn metric_values(line: &Value, names: &[&str]) -> Vec<f64> {
    let defined: Vec<&str> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["Name"].as_str())
        .collect();
    names
        .iter()
        .map(|name| {
            assert!(defined.contains(name), "{name} is not among the line's metrics {defined:?}");
            line[*name].as_f64().unwrap_or(f64::NAN)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_specification_refuses_is_refused() {
        let good = r#"{"_aws":{"Timestamp":1764201600000,"CloudWatchMetrics":[{"Namespace":"nightshift","Dimensions":[["Function"]],"Metrics":[{"Name":"RunFailed","Unit":"Count"}]}]},"Function":"f","RunFailed":0}"#;
        assert!(validate(good).is_ok());
        let table = [
            (good.replace("1764201600000", "1764201600"), "milliseconds"),
            (good.replace("\"Count\"", "\"Things\""), "does not know"),
            (good.replace("\"Function\":\"f\",", ""), "dimension Function"),
            (good.replace("\"RunFailed\":0", "\"RunFailed\":\"0\""), "metric RunFailed"),
            (good.replace("\"Namespace\":\"nightshift\",", ""), "Namespace"),
            ("[]".to_owned(), "root is not an object"),
        ];
        for (line, why) in table {
            let err = validate(&line).unwrap_err();
            assert!(err.contains(why), "{line}: {err}");
        }
    }
}
