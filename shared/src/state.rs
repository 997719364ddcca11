//! What nightshift remembers, in one DynamoDB table (the stack's `StateTable`,
//! setting `STATE_TABLE`): never in ECS tags, which hold 50 to a resource and
//! 256 characters to a value, and lose one of two concurrent read-modify-writes.
//!
//! Key design: the partition key `pk` is the ECS service's ARN, or for a
//! rollout lease `lease#` and the ARN, so IAM can scope each function to the
//! items it needs with `dynamodb:LeadingKeys` (deploy-on-push reads a
//! service's memory and writes only leases); the sort key `sk` says what the item is:
//!
//! | `pk` | `sk` | one item per | attributes |
//! |---|---|---|---|
//! | service ARN | `quarantine#<digest>` | digest whose rollout to the service failed or was rolled back | `digest`, `reason`, `at` |
//! | service ARN | `told#<deployment id>` | deployment whose outcome was told, or a rollback's own deployment | `mark`, `at`, `expires` (TTL, 90 days) |
//! | service ARN | `carried#tags` | service whose tag records of an older release were carried over | `at` |
//! | `lease#<service ARN>` | `lease` | service being rolled out now | `owner`, `at`, `expires` (epoch seconds; TTL) |
//!
//! Every write is a conditional `PutItem` or `DeleteItem` on one item, so two
//! handlers at once never lose an update: each digest, each mark is its own
//! item, and a lease is taken only when nobody holds it. A write that fails
//! is an error for the caller to fail its run with, never a warning.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use chrono::{DateTime, Utc};

use crate::aws::CallError;
use crate::quarantine;

/// The setting naming the table.
pub const STATE_TABLE_VAR: &str = "STATE_TABLE";
/// How long a told mark is kept: events come hours late at most, never months.
pub const MARK_DAYS: i64 = 90;
/// BatchGetItem's limit of keys in one request.
const BATCH_KEYS: usize = 100;

const PK: &str = "pk";
const SK: &str = "sk";
const LEASE: &str = "lease";
const CARRIED: &str = "carried#tags";

/// `STATE_TABLE`: a DynamoDB table name (3-255 of `A-Za-z0-9_.-`) or a table ARN.
pub fn table_name(vars: &impl crate::config::Vars) -> Result<String, crate::config::ConfigError> {
    const EXPECTED: &str = "the state table's name (the stack's StateTable: 3-255 of A-Z a-z 0-9 _ . -) or ARN";
    let name = crate::config::required(vars, STATE_TABLE_VAR, EXPECTED)?;
    let plain = (3..=255).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    let arn = name.starts_with("arn:") && name.contains(":table/") && name.len() <= 1024;
    if plain || arn { Ok(name) } else { Err(crate::config::ConfigError::new(STATE_TABLE_VAR, Some(&name), EXPECTED)) }
}

/// The partition key of a service's rollout lease.
pub fn lease_key(service: &str) -> String {
    format!("lease#{service}")
}

/// The sort key of a digest's quarantine item.
pub fn quarantine_key(digest: &str) -> String {
    format!("quarantine#{digest}")
}

/// The sort key of a deployment's told mark.
pub fn mark_key(deployment: &str) -> String {
    format!("told#{deployment}")
}

/// A digest held on a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// As written: a whole digest, or the short one an older release's tag held.
    pub digest: String,
    pub reason: String,
}

/// What the table remembers of one service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    pub quarantine: Vec<Quarantined>,
    /// (deployment id, mark) for each told mark.
    pub marks: Vec<(String, String)>,
    /// The tag records of an older release were carried over: the tags are not read any more.
    pub carried: bool,
}

impl Memory {
    pub fn mark(&self, deployment: &str) -> Option<&str> {
        self.marks.iter().find(|(d, _)| d == deployment).map(|(_, m)| m.as_str())
    }
}

/// One write of a run's plan, applied as a conditional write of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateWrite {
    /// Holds `digest` on `service`; a digest held already stays as it was.
    Quarantine { service: String, digest: String, reason: String },
    /// Marks what was told of `deployment`; replaces only a mark in `replaces`
    /// (a rollback's own mark gives way to its outcome), never a told one.
    Mark { service: String, deployment: String, mark: String, replaces: Vec<String> },
    /// Records that the service's tag records were carried over.
    Carried { service: String },
}

