//! A check suite: what a service's new revision must answer before it counts
//! as verified, as the user declares it in SSM
//! (`<CHECKS_PARAMETER_PREFIX><cluster>/<service>`), and the pure judgement
//! of what it answered. No I/O here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The default `samples`: each request sent this many times.
pub const DEFAULT_SAMPLES: u32 = 3;
pub const DEFAULT_INTERVAL_SECONDS: u32 = 2;
const MAX_SAMPLES: u32 = 100;
const MAX_INTERVAL_SECONDS: u32 = 300;
/// Two hours: a longer bake is a typo (and outlasts CodeDeploy's one-hour hook).
const MAX_BAKE_MINUTES: u32 = 120;
const MAX_REQUESTS: usize = 20;
/// CloudWatch's DescribeAlarms takes 100 names; a suite needs far fewer.
const MAX_ALARMS: usize = 20;
/// The longest excerpt of an answer a notice or report carries.
pub const EXCERPT_CHARS: usize = 120;
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
const PLACEHOLDERS: [&str; 3] = ["digest", "tag", "revision"];

/// The suite as written; see [`Suite::parse`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteText {
    target: String,
    #[serde(default)]
    samples: Option<u32>,
    #[serde(default)]
    interval_seconds: Option<u32>,
    #[serde(default)]
    pass_ratio: Option<f64>,
    #[serde(default)]
    bake_minutes: Option<u32>,
    requests: Vec<Check>,
    #[serde(default)]
    alarms: Vec<String>,
}

/// One request of a suite and what its answer must hold.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub name: String,
    #[serde(default = "get")]
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Sent as is when a string, else as JSON.
    #[serde(default)]
    pub body: Option<Value>,
    /// The status the answer must have; any 2xx when absent.
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub max_ms: Option<u64>,
    /// A substring the answer's body must hold.
    #[serde(default)]
    pub contains: Option<String>,
    /// JSON pointer -> the value the answer's JSON body must hold there.
    #[serde(default)]
    pub json: BTreeMap<String, Value>,
}

fn get() -> String {
    "GET".into()
}

/// A suite that parsed and holds together.
#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    /// Base URL, http or https, without a trailing `/`.
    pub target: String,
    pub samples: u32,
    pub interval_seconds: u32,
    pub pass_ratio: f64,
    pub bake_minutes: u32,
    pub requests: Vec<Check>,
    pub alarms: Vec<String>,
}

/// The new revision's values, which `${digest}`, `${tag}` and `${revision}` stand for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionValues {
    /// The digest of the revision's first container pinned by digest.
    pub digest: String,
    /// The tag that container was deployed from, when known.
    pub tag: String,
    /// `<family>:<revision>` of the task definition.
    pub revision: String,
}

impl Suite {
    /// Parses the suite held in `parameter`; `Err` names the parameter and says what is wrong.
    pub fn parse(parameter: &str, text: &str) -> Result<Self, String> {
        let refused = |why: String| format!("the check suite {parameter} is refused: {why}");
        let written: SuiteText = serde_json::from_str(text).map_err(|e| refused(e.to_string()))?;
        Self::check(written).map_err(refused)
    }

