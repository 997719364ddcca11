//! The rollout-outcome event: every outcome watch-rollouts decides is put on
//! its account's default event bus (source `nightshift`, detail-type
//! `Rollout Outcome`), for other tools and for the accounts that follow this
//! one's services (the stack's `PromoteToAccountIds` forwards them there, and
//! `PromoteFromAccountIds` back to the accounts this one follows). The detail
//! is a contract (docs/accounts.md); fields are only ever added. No AWS calls here.

use chrono::{DateTime, Utc};
use nightshift::identity::Identity;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::outcome::Outcome;

pub const SOURCE: &str = "nightshift";
pub const DETAIL_TYPE: &str = "Rollout Outcome";

/// The event's `detail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutOutcome {
    /// Where the service is.
    pub account: String,
    pub region: String,
    pub cluster: String,
    pub service: String,
    /// `succeeded`, `failed`, `rolled back` or `rollback failed`.
    pub outcome: Outcome,
    /// The deployment whose outcome it is (ECS `ecs-svc/…`, CodeDeploy `d-…`).
    pub deployment: String,
    /// The task definition it rolled out, and the one before, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_revision: Option<String>,
    /// The image digests the revision runs.
    #[serde(default)]
    pub digests: Vec<String>,
    /// When the rollout ended.
    pub completed_at: DateTime<Utc>,
    /// The merge it is (pull request, commit, source), as far as known. Not read
    /// back: a promotion takes the merge from the upstream's revision itself.
    #[serde(default, skip_deserializing, skip_serializing_if = "Identity::is_empty")]
    pub identity: Identity,
    /// What the service follows (its `nightshift:promote-from`), when it follows one:
    /// the upstream learns from it that its digest arrived downstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_from: Option<String>,
}

impl RolloutOutcome {
    /// The PutEvents entry of the default bus: the service's ARN as its resource.
    pub fn entry(&self) -> Value {
        let arn = format!("arn:aws:ecs:{}:{}:service/{}/{}", self.region, self.account, self.cluster, self.service);
        json!({
            "Source": SOURCE,
            "DetailType": DETAIL_TYPE,
            "Detail": serde_json::to_string(self).unwrap_or_default(),
            "Resources": [arn],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_detail_is_written_and_read_back_whole_in_its_documented_shape() {
        let detail = RolloutOutcome {
            account: "111122223333".into(),
            region: "eu-west-1".into(),
            cluster: "staging".into(),
            service: "shop".into(),
            outcome: Outcome::Succeeded,
            deployment: "ecs-svc/1234567890".into(),
            revision: Some("arn:aws:ecs:eu-west-1:111122223333:task-definition/shop:7".into()),
            previous_revision: None,
            digests: vec![format!("sha256:{}", "a".repeat(64))],
            completed_at: Utc.with_ymd_and_hms(2026, 12, 5, 1, 2, 3).unwrap(),
            identity: Identity { pr: Some("42".into()), ..Identity::default() },
            promoted_from: None,
        };
        let entry = detail.entry();
        assert_eq!(
            (entry["Source"].as_str(), entry["DetailType"].as_str()),
            (Some("nightshift"), Some("Rollout Outcome"))
        );
        assert_eq!(entry["Resources"][0], "arn:aws:ecs:eu-west-1:111122223333:service/staging/shop");
        let written: Value = serde_json::from_str(entry["Detail"].as_str().unwrap()).unwrap();
        assert_eq!(written["outcome"], "succeeded");
        assert_eq!(written["completedAt"], "2026-12-05T01:02:03Z");
        assert_eq!(written["identity"], json!({"pr": "42"}));
        assert!(written.get("promotedFrom").is_none() && written.get("previousRevision").is_none());
        let read: RolloutOutcome = serde_json::from_value(written).unwrap();
        assert_eq!(read, RolloutOutcome { identity: Identity::default(), ..detail });
    }
}
