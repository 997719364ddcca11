//! The decisions, and nothing else: no AWS calls here.

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
    NoncurrentVersionExpiration,
};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// Every lifecycle rule whose ID starts with this is nightshift's; all others are the user's.
pub const RULE_ID_PREFIX: &str = "nightshift-";
/// The two rules' IDs before they named their prefix: still nightshift's, and
/// replaced on the prefix they filter on.
pub const LEGACY_RULE_IDS: [&str; 2] = ["nightshift-expire-logs", "nightshift-expired-delete-markers"];

/// The IDs of the two rules for a prefix: `nightshift-expire-logs-<h>` and
/// `nightshift-expired-delete-markers-<h>`, `<h>` 16 hex digits of the prefix's
/// FNV-1a hash, so two deployments on two prefixes of one bucket keep theirs.
pub fn rule_ids(prefix: &str) -> [String; 2] {
    let mut hash = nightshift::hash::Fnv1a::default();
    hash.write(prefix.as_bytes());
    let h = hash.finish();
    [format!("nightshift-expire-logs-{h:016x}"), format!("nightshift-expired-delete-markers-{h:016x}")]
}
/// Incomplete multipart uploads older than this (or the retention, if shorter) are aborted.
pub const ABORT_MULTIPART_DAYS: u32 = 7;

/// Objects last modified strictly before this are expired.
pub fn cutoff(now: DateTime<Utc>, retention_days: u32) -> DateTime<Utc> {
    now - Duration::hours(24 * i64::from(retention_days))
}

pub fn is_expired(last_modified: DateTime<Utc>, cutoff: DateTime<Utc>) -> bool {
    last_modified < cutoff
}

/// Where the sweep keeps its checkpoint in the logs bucket: under
/// `nightshift/expire-logs/`, which the sweep itself never deletes.
pub const CHECKPOINT_FOLDER: &str = "nightshift/expire-logs/";

/// The checkpoint's key for a prefix (two deployments on two prefixes of one
/// bucket keep two checkpoints).
pub fn checkpoint_key(prefix: &str) -> String {
    format!("{CHECKPOINT_FOLDER}{prefix}checkpoint.json")
}

/// Whether the sweep may look at a key at all: never nightshift's own checkpoints.
pub fn is_sweepable(key: &str) -> bool {
    !key.starts_with(CHECKPOINT_FOLDER)
}

/// Where the sweep stopped, kept between runs so each run goes on from there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// The next run lists after this.
    pub resume_after: nightshift::s3_sweep::Marker,
    /// When the pass that is under way began (the run that started at the beginning of the prefix).
    pub pass_started: DateTime<Utc>,
}

/// What a run does with the checkpoint once the sweep has stopped: the
/// checkpoint to keep, if any.
pub fn next_checkpoint(
    previous: Option<&Checkpoint>,
    resume_at: Option<nightshift::s3_sweep::Marker>,
    wrapped: bool,
    now: DateTime<Utc>,
) -> Option<Checkpoint> {
    let resume_after = resume_at?;
    // A pass begins when a run starts at the beginning, or wraps round to it.
    let pass_started = match previous {
        Some(previous) if !wrapped => previous.pass_started,
        _ => now,
    };
    Some(Checkpoint { resume_after, pass_started })
}

/// The rules nightshift keeps in the bucket for this prefix and retention.
///
/// Expiration with a day count and `ExpiredObjectDeleteMarker` cannot share a
/// rule, so there are two. Noncurrent versions go `retention_days` after they
/// become noncurrent, so no data leaves before its retention is up; the daily
/// sweep removes them as soon as they are older than the retention.
pub fn desired_rules(prefix: &str, retention_days: u32) -> Vec<LifecycleRule> {
    let days = i32::try_from(retention_days).unwrap_or(i32::MAX);
    let abort_days = i32::try_from(retention_days.min(ABORT_MULTIPART_DAYS)).unwrap_or(1);
    let filter = || LifecycleRuleFilter::builder().prefix(prefix).build();
    let [expire_id, delete_markers_id] = rule_ids(prefix);
    let expire = LifecycleRule::builder()
        .id(expire_id)
        .filter(filter())
        .status(ExpirationStatus::Enabled)
        .expiration(LifecycleExpiration::builder().days(days).build())
        .noncurrent_version_expiration(NoncurrentVersionExpiration::builder().noncurrent_days(days).build())
        .abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder().days_after_initiation(abort_days).build(),
        );
    let delete_markers = LifecycleRule::builder()
        .id(delete_markers_id)
        .filter(filter())
        .status(ExpirationStatus::Enabled)
        .expiration(LifecycleExpiration::builder().expired_object_delete_marker(true).build());
    [expire, delete_markers].into_iter().map(|b| b.build().expect("id, filter and status are set")).collect()
}