    fn check(written: SuiteText) -> Result<Self, String> {
        let target = written.target.trim().trim_end_matches('/').to_owned();
        let scheme_ok = target.starts_with("http://") || target.starts_with("https://");
        let uri = placeholders_as_text(&target).parse::<http::Uri>().ok();
        if !scheme_ok || uri.as_ref().and_then(|u| u.host()).is_none_or(str::is_empty) {
            return Err(format!("target {:?} is not an http or https URL with a host", written.target));
        }
        if uri.is_some_and(|u| u.query().is_some()) {
            return Err(format!("target {:?} has a query; put it in each request's path", written.target));
        }
        let samples = written.samples.unwrap_or(DEFAULT_SAMPLES);
        if !(1..=MAX_SAMPLES).contains(&samples) {
            return Err(format!("samples is {samples}, not 1 to {MAX_SAMPLES}"));
        }
        let interval_seconds = written.interval_seconds.unwrap_or(DEFAULT_INTERVAL_SECONDS);
        if !(1..=MAX_INTERVAL_SECONDS).contains(&interval_seconds) {
            return Err(format!("interval_seconds is {interval_seconds}, not 1 to {MAX_INTERVAL_SECONDS}"));
        }
        let pass_ratio = written.pass_ratio.unwrap_or(1.0);
        if !(pass_ratio > 0.0 && pass_ratio <= 1.0) {
            return Err(format!("pass_ratio is {pass_ratio}, not more than 0 and at most 1"));
        }
        let bake_minutes = written.bake_minutes.unwrap_or(0);
        if bake_minutes > MAX_BAKE_MINUTES {
            return Err(format!("bake_minutes is {bake_minutes}, not 0 to {MAX_BAKE_MINUTES}"));
        }
        if written.requests.is_empty() {
            return Err("it has no requests: a suite checks at least one".into());
        }
        if written.requests.len() > MAX_REQUESTS {
            return Err(format!("it has {} requests, more than {MAX_REQUESTS}", written.requests.len()));
        }
        let mut names: Vec<&str> = Vec::new();
        for check in &written.requests {
            let problem = check_problem(check);
            if let Some(why) = problem {
                return Err(format!("request {:?}: {why}", check.name));
            }
            if names.contains(&check.name.as_str()) {
                return Err(format!("two requests are named {:?}", check.name));
            }
            names.push(&check.name);
        }
        if written.alarms.len() > MAX_ALARMS {
            return Err(format!("it names {} alarms, more than {MAX_ALARMS}", written.alarms.len()));
        }
        if let Some(bad) = written.alarms.iter().find(|a| a.trim().is_empty() || a.len() > 255) {
            return Err(format!("alarm {bad:?} is not an alarm name (1 to 255 characters)"));
        }
        for text in std::iter::once(target.as_str()).chain(written.requests.iter().flat_map(Check::texts)) {
            unknown_placeholder(text)?;
        }
        Ok(Self {
            target,
            samples,
            interval_seconds,
            pass_ratio,
            bake_minutes,
            requests: written.requests,
            alarms: written.alarms,
        })
    }

    /// How long the checks and the bake last at the least, in seconds.
    pub fn duration_seconds(&self) -> u64 {
        u64::from(self.samples - 1) * u64::from(self.interval_seconds) + u64::from(self.bake_minutes) * 60
    }

    /// The suite with `${digest}`, `${tag}` and `${revision}` replaced by the revision's values.
    pub fn for_revision(&self, values: &RevisionValues) -> Self {
        let mut suite = self.clone();
        suite.target = substitute(&suite.target, values);
        for check in &mut suite.requests {
            check.path = substitute(&check.path, values);
            for value in check.headers.values_mut() {
                *value = substitute(value, values);
            }
            if let Some(body) = &mut check.body {
                substitute_json(body, values);
            }
            if let Some(contains) = &mut check.contains {
                *contains = substitute(contains, values);
            }
            for expected in check.json.values_mut() {
                substitute_json(expected, values);
            }
        }
        suite
    }
}

impl Check {
    /// Every text of the check a placeholder may stand in.
    fn texts(&self) -> Vec<&str> {
        let mut texts = vec![self.path.as_str()];
        texts.extend(self.headers.values().map(String::as_str));
        texts.extend(self.contains.as_deref());
        let mut json = Vec::new();
        json.extend(self.body.iter());
        json.extend(self.json.values());
        while let Some(value) = json.pop() {
            match value {
                Value::String(text) => texts.push(text),
                Value::Array(items) => json.extend(items),
                Value::Object(fields) => json.extend(fields.values()),
                _ => {}
            }
        }
        texts
    }
}

