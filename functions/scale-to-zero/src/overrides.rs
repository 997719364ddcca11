//! A scale group woken or put to sleep by hand for a while (`nightshift wake|sleep
//! <group> --for 3h`): `{"override": {"group", "state": "awake" | "asleep", "minutes", "by"}}`.
//! It is kept in the state table (`override#<group>`), so every tick respects
//! it until it ends, then the awake windows rule again.

use chrono::{DateTime, Utc};
use nightshift::state::Override;
use serde::Serialize;
use serde_json::Value;

/// How long an override lasts when `minutes` is not given: one hour.
pub const DEFAULT_MINUTES: i64 = 60;
/// The longest override: 7 days.
pub const MAX_MINUTES: i64 = 10_080;

/// An override asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideRequest {
    pub group: String,
    pub awake: bool,
    pub minutes: i64,
    pub by: String,
}

/// Reads `{"override": {...}}`; `Ok(None)` for any other event.
pub fn parse(payload: &Value) -> Result<Option<OverrideRequest>, String> {
    let Some(asked) = payload.get("override") else { return Ok(None) };
    let text = |name: &str| nightshift::config::field(asked, name);
    let group = text("group").ok_or("override.group is missing: the scale group (SCALE_GROUP)")?;
    let awake = match text("state") {
        Some("awake") => true,
        Some("asleep") => false,
        other => return Err(format!("override.state is {other:?}, not \"awake\" or \"asleep\"")),
    };
    let minutes = match asked.get("minutes") {
        None | Some(Value::Null) => DEFAULT_MINUTES,
        Some(m) => m
            .as_i64()
            .filter(|m| (1..=MAX_MINUTES).contains(m))
            .ok_or_else(|| format!("override.minutes is {m}, not a whole number from 1 to {MAX_MINUTES}"))?,
    };
    Ok(Some(OverrideRequest { group: group.to_owned(), awake, minutes, by: nightshift::config::asked_by(asked) }))
}

/// What rules the group now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Its awake windows (no override, or it has ended).
    Windows,
    /// Awake by hand: needed, whatever the windows, ingress and runs say.
    Awake(String),
    /// Asleep by hand: the windows do not count (ingress and runs still wake it).
    Asleep(String),
}

pub fn rule(found: Option<&Override>, now: DateTime<Utc>) -> Rule {
    match found {
        Some(o) if o.in_force(now) && o.awake => Rule::Awake(format!("woken by hand by {} until {}", o.by, o.until)),
        Some(o) if o.in_force(now) => {
            Rule::Asleep(format!("put to sleep by hand by {} until {}: the awake windows do not count", o.by, o.until))
        }
        _ => Rule::Windows,
    }
}

/// What an override by hand came to, in the report (`override`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverrideReport {
    pub group: String,
    /// `awake` or `asleep`.
    pub state: &'static str,
    pub until: String,
    pub by: String,
    /// `set`, `already` (the same override stood), or `would set` (`DRY_RUN`).
    pub result: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn an_override_names_its_group_and_state_and_lasts_an_hour_unless_told() {
        let asked =
            parse(&json!({"override": {"group": "dagster", "state": "awake", "by": "alice"}})).unwrap().unwrap();
        assert_eq!(asked, OverrideRequest { group: "dagster".into(), awake: true, minutes: 60, by: "alice".into() });
        let asked =
            parse(&json!({"override": {"group": "dagster", "state": "asleep", "minutes": 180}})).unwrap().unwrap();
        assert_eq!((asked.awake, asked.minutes, asked.by.as_str()), (false, 180, "by hand"));
        assert_eq!(parse(&json!({"detail-type": "Scheduled Event"})), Ok(None));
        for (payload, part) in [
            (json!({"override": {"state": "awake"}}), "override.group is missing"),
            (json!({"override": {"group": "g", "state": "up"}}), "override.state is Some(\"up\")"),
            (json!({"override": {"group": "g", "state": "awake", "minutes": 0}}), "override.minutes is 0"),
            (json!({"override": {"group": "g", "state": "awake", "minutes": "2h"}}), "override.minutes is \"2h\""),
        ] {
            assert!(parse(&payload).unwrap_err().contains(part), "{payload}");
        }
    }

    #[test]
    fn an_override_rules_until_its_end_then_the_windows_do() {
        let o = |awake| Override {
            group: "dagster".into(),
            awake,
            by: "alice".into(),
            since: "2026-12-06T10:00:00Z".into(),
            until: "2026-12-06T13:00:00Z".into(),
        };
        let (during, after) = (at("2026-12-06T12:59:59Z"), at("2026-12-06T13:00:00Z"));
        assert_eq!(
            rule(Some(&o(true)), during),
            Rule::Awake("woken by hand by alice until 2026-12-06T13:00:00Z".into())
        );
        assert!(matches!(rule(Some(&o(false)), during), Rule::Asleep(why) if why.contains("windows do not count")));
        assert_eq!(rule(Some(&o(true)), after), Rule::Windows);
        assert_eq!(rule(None, during), Rule::Windows);
    }
}