/// What a rule does, in the terms nightshift cares about; equal specs mean an
/// equal rule, however S3 chose to spell it back (rule-level `Prefix` or
/// `Filter`, absent or zero fields).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct RuleSpec {
    id: String,
    enabled: bool,
    prefix: String,
    expiration_days: Option<i32>,
    expired_object_delete_marker: bool,
    noncurrent_days: Option<i32>,
    abort_days: Option<i32>,
    /// Transitions, tag or size filters, version counts: none of nightshift's rules have them.
    extras: bool,
}

impl RuleSpec {
    // Rules written before `Filter` existed carry the deprecated rule-level `Prefix`.
    #[allow(deprecated)]
    fn of(rule: &LifecycleRule) -> Self {
        let filter = rule.filter();
        let prefix = filter.and_then(LifecycleRuleFilter::prefix).or(rule.prefix()).unwrap_or_default().to_owned();
        let filter_extras = filter.is_some_and(|f| {
            f.tag().is_some()
                || f.and().is_some()
                || f.object_size_greater_than().is_some()
                || f.object_size_less_than().is_some()
        });
        let expiration = rule.expiration();
        let noncurrent = rule.noncurrent_version_expiration();
        Self {
            id: rule.id().unwrap_or_default().to_owned(),
            enabled: *rule.status() == ExpirationStatus::Enabled,
            prefix,
            expiration_days: expiration.and_then(LifecycleExpiration::days),
            expired_object_delete_marker: expiration
                .and_then(LifecycleExpiration::expired_object_delete_marker)
                .unwrap_or(false),
            noncurrent_days: noncurrent.and_then(NoncurrentVersionExpiration::noncurrent_days),
            abort_days: rule
                .abort_incomplete_multipart_upload()
                .and_then(AbortIncompleteMultipartUpload::days_after_initiation),
            extras: filter_extras
                || expiration.is_some_and(|e| e.date().is_some())
                || noncurrent.is_some_and(|n| n.newer_noncurrent_versions().is_some())
                || !rule.transitions().is_empty()
                || !rule.noncurrent_version_transitions().is_empty(),
        }
    }
}

pub fn is_nightshift_rule(rule: &LifecycleRule) -> bool {
    rule.id().is_some_and(|id| id.starts_with(RULE_ID_PREFIX))
}