fn check_problem(check: &Check) -> Option<String> {
    if check.name.trim().is_empty() || check.name.len() > 64 {
        return Some("a request's name is 1 to 64 characters".into());
    }
    if !METHODS.contains(&check.method.as_str()) {
        return Some(format!("method {:?} is not one of {}", check.method, METHODS.join(", ")));
    }
    if !check.path.starts_with('/') {
        return Some(format!("path {:?} does not start with /", check.path));
    }
    if placeholders_as_text(&check.path).parse::<http::uri::PathAndQuery>().is_err() {
        return Some(format!("path {:?} is not a URL path", check.path));
    }
    for (name, value) in &check.headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Some(format!("header name {name:?} is not an HTTP header name"));
        }
        if http::HeaderValue::from_str(value).is_err() {
            return Some(format!("header {name:?} has a value HTTP cannot carry"));
        }
    }
    if let Some(status) = check.status
        && !(100..=599).contains(&status)
    {
        return Some(format!("status {status} is not an HTTP status"));
    }
    if let Some(pointer) = check.json.keys().find(|p| !p.is_empty() && !p.starts_with('/')) {
        return Some(format!("json key {pointer:?} is not a JSON pointer (/a/b, or \"\" for the whole body)"));
    }
    if check.body.is_some() && matches!(check.method.as_str(), "GET" | "HEAD") {
        return Some(format!("a {} request has no body", check.method));
    }
    None
}

/// `${name}` placeholders as plain letters, for checking a URL's shape before values are known.
fn placeholders_as_text(text: &str) -> String {
    text.replace("${", "x").replace('}', "x")
}

fn unknown_placeholder(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("{text:?} opens a placeholder ${{ and never closes it"));
        };
        let name = &after[..end];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "{text:?} names the placeholder ${{{name}}}; there are ${{digest}}, ${{tag}}, ${{revision}}"
            ));
        }
        rest = &after[end + 1..];
    }
    Ok(())
}

pub fn substitute(text: &str, values: &RevisionValues) -> String {
    text.replace("${digest}", &values.digest).replace("${tag}", &values.tag).replace("${revision}", &values.revision)
}

fn substitute_json(value: &mut Value, values: &RevisionValues) {
    match value {
        Value::String(text) => *text = substitute(text, values),
        Value::Array(items) => items.iter_mut().for_each(|v| substitute_json(v, values)),
        Value::Object(fields) => fields.values_mut().for_each(|v| substitute_json(v, values)),
        _ => {}
    }
}

/// What one request answered, or why it got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Got { status: u16, ms: u64, body: String },
    NoAnswer(String),
}

/// Whether a sample passes: `Err` says the first expectation it missed.
pub fn sample_passes(check: &Check, answer: &Answer) -> Result<(), String> {
    let (status, ms, body) = match answer {
        Answer::Got { status, ms, body } => (*status, *ms, body),
        Answer::NoAnswer(why) => return Err(why.clone()),
    };
    match check.status {
        Some(want) if status != want => return Err(format!("HTTP {status}, not {want}")),
        None if !(200..300).contains(&status) => return Err(format!("HTTP {status}, not 2xx")),
        _ => {}
    }
    if let Some(max) = check.max_ms
        && ms > max
    {
        return Err(format!("answered in {ms} ms, more than {max} ms"));
    }
    if let Some(want) = &check.contains
        && !body.contains(want.as_str())
    {
        return Err(format!("the body does not contain {want:?}"));
    }
    if !check.json.is_empty() {
        let Ok(parsed) = serde_json::from_str::<Value>(body) else {
            return Err("the body is not JSON".into());
        };
        for (pointer, want) in &check.json {
            match parsed.pointer(pointer) {
                Some(found) if found == want => {}
                Some(found) => return Err(format!("{pointer} is {found}, not {want}")),
                None => return Err(format!("the body has nothing at {pointer}")),
            }
        }
    }
    Ok(())
}

/// One request's samples so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestTally {
    pub name: String,
    pub passed: u32,
    pub sent: u32,
    /// The first failure: why, and a short excerpt of what was answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excerpt: Option<String>,
}

/// The checks' progress: kept between invocations of an ECS lifecycle hook
/// (in its `hookDetails`), or within one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// When the first round was sent (epoch seconds).
    pub started: i64,
    /// Rounds sent: each sends every request once.
    pub rounds: u32,
    /// When the checks (the `samples` rounds) ended and the bake began (epoch seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks_ended: Option<i64>,
    pub requests: Vec<RequestTally>,
    /// Alarms seen in ALARM so far.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alarms: Vec<String>,
}

