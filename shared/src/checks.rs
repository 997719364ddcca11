//! Where verify-rollout's check suites are kept: one SSM parameter a service,
//! `<CHECKS_PARAMETER_PREFIX><cluster>/<service>`. verify-rollout reads the
//! suite; watch-rollouts asks whether an upstream has one.

use crate::config::{self, ConfigError, Vars};

/// The setting naming the prefix.
pub const CHECKS_PREFIX_VAR: &str = "CHECKS_PARAMETER_PREFIX";
pub const DEFAULT_CHECKS_PREFIX: &str = "/nightshift/checks/";

/// `CHECKS_PARAMETER_PREFIX`: an SSM parameter path that starts and ends with `/`.
pub fn prefix(vars: &impl Vars) -> Result<String, ConfigError> {
    let prefix = config::optional(vars, CHECKS_PREFIX_VAR).unwrap_or_else(|| DEFAULT_CHECKS_PREFIX.into());
    let ok = prefix.starts_with('/')
        && prefix.ends_with('/')
        && prefix.len() <= 1000
        && prefix.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '.' | '-'));
    if ok {
        Ok(prefix)
    } else {
        let expected = "an SSM parameter path that starts and ends with / (default /nightshift/checks/)";
        Err(ConfigError::new(CHECKS_PREFIX_VAR, Some(&prefix), expected))
    }
}

/// The parameter of a service's suite.
pub fn parameter(prefix: &str, cluster: &str, service: &str) -> String {
    format!("{prefix}{cluster}/{service}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_prefix_is_an_ssm_path_and_a_service_has_one_parameter_under_it() {
        let vars = |value: &str| HashMap::from([(CHECKS_PREFIX_VAR.to_owned(), value.to_owned())]);
        assert_eq!(prefix(&HashMap::<String, String>::new()).unwrap(), DEFAULT_CHECKS_PREFIX);
        assert_eq!(prefix(&vars("/team/checks/")).unwrap(), "/team/checks/");
        for wrong in ["team/checks/", "/team/checks", "/team checks/"] {
            assert!(prefix(&vars(wrong)).unwrap_err().to_string().contains(CHECKS_PREFIX_VAR), "{wrong}");
        }
        assert_eq!(parameter(DEFAULT_CHECKS_PREFIX, "shop", "api"), "/nightshift/checks/shop/api");
    }
}