/// Whether the rule is this prefix's: one of its two IDs, or a nightshift
/// rule of an older release (or a stray one) that filters on the prefix. A
/// nightshift rule of another prefix is another deployment's, and stays.
fn belongs_to(rule: &LifecycleRule, prefix: &str) -> bool {
    let id = rule.id().unwrap_or_default();
    rule_ids(prefix).iter().any(|own| own == id) || (is_nightshift_rule(rule) && RuleSpec::of(rule).prefix == prefix)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LifecycleOutcome {
    Created,
    Updated,
    Unchanged,
    /// `LIFECYCLE=false`: the bucket's lifecycle was not looked at.
    Disabled,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LifecyclePlan {
    pub outcome: LifecycleOutcome,
    /// The whole configuration to put; empty when unchanged.
    pub rules: Vec<LifecycleRule>,
}

/// Merges this prefix's rules into the bucket's: every other rule (the user's,
/// and another prefix's deployment's) stays as it was and where it was; this
/// prefix's are replaced. `None` is a bucket without a lifecycle configuration.
pub fn plan_lifecycle(existing: Option<&[LifecycleRule]>, prefix: &str, desired: Vec<LifecycleRule>) -> LifecyclePlan {
    let Some(existing) = existing else {
        return LifecyclePlan { outcome: LifecycleOutcome::Created, rules: desired };
    };
    let mut ours: Vec<RuleSpec> = existing.iter().filter(|r| belongs_to(r, prefix)).map(RuleSpec::of).collect();
    let mut wanted: Vec<RuleSpec> = desired.iter().map(RuleSpec::of).collect();
    ours.sort();
    wanted.sort();
    if ours == wanted {
        return LifecyclePlan { outcome: LifecycleOutcome::Unchanged, rules: Vec::new() };
    }
    let rules = existing.iter().filter(|r| !belongs_to(r, prefix)).cloned().chain(desired).collect();
    LifecyclePlan { outcome: LifecycleOutcome::Updated, rules }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nightshift::s3_sweep::Marker;

    #[test]
    fn the_checkpoint_keeps_the_pass_start_until_the_sweep_wraps_round() {
        let at = |h: u32| Utc.with_ymd_and_hms(2026, 11, 27, h, 0, 0).unwrap();
        let marker = |k: &str| Marker { key: k.into(), version_id: None };
        let first = next_checkpoint(None, Some(marker("loki/b")), false, at(3)).unwrap();
        assert_eq!(first, Checkpoint { resume_after: marker("loki/b"), pass_started: at(3) });
        let second = next_checkpoint(Some(&first), Some(marker("loki/m")), false, at(4)).unwrap();
        assert_eq!(second.pass_started, at(3), "the same pass goes on");
        let wrapped = next_checkpoint(Some(&second), Some(marker("loki/a")), true, at(5)).unwrap();
        assert_eq!(wrapped.pass_started, at(5), "a new pass began at the start of the prefix");
        assert_eq!(next_checkpoint(Some(&wrapped), None, true, at(6)), None, "a whole pass: start afresh");
        assert_eq!(checkpoint_key("loki/"), "nightshift/expire-logs/loki/checkpoint.json");
        assert!(!is_sweepable("nightshift/expire-logs/checkpoint.json") && is_sweepable("loki/chunk"));
    }
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, s).unwrap()
    }

    #[test]
    fn cutoff_is_retention_days_of_24_hours_before_now() {
        let now = at(2026, 3, 31, 12, 0, 0);
        let table = [(30, at(2026, 3, 1, 12, 0, 0)), (1, at(2026, 3, 30, 12, 0, 0)), (3650, at(2016, 4, 2, 12, 0, 0))];
        for (days, want) in table {
            assert_eq!(cutoff(now, days), want, "{days} days");
        }
    }

    #[test]
    fn only_objects_strictly_older_than_the_cutoff_expire() {
        let cut = at(2026, 3, 1, 12, 0, 0);
        assert!(is_expired(at(2026, 3, 1, 11, 59, 59), cut));
        assert!(!is_expired(cut, cut));
        assert!(!is_expired(at(2026, 3, 1, 12, 0, 1), cut));
    }

    fn user_rule(id: &str) -> LifecycleRule {
        LifecycleRule::builder()
            .id(id)
            .filter(LifecycleRuleFilter::builder().prefix("archive/").build())
            .status(ExpirationStatus::Enabled)
            .expiration(LifecycleExpiration::builder().days(365).build())
            .build()
            .unwrap()
    }

    #[test]
    fn a_bucket_without_lifecycle_gets_nightshifts_rules() {
        let plan = plan_lifecycle(None, "loki/", desired_rules("loki/", 30));
        assert_eq!(plan.outcome, LifecycleOutcome::Created);
        let ids: Vec<_> = plan.rules.iter().filter_map(|r| r.id()).collect();
        assert_eq!(ids, rule_ids("loki/"));
        assert_eq!(rule_ids("loki/")[0], format!("nightshift-expire-logs-{:016x}", 0xdf6d_fab6_cc7c_d071_u64));
    }

    #[test]
    fn other_rules_are_kept_in_place_and_nightshifts_are_added() {
        let existing = vec![user_rule("archive-after-a-year"), user_rule("keep-me")];
        let plan = plan_lifecycle(Some(&existing), "loki/", desired_rules("loki/", 30));
        assert_eq!(plan.outcome, LifecycleOutcome::Updated);
        assert_eq!(&plan.rules[..2], &existing[..]);
        assert_eq!(plan.rules[2..], desired_rules("loki/", 30)[..]);
    }

    #[test]
    #[allow(deprecated)]
    fn the_same_rules_however_spelt_are_unchanged() {
        // S3 may hand the prefix back at rule level rather than in a filter.
        let respelt: Vec<LifecycleRule> = desired_rules("loki/", 30)
            .into_iter()
            .map(|r| {
                let mut b = LifecycleRule::builder().id(r.id().unwrap()).prefix("loki/").status(r.status().clone());
                b = b.set_expiration(r.expiration().cloned());
                b = b.set_noncurrent_version_expiration(r.noncurrent_version_expiration().cloned());
                b = b.set_abort_incomplete_multipart_upload(r.abort_incomplete_multipart_upload().cloned());
                b.build().unwrap()
            })
            .rev()
            .collect();
        let mut existing = vec![user_rule("archive-after-a-year")];
        existing.extend(respelt);
        let plan = plan_lifecycle(Some(&existing), "loki/", desired_rules("loki/", 30));
        assert_eq!(plan.outcome, LifecycleOutcome::Unchanged);
        assert!(plan.rules.is_empty());
    }

    #[test]
    fn a_changed_retention_replaces_only_this_prefixs_rules() {
        let mut existing = vec![user_rule("archive-after-a-year")];
        existing.extend(desired_rules("loki/", 30));
        existing.push(user_rule("after-ours"));
        let plan = plan_lifecycle(Some(&existing), "loki/", desired_rules("loki/", 14));
        assert_eq!(plan.outcome, LifecycleOutcome::Updated);
        let want: Vec<_> = [user_rule("archive-after-a-year"), user_rule("after-ours")]
            .into_iter()
            .chain(desired_rules("loki/", 14))
            .collect();
        assert_eq!(plan.rules, want);
    }

    #[test]
    fn two_deployments_on_two_prefixes_of_one_bucket_keep_each_others_rules() {
        // Given the loki/ deployment's rules in place
        let mut bucket = plan_lifecycle(None, "loki/", desired_rules("loki/", 30)).rules;
        // When the grafana/ deployment runs, then loki/'s stay and grafana/'s are added
        let grafana = plan_lifecycle(Some(&bucket), "grafana/", desired_rules("grafana/", 14));
        assert_eq!(grafana.outcome, LifecycleOutcome::Updated);
        bucket = grafana.rules;
        assert_eq!(bucket.len(), 4);
        // And from then on, day after day, neither rewrites the bucket
        for (prefix, days) in [("loki/", 30), ("grafana/", 14), ("loki/", 30)] {
            let plan = plan_lifecycle(Some(&bucket), prefix, desired_rules(prefix, days));
            assert_eq!(plan.outcome, LifecycleOutcome::Unchanged, "{prefix}");
        }
    }

    #[test]
    fn rules_of_an_older_release_or_stray_ones_on_this_prefix_are_replaced_and_others_kept() {
        // Given the rules an older release wrote (IDs without the prefix) for loki/ and another deployment's for
        // grafana/, and a stray nightshift rule on loki/
        let legacy = |id: &str, prefix: &str| {
            LifecycleRule::builder()
                .id(id)
                .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
                .status(ExpirationStatus::Enabled)
                .expiration(LifecycleExpiration::builder().days(30).build())
                .build()
                .unwrap()
        };
        let existing = vec![
            legacy(LEGACY_RULE_IDS[0], "loki/"),
            legacy(LEGACY_RULE_IDS[1], "loki/"),
            legacy("nightshift-old", "loki/"),
            desired_rules("grafana/", 14)[0].clone(),
            user_rule("keep-me"),
        ];
        // When loki/'s deployment runs
        let plan = plan_lifecycle(Some(&existing), "loki/", desired_rules("loki/", 30));
        // Then loki/'s old rules give way to its new ones, and the rest stays in place
        assert_eq!(plan.outcome, LifecycleOutcome::Updated);
        let want: Vec<_> = [desired_rules("grafana/", 14)[0].clone(), user_rule("keep-me")]
            .into_iter()
            .chain(desired_rules("loki/", 30))
            .collect();
        assert_eq!(plan.rules, want);
    }

    #[test]
    fn multipart_uploads_are_aborted_after_a_week_or_the_retention_if_shorter() {
        let abort = |days| {
            desired_rules("", days)[0].abort_incomplete_multipart_upload().and_then(|a| a.days_after_initiation())
        };
        assert_eq!(abort(30), Some(7));
        assert_eq!(abort(3), Some(3));
    }
}