impl Tally {
    /// Adds one round's answers (in the suite's order), at `now`.
    pub fn add_round(&mut self, suite: &Suite, answers: &[Answer], secrets: &[&str], now: i64) {
        if self.rounds == 0 {
            self.started = now;
            self.requests = suite
                .requests
                .iter()
                .map(|c| RequestTally { name: c.name.clone(), ..RequestTally::default() })
                .collect();
        }
        for ((check, answer), tally) in suite.requests.iter().zip(answers).zip(&mut self.requests) {
            tally.sent += 1;
            match sample_passes(check, answer) {
                Ok(()) => tally.passed += 1,
                Err(why) if tally.failure.is_none() => {
                    tally.failure = Some(why);
                    tally.excerpt = match answer {
                        Answer::Got { body, .. } if !body.is_empty() => Some(excerpt(body, secrets)),
                        _ => None,
                    };
                }
                Err(_) => {}
            }
        }
        self.rounds += 1;
        if self.rounds == suite.samples {
            self.checks_ended = Some(now);
        }
    }

    /// Notes alarms found in ALARM.
    pub fn add_alarms(&mut self, fired: impl IntoIterator<Item = String>) {
        for alarm in fired {
            if !self.alarms.contains(&alarm) {
                self.alarms.push(alarm);
            }
        }
    }
}

/// A short excerpt of an answer, with every secret the request carried (its
/// header values) blanked out: a notice never repeats one.
pub fn excerpt(body: &str, secrets: &[&str]) -> String {
    let mut text: String = body.chars().take(EXCERPT_CHARS * 4).collect();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        text = text.replace(secret, "***");
    }
    let mut short: String = text.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(EXCERPT_CHARS).collect();
    if short.chars().count() == EXCERPT_CHARS {
        short.push('…');
    }
    short
}

/// What to do next with a suite's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Send a round after this many seconds.
    Round { after: u64 },
    /// The last round of the bake has been sent: wait this many seconds for it to end, then judge.
    Wait { after: u64 },
    /// Checks and bake are over (or an alarm fired, which nothing can undo): judge.
    Judge,
}

/// The next step at `now`: the `samples` rounds `interval_seconds` apart,
/// then rounds at the same pace through the bake, then the verdict. Alarms
/// found in ALARM end it at once: nothing can pass it any more.
pub fn next(suite: &Suite, tally: &Tally, now: i64) -> Next {
    if !tally.alarms.is_empty() {
        return Next::Judge;
    }
    if tally.rounds == 0 {
        return Next::Round { after: 0 };
    }
    let due = tally.started + i64::from(tally.rounds) * i64::from(suite.interval_seconds);
    let until = |at: i64| u64::try_from(at - now).unwrap_or(0);
    let Some(ended) = tally.checks_ended else {
        return Next::Round { after: until(due) };
    };
    let bake_ends = ended + i64::from(suite.bake_minutes) * 60;
    if now >= bake_ends {
        Next::Judge
    } else if due < bake_ends {
        Next::Round { after: until(due) }
    } else {
        Next::Wait { after: until(bake_ends) }
    }
}

/// A suite's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub passed: bool,
    /// One line: what passed or, first, what failed.
    pub why: String,
    /// Each request that failed its share: "`name`: passed 7 of 10 (HTTP 500, not 2xx)".
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    /// A short excerpt of the first failing answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub excerpt: Option<String>,
}

impl Verdict {
    /// A suite that could not be read or run: failed, never passed.
    pub fn failed(why: impl Into<String>) -> Self {
        let why = why.into();
        Self { passed: false, why: format!("failed: {why}"), failures: vec![why], excerpt: None }
    }
}