impl StateWrite {
    pub fn service(&self) -> &str {
        match self {
            Self::Quarantine { service, .. } | Self::Mark { service, .. } | Self::Carried { service } => service,
        }
    }
}

/// The table, and the client that reads and writes it.
#[derive(Debug, Clone)]
pub struct StateTable {
    client: Client,
    table: String,
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn key(service: &str, sort: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([(PK.to_owned(), s(service)), (SK.to_owned(), s(sort))])
}

/// A conditional write's outcome: `Ok(true)` written, `Ok(false)` refused by its
/// condition (the state it guards is otherwise), else the call's error.
fn conditional<O, E>(sent: Result<O, E>, operation: &'static str, target: &str) -> Result<bool, CallError>
where
    E: ProvideErrorMetadata + std::error::Error,
{
    match sent {
        Ok(_) => Ok(true),
        Err(err) if err.code() == Some("ConditionalCheckFailedException") => Ok(false),
        Err(err) => Err(CallError::new(operation, target, err)),
    }
}

impl StateTable {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    pub fn name(&self) -> &str {
        &self.table
    }

    /// Everything the table remembers of a service, read consistently (one Query, paged).
    pub async fn memory(&self, service: &str) -> Result<Memory, CallError> {
        let mut memory = Memory::default();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", s(service))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| CallError::new("Query", service, e.into_service_error()))?;
            for item in page.items() {
                let sort = text(item, SK).unwrap_or_default();
                if let Some(digest) = sort.strip_prefix("quarantine#") {
                    let reason = text(item, "reason").unwrap_or_default();
                    memory.quarantine.push(Quarantined { digest: digest.to_owned(), reason });
                } else if let Some(deployment) = sort.strip_prefix("told#") {
                    memory.marks.push((deployment.to_owned(), text(item, "mark").unwrap_or_default()));
                } else if sort == CARRIED {
                    memory.carried = true;
                }
            }
            match page.last_evaluated_key() {
                Some(last) if !last.is_empty() => start = Some(last.clone()),
                _ => return Ok(memory),
            }
        }
    }

    /// For each service, whether `digest` is held on it (whole or short), and
    /// whether its tag records were carried over: BatchGetItem, consistent,
    /// 100 keys a request, unprocessed keys asked again.
    pub async fn digest_on(&self, services: &[&str], digest: &str) -> Result<Vec<DigestSeen>, CallError> {
        let short = quarantine::short(digest);
        let mut sorts = vec![quarantine_key(digest), CARRIED.to_owned()];
        if short != digest {
            sorts.push(quarantine_key(&short));
        }
        let keys: Vec<HashMap<String, AttributeValue>> =
            services.iter().flat_map(|service| sorts.iter().map(|sort| key(service, sort))).collect();
        let mut found: HashSet<(String, String)> = HashSet::new();
        for chunk in keys.chunks(BATCH_KEYS) {
            let mut pending = chunk.to_vec();
            for _ in 0..5 {
                if pending.is_empty() {
                    break;
                }
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(true)
                    .projection_expression("#pk, #sk")
                    .expression_attribute_names("#pk", PK)
                    .expression_attribute_names("#sk", SK)
                    .build()
                    .expect("keys are set");
                let answer = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| CallError::new("BatchGetItem", &self.table, e.into_service_error()))?;
                for item in answer.responses().and_then(|r| r.get(&self.table)).into_iter().flatten() {
                    if let (Some(pk), Some(sk)) = (text(item, PK), text(item, SK)) {
                        found.insert((pk, sk));
                    }
                }
                pending = answer
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
            }
            if !pending.is_empty() {
                return Err(CallError {
                    operation: "BatchGetItem",
                    target: self.table.clone(),
                    code: Some("ProvisionedThroughputExceededException".into()),
                    message: format!("{} keys still unprocessed after 5 requests", pending.len()),
                });
            }
        }
        Ok(services
            .iter()
            .map(|service| {
                let has = |sort: &str| found.contains(&((*service).to_owned(), sort.to_owned()));
                DigestSeen {
                    quarantined: has(&quarantine_key(digest)) || has(&quarantine_key(&short)),
                    carried: has(CARRIED),
                }
            })
            .collect())
    }

