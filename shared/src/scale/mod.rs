//! The scale group: the ECS services tagged `nightshift:scale-group=<group>`,
//! and the one decision `scale-to-zero` and `scale-on-ingress` share: is the
//! group needed now, and what does sleeping or waking it take.

pub mod aws;
pub mod plan;

use chrono::Duration;

use crate::config::{self, ConfigError, Vars};
pub use crate::window::WeeklyWindows;
pub use plan::{Decision, Member, Need, Step};

pub const SCALE_GROUP_TAG: &str = "nightshift:scale-group";
pub const AWAKE_COUNT_TAG: &str = "nightshift:awake-count";
pub const WAKE_ORDER_TAG: &str = "nightshift:wake-order";
pub const LAST_ACTIVITY_TAG: &str = "nightshift:last-activity";
/// The scalable target's capacity while awake, kept on the service while it sleeps.
pub const MIN_CAPACITY_TAG: &str = "nightshift:min-capacity";
pub const MAX_CAPACITY_TAG: &str = "nightshift:max-capacity";

#[derive(Debug, Clone, PartialEq)]
pub struct ScaleConfig {
    /// `SCALE_GROUP`.
    pub group: String,
    /// `CLUSTERS`.
    pub clusters: Vec<String>,
    /// `IDLE_MINUTES`.
    pub idle_minutes: u32,
    /// `AWAKE_SCHEDULE` in `TIMEZONE`.
    pub schedule: WeeklyWindows,
    /// `INGRESS_PREFIX` (scale-on-ingress); empty for every key.
    pub ingress_prefix: String,
    /// `DRY_RUN`.
    pub dry_run: bool,
}

impl ScaleConfig {
    pub fn from_vars(vars: &impl Vars) -> Result<Self, ConfigError> {
        let clusters = config::list(vars, "CLUSTERS");
        if clusters.is_empty() {
            return Err(ConfigError::new("CLUSTERS", None, "comma-separated ECS cluster names"));
        }
        let timezone = crate::window::timezone_setting(vars)?;
        let schedule_text = config::optional(vars, "AWAKE_SCHEDULE").unwrap_or_default();
        let schedule = WeeklyWindows::parse(&schedule_text, timezone).map_err(|why| {
            ConfigError::new(
                "AWAKE_SCHEDULE",
                Some(&schedule_text),
                format!("windows like \"Mon-Fri 07:00-19:00\", separated by commas: {why}"),
            )
        })?;
        Ok(Self {
            group: config::optional(vars, "SCALE_GROUP").unwrap_or_else(|| "dagster".into()),
            clusters,
            idle_minutes: config::number_in(vars, "IDLE_MINUTES", 1..=10_080, 30)?,
            schedule,
            ingress_prefix: config::optional(vars, "INGRESS_PREFIX").unwrap_or_default(),
            dry_run: config::dry_run(vars)?,
        })
    }

    pub fn idle(&self) -> Duration {
        Duration::minutes(i64::from(self.idle_minutes))
    }
}

/// What both scale functions work with: the configuration, the clients, the clock.
pub struct ScaleGroup {
    pub config: ScaleConfig,
    pub ecs: aws_sdk_ecs::Client,
    pub scaling: aws_sdk_applicationautoscaling::Client,
    pub clock: std::sync::Arc<dyn crate::Clock>,
}

/// A service of the group that was not touched because its tags could not be read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeftAlone {
    pub cluster: String,
    pub service: String,
    pub reason: String,
}

pub fn left_alone(members: &[Member]) -> Vec<LeftAlone> {
    members
        .iter()
        .filter_map(|m| {
            m.problem.as_ref().map(|reason| LeftAlone {
                cluster: m.cluster.clone(),
                service: m.service.clone(),
                reason: reason.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_only_the_clusters() {
        let config = ScaleConfig::from_vars(&[("CLUSTERS", "dagster")]).unwrap();
        assert_eq!((config.group.as_str(), config.idle_minutes), ("dagster", 30));
        assert_eq!(config.schedule.timezone, crate::window::Tz::UTC);
        assert!(config.schedule.windows.is_empty() && config.ingress_prefix.is_empty() && !config.dry_run);
    }

    #[test]
    fn bad_settings_name_the_variable() {
        let table: [(&[(&str, &str)], &str); 5] = [
            (&[], "CLUSTERS is not set"),
            (&[("CLUSTERS", "c"), ("TIMEZONE", "Mars/Olympus")], "TIMEZONE is \"Mars/Olympus\""),
            (&[("CLUSTERS", "c"), ("AWAKE_SCHEDULE", "weekdays")], "AWAKE_SCHEDULE is \"weekdays\""),
            (&[("CLUSTERS", "c"), ("IDLE_MINUTES", "0")], "IDLE_MINUTES is \"0\""),
            (&[("CLUSTERS", "c"), ("DRY_RUN", "no")], "DRY_RUN is \"no\""),
        ];
        for (vars, want) in table {
            let vars: std::collections::HashMap<String, String> =
                vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            let err = ScaleConfig::from_vars(&vars).unwrap_err().to_string();
            assert!(err.starts_with(want), "{err}");
        }
    }
}
