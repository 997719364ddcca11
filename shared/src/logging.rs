//! Logs as Lambda's advanced logging controls expect them, without the regex
//! engine `tracing-subscriber`'s `EnvFilter` brings (with aws-config's loader,
//! about a sixth of a binary): the level from `AWS_LAMBDA_LOG_LEVEL`, else
//! `RUST_LOG` (`level` or `target=level`, comma-separated), else INFO; JSON
//! lines when `AWS_LAMBDA_LOG_FORMAT=JSON`, text otherwise.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

use crate::Vars;

/// Which events are logged, from the environment. A directive that is not
/// `level` or `target=level` is left out; the default level is INFO.
pub fn filter(vars: &impl Vars) -> Targets {
    if let Some(level) = vars.var("AWS_LAMBDA_LOG_LEVEL").as_deref().and_then(level) {
        return Targets::new().with_default(level);
    }
    let mut targets = Targets::new().with_default(LevelFilter::INFO);
    for directive in vars.var("RUST_LOG").unwrap_or_default().split(',') {
        match directive.split_once('=') {
            Some((target, value)) if !target.trim().is_empty() => {
                if let Some(level) = level(value) {
                    targets = targets.with_target(target.trim().to_owned(), level);
                }
            }
            Some(_) => {}
            None => {
                if let Some(level) = level(directive) {
                    targets = targets.with_default(level);
                }
            }
        }
    }
    targets
}

fn level(value: &str) -> Option<LevelFilter> {
    match value.trim().to_ascii_uppercase().as_str() {
        "" => None,
        // Lambda's own level above ERROR.
        "FATAL" => Some(LevelFilter::ERROR),
        other => other.parse::<LevelFilter>().ok(),
    }
}

/// Installs the subscriber; call once, first thing in `main`.
pub fn init(vars: &impl Vars) {
    let json = vars.var("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json"));
    let text = (!json).then(|| tracing_subscriber::fmt::layer().with_target(false).without_time().with_ansi(false));
    let json = json.then(|| tracing_subscriber::fmt::layer().json().with_target(false).without_time());
    let _ = tracing_subscriber::registry().with(text).with(json).with(filter(vars)).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use tracing::Level;

    fn enabled(vars: &[(&str, &str)], target: &str, level: Level) -> bool {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        filter(&vars).would_enable(target, &level)
    }

    #[test]
    fn the_level_comes_from_lambda_then_rust_log_then_info() {
        // (variables, target, level, logged)
        type Row<'a> = (&'a [(&'a str, &'a str)], &'a str, Level, bool);
        let table: [Row; 11] = [
            (&[], "expire_logs", Level::INFO, true),
            (&[], "expire_logs", Level::DEBUG, false),
            (&[("AWS_LAMBDA_LOG_LEVEL", "WARN")], "expire_logs", Level::INFO, false),
            (&[("AWS_LAMBDA_LOG_LEVEL", "debug"), ("RUST_LOG", "error")], "expire_logs", Level::DEBUG, true),
            (&[("AWS_LAMBDA_LOG_LEVEL", "FATAL")], "expire_logs", Level::WARN, false),
            (&[("RUST_LOG", "warn")], "expire_logs", Level::INFO, false),
            (&[("RUST_LOG", "info,aws_smithy_runtime=debug")], "aws_smithy_runtime", Level::DEBUG, true),
            (&[("RUST_LOG", "info,aws_smithy_runtime=debug")], "expire_logs", Level::DEBUG, false),
            (&[("RUST_LOG", "not a level!")], "expire_logs", Level::INFO, true),
            (&[("RUST_LOG", "not a level!,debug")], "expire_logs", Level::DEBUG, true),
            (&[("RUST_LOG", "aws_smithy_runtime=loud")], "aws_smithy_runtime", Level::DEBUG, false),
        ];
        for (vars, target, level, want) in table {
            assert_eq!(enabled(vars, target, level), want, "{vars:?} {target} {level}");
        }
    }
}