/// Judges the checks: each request's passing share at least `pass_ratio`, and no alarm in ALARM.
pub fn judge(suite: &Suite, tally: &Tally) -> Verdict {
    let mut failures = Vec::new();
    let mut excerpt = None;
    for request in &tally.requests {
        let share = if request.sent == 0 { 0.0 } else { f64::from(request.passed) / f64::from(request.sent) };
        // A share within rounding of the ratio passes (7 of 10 against 0.7).
        if request.sent == 0 || share + 1e-9 < suite.pass_ratio {
            let why = request.failure.as_deref().unwrap_or("never sent");
            failures.push(format!("{}: passed {} of {} ({why})", request.name, request.passed, request.sent));
            if excerpt.is_none() {
                excerpt.clone_from(&request.excerpt);
            }
        }
    }
    for alarm in &tally.alarms {
        failures.push(format!("alarm {alarm} was in ALARM"));
    }
    if tally.requests.is_empty() && tally.alarms.is_empty() {
        failures.push("no request was sent".into());
    }
    if failures.is_empty() {
        let sent: u32 = tally.requests.iter().map(|r| r.sent).sum();
        let baked =
            if suite.bake_minutes > 0 { format!(", baked {} minutes", suite.bake_minutes) } else { String::new() };
        let alarms = if suite.alarms.is_empty() {
            String::new()
        } else {
            format!(", no alarm of {} in ALARM", suite.alarms.len())
        };
        return Verdict {
            passed: true,
            why: format!("{} requests passed ({sent} samples){baked}{alarms}", tally.requests.len()),
            failures,
            excerpt: None,
        };
    }
    Verdict { passed: false, why: format!("failed: {}", failures[0]), failures, excerpt }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EXAMPLE: &str = r#"{"target": "https://test.api.example.com",
      "samples": 10, "interval_seconds": 2, "pass_ratio": 1.0, "bake_minutes": 0,
      "requests": [
        {"name": "health", "path": "/health", "status": 200, "max_ms": 800},
        {"name": "version", "path": "/version", "json": {"/image": "${digest}"}},
        {"name": "search", "method": "POST", "path": "/api/search", "headers": {"content-type": "application/json"},
         "body": {"q": "x"}, "status": 201, "contains": "results"}],
      "alarms": ["api-5xx"]}"#;

    fn values() -> RevisionValues {
        RevisionValues { digest: "sha256:abc".into(), tag: "1.4.2".into(), revision: "api:8".into() }
    }

    #[test]
    fn the_issues_example_parses_with_its_values_and_defaults_fill_the_rest() {
        let suite = Suite::parse("/nightshift/checks/shop/api", EXAMPLE).unwrap();
        assert_eq!((suite.samples, suite.interval_seconds, suite.bake_minutes), (10, 2, 0));
        assert_eq!(suite.requests[0].method, "GET");
        assert_eq!(suite.alarms, ["api-5xx"]);
        assert_eq!(suite.duration_seconds(), 18);
        let small =
            Suite::parse("/p", r#"{"target": "http://127.0.0.1:8080/", "requests": [{"name": "h", "path": "/"}]}"#)
                .unwrap();
        assert_eq!((small.target.as_str(), small.samples, small.interval_seconds), ("http://127.0.0.1:8080", 3, 2));
        assert!((small.pass_ratio - 1.0).abs() < f64::EPSILON);
    }

    #[test]
    fn a_suite_that_cannot_be_trusted_is_refused_with_its_parameter_and_the_reason() {
        let request = r#"[{"name": "h", "path": "/"}]"#;
        let table = [
            ("not json".to_owned(), "expected ident"),
            (format!(r#"{{"target": "http://x", "requests": {request}, "retries": 3}}"#), "unknown field `retries`"),
            (
                r#"{"target": "http://x", "requests": [{"name": "h", "path": "/", "expect": 200}]}"#.into(),
                "unknown field `expect`",
            ),
            (r#"{"target": "http://x", "requests": []}"#.into(), "no requests"),
            (r#"{"target": "http://x"}"#.into(), "missing field `requests`"),
            (format!(r#"{{"target": "ftp://x", "requests": {request}}}"#), "not an http or https URL"),
            (format!(r#"{{"target": "http://x?a=1", "requests": {request}}}"#), "has a query"),
            (format!(r#"{{"target": "http://x", "samples": 0, "requests": {request}}}"#), "samples is 0"),
            (
                format!(r#"{{"target": "http://x", "interval_seconds": 0, "requests": {request}}}"#),
                "interval_seconds is 0",
            ),
            (format!(r#"{{"target": "http://x", "pass_ratio": 0, "requests": {request}}}"#), "pass_ratio is 0"),
            (format!(r#"{{"target": "http://x", "pass_ratio": 1.5, "requests": {request}}}"#), "pass_ratio is 1.5"),
            (format!(r#"{{"target": "http://x", "bake_minutes": 500, "requests": {request}}}"#), "bake_minutes is 500"),
            (
                r#"{"target": "http://x", "requests": [{"name": "h", "path": "health"}]}"#.into(),
                "does not start with /",
            ),
            (
                r#"{"target": "http://x", "requests": [{"name": "h", "method": "FETCH", "path": "/"}]}"#.into(),
                "method \"FETCH\"",
            ),
            (r#"{"target": "http://x", "requests": [{"name": "h", "path": "/", "status": 99}]}"#.into(), "status 99"),
            (
                r#"{"target": "http://x", "requests": [{"name": "h", "path": "/", "json": {"image": 1}}]}"#.into(),
                "not a JSON pointer",
            ),
            (
                r#"{"target": "http://x", "requests": [{"name": "h", "path": "/", "body": "x"}]}"#.into(),
                "a GET request has no body",
            ),
            (
                r#"{"target": "http://x", "requests": [{"name": "h", "path": "/"}, {"name": "h", "path": "/a"}]}"#
                    .into(),
                "two requests are named",
            ),
            (
                r#"{"target": "http://x", "requests": [{"name": "h", "path": "/${image}"}]}"#.into(),
                "placeholder ${image}",
            ),
            (
                r#"{"target": "http://x", "requests": [{"name": "h", "path": "/", "headers": {"a b": "c"}}]}"#.into(),
                "header name",
            ),
            (format!(r#"{{"target": "http://x", "alarms": [""], "requests": {request}}}"#), "not an alarm name"),
        ];
        for (text, want) in table {
            let got = Suite::parse("/nightshift/checks/shop/api", &text).unwrap_err();
            assert!(got.starts_with("the check suite /nightshift/checks/shop/api is refused: "), "{got}");
            assert!(got.contains(want), "{text}: {got}");
        }
    }

    #[test]
    fn placeholders_become_the_revisions_values_everywhere_a_check_has_text() {
        let text = r#"{"target": "http://x", "requests": [{"name": "v", "method": "POST", "path": "/v/${tag}",
            "headers": {"x-revision": "${revision}"}, "body": {"want": ["${digest}"]}, "contains": "${tag}",
            "json": {"/image": "${digest}", "/n": 1}}]}"#;
        let suite = Suite::parse("/p", text).unwrap().for_revision(&values());
        let check = &suite.requests[0];
        assert_eq!(check.path, "/v/1.4.2");
        assert_eq!(check.headers["x-revision"], "api:8");
        assert_eq!(check.body, Some(json!({"want": ["sha256:abc"]})));
        assert_eq!(check.contains.as_deref(), Some("1.4.2"));
        assert_eq!(check.json["/image"], json!("sha256:abc"));
        assert_eq!(check.json["/n"], json!(1));
    }

    #[test]
    fn a_sample_passes_when_every_expectation_it_names_holds() {
        let suite = Suite::parse("/p", EXAMPLE).unwrap().for_revision(&values());
        let [health, version, search] = [&suite.requests[0], &suite.requests[1], &suite.requests[2]];
        let got = |status: u16, ms: u64, body: &str| Answer::Got { status, ms, body: body.into() };
        let table = [
            (health, got(200, 10, ""), Ok(())),
            (health, got(204, 10, ""), Err("HTTP 204, not 200".to_owned())),
            (health, got(200, 900, ""), Err("answered in 900 ms, more than 800 ms".into())),
            (version, got(200, 10, r#"{"image": "sha256:abc"}"#), Ok(())),
            (version, got(299, 10, r#"{"image": "sha256:abc"}"#), Ok(())),
            (version, got(500, 10, r#"{"image": "sha256:abc"}"#), Err("HTTP 500, not 2xx".into())),
            (
                version,
                got(200, 10, r#"{"image": "sha256:old"}"#),
                Err(r#"/image is "sha256:old", not "sha256:abc""#.into()),
            ),
            (version, got(200, 10, r#"{"other": 1}"#), Err("the body has nothing at /image".into())),
            (version, got(200, 10, "<html>"), Err("the body is not JSON".into())),
            (search, got(201, 10, r#"{"results": []}"#), Ok(())),
            (search, got(201, 10, "{}"), Err(r#"the body does not contain "results""#.into())),
            (
                health,
                Answer::NoAnswer("GET http://x/health could not be reached".into()),
                Err("GET http://x/health could not be reached".into()),
            ),
        ];
        for (check, answer, want) in table {
            assert_eq!(sample_passes(check, &answer), want, "{} {answer:?}", check.name);
        }
    }

    fn round(suite: &Suite, tally: &mut Tally, statuses: &[u16], now: i64) {
        let answers: Vec<Answer> = statuses
            .iter()
            .map(|s| Answer::Got { status: *s, ms: 5, body: format!("status {s} token-1234") })
            .collect();
        tally.add_round(suite, &answers, &["token-1234"], now);
    }

    #[test]
    fn the_verdict_needs_each_requests_share_and_no_alarm() {
        let text = r#"{"target": "http://x", "samples": 4, "pass_ratio": 0.75,
            "requests": [{"name": "a", "path": "/a"}, {"name": "b", "path": "/b"}]}"#;
        let suite = Suite::parse("/p", text).unwrap();
        let mut tally = Tally::default();
        for (i, statuses) in [[200, 200], [500, 200], [200, 200], [200, 200]].iter().enumerate() {
            round(&suite, &mut tally, statuses, 100 + 2 * i as i64);
        }
        let verdict = judge(&suite, &tally);
        assert!(verdict.passed, "{verdict:?}");
        assert_eq!(verdict.why, "2 requests passed (8 samples)");

        let mut worse = tally.clone();
        round(&suite, &mut worse, &[503, 200], 110);
        let verdict = judge(&suite, &worse);
        assert!(!verdict.passed);
        assert_eq!(verdict.failures, ["a: passed 3 of 5 (HTTP 500, not 2xx)"]);
        // The excerpt is short and never repeats what the request carried.
        assert_eq!(verdict.excerpt.as_deref(), Some("status 500 ***"));

        let mut alarmed = tally.clone();
        alarmed.add_alarms(["api-5xx".to_owned()]);
        let verdict = judge(&suite, &alarmed);
        assert_eq!(verdict.why, "failed: alarm api-5xx was in ALARM");
        assert_eq!(next(&suite, &alarmed, 0), Next::Judge);
        assert!(!judge(&suite, &Tally::default()).passed, "nothing sent passes nothing");
    }

    #[test]
    fn rounds_are_paced_by_the_interval_then_the_bake_samples_on_until_it_ends() {
        let text = r#"{"target": "http://x", "samples": 2, "interval_seconds": 5, "bake_minutes": 1,
            "requests": [{"name": "a", "path": "/a"}]}"#;
        let suite = Suite::parse("/p", text).unwrap();
        let mut tally = Tally::default();
        assert_eq!(next(&suite, &tally, 1000), Next::Round { after: 0 });
        round(&suite, &mut tally, &[200], 1000);
        assert_eq!(next(&suite, &tally, 1001), Next::Round { after: 4 });
        round(&suite, &mut tally, &[200], 1005);
        assert_eq!(tally.checks_ended, Some(1005));
        // The bake: 60 s from the checks' end, sampled every 5 s.
        assert_eq!(next(&suite, &tally, 1006), Next::Round { after: 4 });
        for at in (1010..1065).step_by(5) {
            round(&suite, &mut tally, &[200], at);
        }
        assert_eq!(next(&suite, &tally, 1061), Next::Wait { after: 4 });
        assert_eq!(next(&suite, &tally, 1065), Next::Judge);
        let verdict = judge(&suite, &tally);
        assert!(verdict.passed);
        assert!(verdict.why.contains("baked 1 minutes"), "{}", verdict.why);
        // The tally survives a trip through an ECS hook's hookDetails.
        let back: Tally = serde_json::from_value(serde_json::to_value(&tally).unwrap()).unwrap();
        assert_eq!(back, tally);
    }
}
