//! What two or more nightshift functions share: the AWS config, reading the
//! environment, the clock, the report, telling people, and the Lambda error shape.

pub mod aws;
pub mod checks;
pub mod clock;
pub mod config;
#[cfg(feature = "ecs")]
pub mod ecs;
pub mod hash;
pub mod https;
pub mod identity;
pub mod image;
pub mod logging;
#[cfg(any(test, feature = "test-util"))]
pub mod loopback;
pub mod notify;
pub mod percent;
pub mod quarantine;
pub mod report;
#[cfg(feature = "rollout")]
pub mod rollout;
#[cfg(feature = "s3")]
pub mod s3_sweep;
#[cfg(feature = "scale")]
pub mod scale;
pub mod signed;
#[cfg(feature = "state")]
pub mod state;
pub mod trigger;
#[cfg(feature = "window")]
pub mod window;

pub use clock::{Clock, FixedClock, SystemClock};
pub use config::{ConfigError, Vars};
pub use report::{LambdaFailure, Measured, Metric, Ran, conclude};
pub use trigger::Trigger;
