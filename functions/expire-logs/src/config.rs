//! `expire-logs` configuration, read once at init.

use nightshift::config::{self, ConfigError, Vars};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpireConfig {
    /// `LOG_BUCKET`: the bucket holding the Grafana/Loki logs.
    pub bucket: String,
    /// `LOG_PREFIX`: only keys under it; empty for the whole bucket.
    pub prefix: String,
    /// `RETENTION_DAYS`: 1 to 3650.
    pub retention_days: u32,
    /// `LIFECYCLE`: ensure nightshift's lifecycle rules.
    pub lifecycle: bool,
    /// `SWEEP`: delete expired objects now.
    pub sweep: bool,
    /// `DRY_RUN`: decide and report, change nothing.
    pub dry_run: bool,
}

impl ExpireConfig {
    pub fn from_vars(vars: &impl Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            bucket: config::required(vars, "LOG_BUCKET", "the name of the S3 bucket holding the Grafana logs")?,
            prefix: config::optional(vars, "LOG_PREFIX").unwrap_or_default(),
            retention_days: config::number_in(vars, "RETENTION_DAYS", 1..=3650, 30)?,
            lifecycle: config::flag(vars, "LIFECYCLE", true)?,
            sweep: config::flag(vars, "SWEEP", true)?,
            dry_run: config::dry_run(vars)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_only_the_bucket() {
        let config = ExpireConfig::from_vars(&[("LOG_BUCKET", "grafana-logs")]).unwrap();
        assert_eq!(
            config,
            ExpireConfig {
                bucket: "grafana-logs".into(),
                prefix: String::new(),
                retention_days: 30,
                lifecycle: true,
                sweep: true,
                dry_run: false,
            }
        );
    }

    #[test]
    fn every_setting_is_read() {
        let config = ExpireConfig::from_vars(&[
            ("LOG_BUCKET", "grafana-logs"),
            ("LOG_PREFIX", "loki/"),
            ("RETENTION_DAYS", "7"),
            ("LIFECYCLE", "false"),
            ("SWEEP", "false"),
            ("DRY_RUN", "true"),
        ])
        .unwrap();
        assert_eq!((config.prefix.as_str(), config.retention_days), ("loki/", 7));
        assert!(!config.lifecycle && !config.sweep && config.dry_run);
    }

    #[test]
    fn bad_settings_name_the_variable() {
        let table: [&[(&str, &str)]; 4] = [
            &[("LOG_PREFIX", "loki/")],
            &[("LOG_BUCKET", "b"), ("RETENTION_DAYS", "thirty")],
            &[("LOG_BUCKET", "b"), ("SWEEP", "maybe")],
            &[("LOG_BUCKET", "b"), ("DRY_RUN", "yes")],
        ];
        let want = ["LOG_BUCKET", "RETENTION_DAYS", "SWEEP", "DRY_RUN"];
        for (vars, variable) in table.into_iter().zip(want) {
            let vars: std::collections::HashMap<String, String> =
                vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            let err = ExpireConfig::from_vars(&vars).unwrap_err();
            assert_eq!(err.variable, variable);
        }
    }
}