    /// Applies one write; `Ok(false)` when its condition found the state there
    /// already (a digest held, a deployment told), so nothing changed.
    pub async fn write(&self, write: &StateWrite, now: DateTime<Utc>) -> Result<bool, CallError> {
        let at = s(&now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        let service = write.service();
        let put = self.client.put_item().table_name(&self.table).item(PK, s(service)).item("at", at);
        let put = match write {
            StateWrite::Quarantine { digest, reason, .. } => put
                .item(SK, s(&quarantine_key(digest)))
                .item("digest", s(digest))
                .item("reason", s(reason))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK),
            StateWrite::Mark { deployment, mark, replaces, .. } => {
                let expires = now.timestamp() + MARK_DAYS * 86_400;
                let mut put = put
                    .item(SK, s(&mark_key(deployment)))
                    .item("mark", s(mark))
                    .item("expires", AttributeValue::N(expires.to_string()))
                    .expression_attribute_names("#pk", PK);
                let mut condition = "attribute_not_exists(#pk)".to_owned();
                if !replaces.is_empty() {
                    put = put.expression_attribute_names("#mark", "mark");
                    let names: Vec<String> = (0..replaces.len()).map(|i| format!(":r{i}")).collect();
                    for (name, replaced) in names.iter().zip(replaces) {
                        put = put.expression_attribute_values(name, s(replaced));
                    }
                    condition.push_str(&format!(" OR #mark IN ({})", names.join(", ")));
                }
                put.condition_expression(condition)
            }
            StateWrite::Carried { .. } => put
                .item(SK, s(CARRIED))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK),
        };
        conditional(put.send().await.map_err(|e| e.into_service_error()), "PutItem", service)
    }

    /// Takes the service's rollout lease for `seconds`, when nobody holds it
    /// (or the holder's ran out: a run that died holds it no longer). `Ok(false)`: held by another.
    pub async fn lease(&self, service: &str, owner: &str, now: DateTime<Utc>, seconds: i64) -> Result<bool, CallError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(&lease_key(service)))
            .item(SK, s(LEASE))
            .item("owner", s(owner))
            .item("at", s(&now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
            .item("expires", AttributeValue::N((now.timestamp() + seconds).to_string()))
            .condition_expression("attribute_not_exists(#pk) OR #expires < :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#expires", "expires")
            .expression_attribute_values(":now", AttributeValue::N(now.timestamp().to_string()))
            .send()
            .await
            .map_err(|e| e.into_service_error());
        conditional(put, "PutItem", service)
    }

    /// Gives the lease back, when this owner still holds it.
    pub async fn release(&self, service: &str, owner: &str) -> Result<(), CallError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(&lease_key(service), LEASE)))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await
            .map_err(|e| e.into_service_error());
        // Refused by its condition: another run holds the lease now (this one's ran out); nothing to give back.
        conditional(deleted, "DeleteItem", service).map(drop)
    }
}

/// What [`StateTable::digest_on`] found for one service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DigestSeen {
    pub quarantined: bool,
    pub carried: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_held_whole_or_by_the_short_form_an_older_release_kept() {
        let whole = "sha256:aaaaaaaaaaaaaaaa1111111111111111111111111111111111111111111111";
        // A quarantine item's digest, as the quarantine reads it (quarantine::held_in).
        let held = |digest: &str| {
            let memory = Memory {
                quarantine: vec![Quarantined { digest: digest.into(), reason: String::new() }],
                ..Memory::default()
            };
            memory.quarantine.into_iter().map(|q| q.digest).collect::<Vec<_>>()
        };
        assert!(quarantine::held_in(&held(whole), whole));
        assert!(quarantine::held_in(&held("sha256:aaaaaaaaaaaaaaaa"), whole));
        assert!(!quarantine::held_in(&held("sha256:aaaaaaaaaaaaaaab"), whole));
        assert_eq!(quarantine_key(whole), format!("quarantine#{whole}"));
        assert_eq!(mark_key("ecs-svc/1"), "told#ecs-svc/1");
    }

    #[test]
    fn the_table_setting_is_a_name_or_an_arn_and_a_wrong_one_names_the_variable() {
        let read = |value: &str| table_name(&[(STATE_TABLE_VAR, value)]);
        assert_eq!(read("nightshift-state").unwrap(), "nightshift-state");
        assert!(read("arn:aws:dynamodb:eu-west-1:123456789012:table/nightshift-state").is_ok());
        for wrong in ["", "ab", "my table", "state/x"] {
            let err = read(wrong).unwrap_err().to_string();
            assert!(err.contains("STATE_TABLE"), "{wrong:?}: {err}");
        }
    }
}
