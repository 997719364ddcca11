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
//! | service ARN | `verdict#<task definition ARN>` | revision whose checks ran on the service (verify-rollout) | `verdict` (`passed` / `failed`), `why`, `deployment`, `at` |
//! | service ARN | `carried#tags` | service whose tag records of an older release were carried over | `at` |
//! | `lease#<service ARN>` | `lease` | service being rolled out now | `owner`, `at`, `expires` (epoch seconds; TTL) |
//! | `asleep#<service ARN>` | `asleep` | service asleep after its promotion | `desired`, `min`, `max`, `why`, `at` |
//! | `hold#<service ARN>`, `hold#all` | `hold` | service (or every service) held by hand | `reason`, `by`, `until`, `at`, `expires` (TTL, a day after `until`) |
//! | `override#<scale group>` | `override` | scale group woken or put to sleep by hand | `state`, `by`, `until`, `at`, `expires` (TTL, a day after `until`) |
//!
//! Every write is a conditional `PutItem` or `DeleteItem` on one item, so two
//! handlers at once never lose an update: each digest, each mark is its own
//! item, and a lease is taken only when nobody holds it. A write that fails
//! is an error for the caller to fail its run with, never a warning.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::aws::CallError;
use crate::quarantine;
use crate::signed::SignedHttp;

/// The setting naming the table.
pub const STATE_TABLE_VAR: &str = "STATE_TABLE";
/// How long a told mark is kept: events come hours late at most, never months.
pub const MARK_DAYS: i64 = 90;
/// BatchGetItem's limit of keys in one request.
const BATCH_KEYS: usize = 100;
/// Requests for one batch of keys, the first included, before keys still unprocessed fail the read.
const BATCH_TRIES: u32 = 5;

const PK: &str = "pk";
const SK: &str = "sk";
const LEASE: &str = "lease";
const CARRIED: &str = "carried#tags";
const VERDICT_PASSED: &str = "passed";
const VERDICT_FAILED: &str = "failed";

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

/// The sort key of a revision's verdict.
pub fn verdict_key(task_definition: &str) -> String {
    format!("verdict#{task_definition}")
}

/// The partition key of a service's sleep after its promotion (`nightshift:sleep-after-promotion`).
pub fn asleep_key(service: &str) -> String {
    format!("asleep#{service}")
}

const ASLEEP: &str = "asleep";
const HOLD: &str = "hold";
/// The hold of every service (`nightshift hold --all`), in place of a service's ARN.
pub const ALL_SERVICES: &str = "all";

/// The partition key of a hold on a service (its ARN), or on every service ([`ALL_SERVICES`]).
pub fn hold_key(service: &str) -> String {
    format!("hold#{service}")
}

/// When a hold or an override asked for at `now` for `minutes` ends: rounded up
/// to the next minute, so the same request retried within it writes nothing.
pub fn ends_at(now: DateTime<Utc>, minutes: i64) -> DateTime<Utc> {
    let end = now + chrono::Duration::minutes(minutes);
    DateTime::from_timestamp(end.timestamp() - end.timestamp().rem_euclid(60) + 60, 0).unwrap_or(end)
}

/// No automatic rollout or promotion into the service while it holds (by hand ones still go).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Hold {
    /// A service's ARN, or `all`.
    pub service: String,
    pub reason: String,
    /// Who asked for it (the caller's identity, as the event says).
    pub by: String,
    pub since: String,
    /// When it ends by itself (RFC 3339); `None`: when released.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

impl Hold {
    fn of(item: &Value) -> Option<Self> {
        Some(Self {
            service: text(item, PK)?.strip_prefix("hold#")?.to_owned(),
            reason: text(item, "reason").unwrap_or_default(),
            by: text(item, "by").unwrap_or_default(),
            since: text(item, "at").unwrap_or_default(),
            until: text(item, "until").filter(|u| !u.is_empty()),
        })
    }

    /// Whether it holds at `now` (one past its `until` has ended, whatever DynamoDB's TTL has not deleted yet).
    pub fn holds_at(&self, now: DateTime<Utc>) -> bool {
        self.until.as_deref().and_then(|u| DateTime::parse_from_rfc3339(u).ok()).is_none_or(|until| now < until)
    }

    /// Why a rollout does not go, in words.
    pub fn why(&self) -> String {
        let whom = if self.service == ALL_SERVICES { "every service is held" } else { "the service is held" };
        let until = self.until.as_deref().map_or_else(|| " until released".to_owned(), |u| format!(" until {u}"));
        format!("{whom}{until} by {}: {}", if self.by.is_empty() { "someone" } else { &self.by }, self.reason)
    }
}

/// The hold in force on a service at `now`: its own, else the one on every service.
pub fn hold_in_force(holds: &[Hold], now: DateTime<Utc>) -> Option<&Hold> {
    holds
        .iter()
        .find(|h| h.service != ALL_SERVICES && h.holds_at(now))
        .or_else(|| holds.iter().find(|h| h.service == ALL_SERVICES && h.holds_at(now)))
}

/// The partition key of a scale group's override (`nightshift wake|sleep <group> --for`).
pub fn override_key(group: &str) -> String {
    format!("override#{group}")
}

const OVERRIDE: &str = "override";

/// A scale group woken or put to sleep by hand for a while: until `until`
/// its awake windows do not rule (ingress and Dagster runs still wake it),
/// then they rule again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Override {
    pub group: String,
    /// Awake (`nightshift wake`), else asleep (`nightshift sleep`).
    pub awake: bool,
    pub by: String,
    pub since: String,
    /// RFC 3339.
    pub until: String,
}

impl Override {
    fn of(item: &Value) -> Option<Self> {
        Some(Self {
            group: text(item, PK)?.strip_prefix("override#")?.to_owned(),
            awake: text(item, "state")? == "awake",
            by: text(item, "by").unwrap_or_default(),
            since: text(item, "at").unwrap_or_default(),
            until: text(item, "until")?,
        })
    }

    /// Whether it rules at `now` (one past its end rules no more, whatever DynamoDB's TTL has not deleted yet).
    pub fn in_force(&self, now: DateTime<Utc>) -> bool {
        DateTime::parse_from_rfc3339(&self.until).is_ok_and(|until| now < until)
    }
}

/// A service put to sleep once its digest was promoted everywhere it goes:
/// what it ran with, which its next rollout restores.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Asleep {
    /// Its desired count before.
    pub desired: i32,
    /// Its Application Auto Scaling target's (min, max) before, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<(i32, i32)>,
    /// When, and why.
    pub since: String,
    pub why: String,
}

impl Asleep {
    fn of(item: &Value) -> Option<Self> {
        let number = |name: &str| item[name]["N"].as_str().and_then(|n| n.parse::<i32>().ok());
        Some(Self {
            desired: number("desired")?,
            capacity: number("min").zip(number("max")),
            since: text(item, "at").unwrap_or_default(),
            why: text(item, "why").unwrap_or_default(),
        })
    }
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

/// How a revision's checks ended on a service (verify-rollout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictSeen {
    pub task_definition: String,
    pub passed: bool,
    /// The deployment verified: CodeDeploy's `d-…`, ECS's `ecs-svc/…`, or a service revision's ARN.
    pub deployment: String,
    pub why: String,
}

/// What the table remembers of one service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    pub quarantine: Vec<Quarantined>,
    pub verdicts: Vec<VerdictSeen>,
    /// (deployment id, mark) for each told mark.
    pub marks: Vec<(String, String)>,
    /// The tag records of an older release were carried over: the tags are not read any more.
    pub carried: bool,
}

impl Memory {
    /// The verdict of a revision's checks on the service, when they ran.
    pub fn verdict(&self, task_definition: &str) -> Option<&VerdictSeen> {
        self.verdicts.iter().find(|v| v.task_definition == task_definition)
    }

    pub fn mark(&self, deployment: &str) -> Option<&str> {
        self.marks.iter().find(|(d, _)| d == deployment).map(|(_, m)| m.as_str())
    }

    /// Adds one item of a service's partition, as a Query returns it (DynamoDB's JSON); other items are not memory.
    fn learn(&mut self, item: &Value) {
        let sort = text(item, SK).unwrap_or_default();
        if let Some(digest) = sort.strip_prefix("quarantine#") {
            let reason = text(item, "reason").unwrap_or_default();
            self.quarantine.push(Quarantined { digest: digest.to_owned(), reason });
        } else if let Some(deployment) = sort.strip_prefix("told#") {
            self.marks.push((deployment.to_owned(), text(item, "mark").unwrap_or_default()));
        } else if let Some(task_definition) = sort.strip_prefix("verdict#") {
            self.verdicts.push(VerdictSeen {
                task_definition: task_definition.to_owned(),
                passed: text(item, "verdict").as_deref() == Some(VERDICT_PASSED),
                deployment: text(item, "deployment").unwrap_or_default(),
                why: text(item, "why").unwrap_or_default(),
            });
        } else if sort == CARRIED {
            self.carried = true;
        }
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
    /// Records how a revision's checks ended on `service`; the same verdict of
    /// the same deployment is written once, another replaces it (checks run again).
    Verdict { service: String, task_definition: String, passed: bool, deployment: String, why: String },
    /// Records that the service's tag records were carried over.
    Carried { service: String },
    /// Records that the service was put to sleep after its promotion, with
    /// what it ran with; written once (a second sleep keeps the first counts).
    Asleep { service: String, desired: i32, capacity: Option<(i32, i32)>, why: String },
    /// Holds the service (its ARN, or [`ALL_SERVICES`]); the same hold again writes nothing,
    /// another reason or end replaces it. Expires (TTL) a day after its end.
    Hold { service: String, reason: String, by: String, until: Option<DateTime<Utc>> },
    /// Wakes (`awake`) or sleeps a scale group by hand until `until`; the same
    /// override again writes nothing, another replaces it. Expires (TTL) a day after its end.
    Override { group: String, awake: bool, by: String, until: DateTime<Utc> },
}

impl StateWrite {
    pub fn service(&self) -> &str {
        match self {
            Self::Quarantine { service, .. }
            | Self::Mark { service, .. }
            | Self::Verdict { service, .. }
            | Self::Carried { service }
            | Self::Asleep { service, .. }
            | Self::Hold { service, .. } => service,
            Self::Override { group, .. } => group,
        }
    }
}

/// The table, read and written with SigV4-signed requests of DynamoDB's JSON
/// protocol (`nightshift::signed`): the SDK's DynamoDB client, for these four
/// operations, took watch-rollouts past the 6 MB budget (docs/performance.md).
#[derive(Clone)]
pub struct StateTable {
    aws: Arc<SignedHttp>,
    table: String,
}

/// A string attribute, in DynamoDB's JSON.
fn s(value: &str) -> Value {
    json!({ "S": value })
}

/// A number attribute, in DynamoDB's JSON.
fn n(value: i64) -> Value {
    json!({ "N": value.to_string() })
}

/// A string attribute of an item in DynamoDB's JSON.
fn text(item: &Value, name: &str) -> Option<String> {
    item[name]["S"].as_str().map(str::to_owned)
}

fn key(service: &str, sort: &str) -> Value {
    json!({ PK: s(service), SK: s(sort) })
}

/// One item's attributes: every one a string but `expires`, a number.
fn item(pk: &str, sk: &str, strings: &[(&str, &str)], expires: Option<i64>) -> Value {
    let mut item = Map::new();
    item.insert(PK.into(), s(pk));
    item.insert(SK.into(), s(sk));
    for (name, value) in strings {
        item.insert((*name).into(), s(value));
    }
    if let Some(expires) = expires {
        item.insert("expires".into(), n(expires));
    }
    Value::Object(item)
}

/// A conditional write's outcome: `Ok(true)` written, `Ok(false)` refused by its
/// condition (the state it guards is otherwise), else the call's error.
fn conditional(sent: Result<Value, CallError>) -> Result<bool, CallError> {
    match sent {
        Ok(_) => Ok(true),
        Err(err) if err.code.as_deref() == Some("ConditionalCheckFailedException") => Ok(false),
        Err(err) => Err(err),
    }
}

/// The PutItem request of one write, at `now`.
fn put_request(table: &str, write: &StateWrite, now: DateTime<Utc>) -> Value {
    let at = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let service = write.service();
    let mut request = json!({
        "TableName": table,
        "ConditionExpression": "attribute_not_exists(#pk)",
        "ExpressionAttributeNames": {"#pk": PK},
    });
    request["Item"] = match write {
        StateWrite::Quarantine { digest, reason, .. } => {
            item(service, &quarantine_key(digest), &[("at", &at), ("digest", digest), ("reason", reason)], None)
        }
        StateWrite::Mark { deployment, mark, replaces, .. } => {
            if !replaces.is_empty() {
                let names: Vec<String> = (0..replaces.len()).map(|i| format!(":r{i}")).collect();
                request["ExpressionAttributeNames"]["#mark"] = json!("mark");
                request["ExpressionAttributeValues"] =
                    names.iter().zip(replaces).map(|(name, replaced)| (name.clone(), s(replaced))).collect();
                request["ConditionExpression"] =
                    json!(format!("attribute_not_exists(#pk) OR #mark IN ({})", names.join(", ")));
            }
            let expires = now.timestamp() + MARK_DAYS * 86_400;
            item(service, &mark_key(deployment), &[("at", &at), ("mark", mark)], Some(expires))
        }
        StateWrite::Verdict { task_definition, passed, deployment, why, .. } => {
            let verdict = if *passed { VERDICT_PASSED } else { VERDICT_FAILED };
            request["ConditionExpression"] =
                json!("attribute_not_exists(#pk) OR #verdict <> :verdict OR #deployment <> :deployment");
            request["ExpressionAttributeNames"]["#verdict"] = json!("verdict");
            request["ExpressionAttributeNames"]["#deployment"] = json!("deployment");
            request["ExpressionAttributeValues"] = json!({":verdict": s(verdict), ":deployment": s(deployment)});
            let strings = [("at", at.as_str()), ("verdict", verdict), ("deployment", deployment), ("why", why)];
            item(service, &verdict_key(task_definition), &strings, None)
        }
        StateWrite::Carried { .. } => item(service, CARRIED, &[("at", &at)], None),
        StateWrite::Hold { reason, by, until, .. } => {
            let end = until.map(|u| u.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default();
            request["ConditionExpression"] =
                json!("attribute_not_exists(#pk) OR #reason <> :reason OR #until <> :until OR #by <> :by");
            request["ExpressionAttributeNames"]["#reason"] = json!("reason");
            request["ExpressionAttributeNames"]["#until"] = json!("until");
            request["ExpressionAttributeNames"]["#by"] = json!("by");
            request["ExpressionAttributeValues"] = json!({":reason": s(reason), ":until": s(&end), ":by": s(by)});
            let expires = until.map(|u| u.timestamp() + 86_400);
            item(&hold_key(service), HOLD, &[("at", &at), ("reason", reason), ("by", by), ("until", &end)], expires)
        }
        StateWrite::Override { group, awake, by, until } => {
            let end = until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let state = if *awake { "awake" } else { "asleep" };
            request["ConditionExpression"] =
                json!("attribute_not_exists(#pk) OR #state <> :state OR #until <> :until OR #by <> :by");
            request["ExpressionAttributeNames"]["#state"] = json!("state");
            request["ExpressionAttributeNames"]["#until"] = json!("until");
            request["ExpressionAttributeNames"]["#by"] = json!("by");
            request["ExpressionAttributeValues"] = json!({":state": s(state), ":until": s(&end), ":by": s(by)});
            let strings = [("at", at.as_str()), ("state", state), ("by", by), ("until", &end)];
            item(&override_key(group), OVERRIDE, &strings, Some(until.timestamp() + 86_400))
        }
        StateWrite::Asleep { desired, capacity, why, .. } => {
            let mut asleep = item(&asleep_key(service), ASLEEP, &[("at", &at), ("why", why)], None);
            asleep["desired"] = n(i64::from(*desired));
            if let Some((min, max)) = capacity {
                (asleep["min"], asleep["max"]) = (n(i64::from(*min)), n(i64::from(*max)));
            }
            asleep
        }
    };
    request
}

impl StateTable {
    /// `table`: its name or ARN. The requests go out over `aws`, which may be shared with other signed calls.
    pub fn new(aws: Arc<SignedHttp>, table: impl Into<String>) -> Self {
        Self { aws, table: table.into() }
    }

    pub fn name(&self) -> &str {
        &self.table
    }

    /// The signed connection its requests go over (for other calls in the same account).
    pub fn signed(&self) -> &Arc<SignedHttp> {
        &self.aws
    }

    /// Whether the service sleeps after its promotion, and what it ran with (one consistent GetItem).
    pub async fn asleep(&self, service: &str) -> Result<Option<Asleep>, CallError> {
        let request =
            json!({"TableName": self.table, "Key": key(&asleep_key(service), ASLEEP), "ConsistentRead": true});
        let answer = self.call("GetItem", service, request).await?;
        Ok(Asleep::of(&answer["Item"]))
    }

    /// Ends the hold on a service (its ARN, or [`ALL_SERVICES`]); `Ok(false)`: there was none.
    pub async fn release_hold(&self, service: &str) -> Result<bool, CallError> {
        self.delete_existing(service, key(&hold_key(service), HOLD)).await
    }

    /// Lets a digest held on a service go (a quarantine released by hand); `Ok(false)`: it was not held.
    pub async fn release_quarantine(&self, service: &str, digest: &str) -> Result<bool, CallError> {
        self.delete_existing(service, key(service, &quarantine_key(digest))).await
    }

    /// Deletes one item (for `service`'s sake); `Ok(false)`: there was none.
    async fn delete_existing(&self, service: &str, key: Value) -> Result<bool, CallError> {
        let request = json!({"TableName": self.table, "Key": key, "ReturnValues": "ALL_OLD"});
        let answer = self.call("DeleteItem", service, request).await?;
        Ok(answer["Attributes"].as_object().is_some_and(|a| !a.is_empty()))
    }

    /// The scale group's override by hand, as the table has it (ended or not; one consistent GetItem).
    pub async fn override_of(&self, group: &str) -> Result<Option<Override>, CallError> {
        let request =
            json!({"TableName": self.table, "Key": key(&override_key(group), OVERRIDE), "ConsistentRead": true});
        let answer = self.call("GetItem", group, request).await?;
        Ok(Override::of(&answer["Item"]))
    }

    /// The holds on a service: its own and the one on every service (one consistent BatchGetItem).
    pub async fn holds(&self, service: &str) -> Result<Vec<Hold>, CallError> {
        Ok(self.digest_on(&[service], "").await?.into_iter().flat_map(|seen| seen.holds).collect())
    }

    /// Forgets the service's sleep: it is awake (its next rollout restored its counts).
    pub async fn woke(&self, service: &str) -> Result<(), CallError> {
        let request = json!({"TableName": self.table, "Key": key(&asleep_key(service), ASLEEP)});
        self.call("DeleteItem", service, request).await.map(drop)
    }

    /// Sends one operation of DynamoDB's JSON protocol (1.0), with the retries
    /// of [`SignedHttp`]; its answer, or the error naming the operation and `target`.
    async fn call(&self, operation: &'static str, target: &str, request: Value) -> Result<Value, CallError> {
        self.aws.json_operation(&crate::signed::DYNAMODB, operation, target, &request).await
    }

    /// Everything the table remembers of a service, read consistently (one Query, paged).
    pub async fn memory(&self, service: &str) -> Result<Memory, CallError> {
        let mut memory = Memory::default();
        let mut start: Option<Value> = None;
        loop {
            let mut request = json!({
                "TableName": self.table,
                "ConsistentRead": true,
                "KeyConditionExpression": "#pk = :pk",
                "ExpressionAttributeNames": {"#pk": PK},
                "ExpressionAttributeValues": {":pk": s(service)},
            });
            if let Some(start) = start.take() {
                request["ExclusiveStartKey"] = start;
            }
            let page = self.call("Query", service, request).await?;
            for item in page["Items"].as_array().into_iter().flatten() {
                memory.learn(item);
            }
            match &page["LastEvaluatedKey"] {
                Value::Object(last) if !last.is_empty() => start = Some(Value::Object(last.clone())),
                _ => return Ok(memory),
            }
        }
    }

    /// For each service, whether `digest` is held on it (whole or short), and
    /// whether its tag records were carried over: BatchGetItem, consistent,
    /// 100 keys a request, unprocessed keys asked again after a backoff.
    pub async fn digest_on(&self, services: &[&str], digest: &str) -> Result<Vec<DigestSeen>, CallError> {
        let short = quarantine::short(digest);
        // No digest: what stands on the services (sleep, holds, carried records), no quarantine.
        let mut sorts = vec![CARRIED.to_owned()];
        if !digest.is_empty() {
            sorts.push(quarantine_key(digest));
        }
        if short != digest && !digest.is_empty() {
            sorts.push(quarantine_key(&short));
        }
        let mut keys: Vec<Value> =
            services.iter().flat_map(|service| sorts.iter().map(|sort| key(service, sort))).collect();
        keys.extend(services.iter().map(|service| key(&asleep_key(service), ASLEEP)));
        keys.extend(services.iter().map(|service| key(&hold_key(service), HOLD)));
        if !services.is_empty() {
            keys.push(key(&hold_key(ALL_SERVICES), HOLD));
        }
        let mut found: HashSet<(String, String)> = HashSet::new();
        let mut sleeping: HashMap<String, Asleep> = HashMap::new();
        let mut holds: Vec<Hold> = Vec::new();
        for chunk in keys.chunks(BATCH_KEYS) {
            let mut pending = chunk.to_vec();
            for attempt in 0..BATCH_TRIES {
                if pending.is_empty() {
                    break;
                }
                if attempt > 0 {
                    // Keys left unprocessed: DynamoDB asks for them again after an exponential backoff.
                    self.aws.back_off(attempt).await;
                }
                let mut tables = Map::new();
                tables.insert(
                    self.table.clone(),
                    json!({
                        "Keys": std::mem::take(&mut pending),
                        "ConsistentRead": true,
                    }),
                );
                let answer = self.call("BatchGetItem", &self.table, json!({ "RequestItems": tables })).await?;
                // One table was asked for: its answers are all there are, however DynamoDB names it (name or ARN).
                let items = answer["Responses"].as_object().into_iter().flat_map(|r| r.values());
                for item in items.filter_map(Value::as_array).flatten() {
                    if let (Some(pk), Some(sk)) = (text(item, PK), text(item, SK)) {
                        if let (Some(service), Some(asleep)) = (pk.strip_prefix("asleep#"), Asleep::of(item)) {
                            sleeping.insert(service.to_owned(), asleep);
                        }
                        holds.extend(Hold::of(item));
                        found.insert((pk, sk));
                    }
                }
                let unprocessed = answer["UnprocessedKeys"].as_object().into_iter().flat_map(|u| u.values());
                pending = unprocessed.filter_map(|t| t["Keys"].as_array()).flatten().cloned().collect();
            }
            if !pending.is_empty() {
                return Err(CallError {
                    operation: "BatchGetItem",
                    target: self.table.clone(),
                    code: Some("ProvisionedThroughputExceededException".into()),
                    message: format!("{} keys still unprocessed after {BATCH_TRIES} requests", pending.len()),
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
                    asleep: sleeping.get(*service).cloned(),
                    holds: holds
                        .iter()
                        .filter(|h| h.service == *service || h.service == ALL_SERVICES)
                        .cloned()
                        .collect(),
                }
            })
            .collect())
    }

    /// Applies one write; `Ok(false)` when its condition found the state there
    /// already (a digest held, a deployment told), so nothing changed.
    pub async fn write(&self, write: &StateWrite, now: DateTime<Utc>) -> Result<bool, CallError> {
        conditional(self.call("PutItem", write.service(), put_request(&self.table, write, now)).await)
    }

    /// Takes the service's rollout lease for `seconds`, when nobody holds it
    /// (or the holder's ran out: a run that died holds it no longer). `Ok(false)`: held by another.
    pub async fn lease(&self, service: &str, owner: &str, now: DateTime<Utc>, seconds: i64) -> Result<bool, CallError> {
        let at = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let request = json!({
            "TableName": self.table,
            "Item": item(&lease_key(service), LEASE, &[("owner", owner), ("at", &at)], Some(now.timestamp() + seconds)),
            "ConditionExpression": "attribute_not_exists(#pk) OR #expires < :now",
            "ExpressionAttributeNames": {"#pk": PK, "#expires": "expires"},
            "ExpressionAttributeValues": {":now": n(now.timestamp())},
        });
        conditional(self.call("PutItem", service, request).await)
    }

    /// Gives the lease back, when this owner still holds it.
    pub async fn release(&self, service: &str, owner: &str) -> Result<(), CallError> {
        let request = json!({
            "TableName": self.table,
            "Key": key(&lease_key(service), LEASE),
            "ConditionExpression": "#owner = :owner",
            "ExpressionAttributeNames": {"#owner": "owner"},
            "ExpressionAttributeValues": {":owner": s(owner)},
        });
        // Refused by its condition: another run holds the lease now (this one's ran out); nothing to give back.
        conditional(self.call("DeleteItem", service, request).await).map(drop)
    }
}

/// What [`StateTable::digest_on`] found for one service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestSeen {
    pub quarantined: bool,
    pub carried: bool,
    /// It sleeps after its promotion: its next rollout wakes it.
    pub asleep: Option<Asleep>,
    /// Its hold and the hold on every service, as the table has them (ended ones included: see [`hold_in_force`]).
    pub holds: Vec<Hold>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_or_override_ends_at_the_minute_after_its_length() {
        let at = |text: &str| DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc);
        assert_eq!(ends_at(at("2026-12-06T10:00:20Z"), 60), at("2026-12-06T11:01:00Z"));
        assert_eq!(ends_at(at("2026-12-06T10:00:59Z"), 1), at("2026-12-06T10:02:00Z"));
    }

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
    fn each_write_is_one_conditional_put_of_one_item_and_a_told_mark_replaces_only_a_rollbacks_own() {
        let now = DateTime::parse_from_rfc3339("2026-12-05T10:00:00Z").unwrap().with_timezone(&Utc);
        let service = "arn:aws:ecs:eu-west-1:123456789012:service/shop/api";
        let expires = (now.timestamp() + 90 * 86_400).to_string();
        let table = [
            (
                StateWrite::Quarantine { service: service.into(), digest: "sha256:ab".into(), reason: "failed".into() },
                json!({"TableName": "t", "ConditionExpression": "attribute_not_exists(#pk)",
                       "ExpressionAttributeNames": {"#pk": "pk"},
                       "Item": {"pk": {"S": service}, "sk": {"S": "quarantine#sha256:ab"}, "at": {"S": "2026-12-05T10:00:00Z"},
                                "digest": {"S": "sha256:ab"}, "reason": {"S": "failed"}}}),
            ),
            (
                StateWrite::Mark {
                    service: service.into(),
                    deployment: "ecs-svc/1".into(),
                    mark: "failed".into(),
                    replaces: vec![],
                },
                json!({"TableName": "t", "ConditionExpression": "attribute_not_exists(#pk)",
                       "ExpressionAttributeNames": {"#pk": "pk"},
                       "Item": {"pk": {"S": service}, "sk": {"S": "told#ecs-svc/1"}, "at": {"S": "2026-12-05T10:00:00Z"},
                                "mark": {"S": "failed"}, "expires": {"N": expires}}}),
            ),
            (
                StateWrite::Mark {
                    service: service.into(),
                    deployment: "ecs-svc/2".into(),
                    mark: "rolled-back".into(),
                    replaces: vec!["rollback".into()],
                },
                json!({"TableName": "t", "ConditionExpression": "attribute_not_exists(#pk) OR #mark IN (:r0)",
                       "ExpressionAttributeNames": {"#pk": "pk", "#mark": "mark"},
                       "ExpressionAttributeValues": {":r0": {"S": "rollback"}},
                       "Item": {"pk": {"S": service}, "sk": {"S": "told#ecs-svc/2"}, "at": {"S": "2026-12-05T10:00:00Z"},
                                "mark": {"S": "rolled-back"}, "expires": {"N": expires}}}),
            ),
            (
                StateWrite::Carried { service: service.into() },
                json!({"TableName": "t", "ConditionExpression": "attribute_not_exists(#pk)",
                       "ExpressionAttributeNames": {"#pk": "pk"},
                       "Item": {"pk": {"S": service}, "sk": {"S": "carried#tags"}, "at": {"S": "2026-12-05T10:00:00Z"}}}),
            ),
            (
                // The same verdict of the same deployment is written once; checks run again replace it.
                StateWrite::Verdict {
                    service: service.into(),
                    task_definition: "arn:td/api:8".into(),
                    passed: true,
                    deployment: "d-1".into(),
                    why: "2 requests passed".into(),
                },
                json!({"TableName": "t",
                       "ConditionExpression": "attribute_not_exists(#pk) OR #verdict <> :verdict OR #deployment <> :deployment",
                       "ExpressionAttributeNames": {"#pk": "pk", "#verdict": "verdict", "#deployment": "deployment"},
                       "ExpressionAttributeValues": {":verdict": {"S": "passed"}, ":deployment": {"S": "d-1"}},
                       "Item": {"pk": {"S": service}, "sk": {"S": "verdict#arn:td/api:8"}, "at": {"S": "2026-12-05T10:00:00Z"},
                                "verdict": {"S": "passed"}, "deployment": {"S": "d-1"}, "why": {"S": "2 requests passed"}}}),
            ),
        ];
        for (write, want) in table {
            assert_eq!(put_request("t", &write, now), want, "{write:?}");
        }
    }

    #[test]
    fn a_partition_read_back_is_the_services_memory_and_nothing_else() {
        let items = json!([
            {"pk": {"S": "svc"}, "sk": {"S": "quarantine#sha256:ab"}, "digest": {"S": "sha256:ab"}, "reason": {"S": "failed"}},
            {"pk": {"S": "svc"}, "sk": {"S": "told#ecs-svc/1"}, "mark": {"S": "failed"}, "expires": {"N": "1"}},
            {"pk": {"S": "svc"}, "sk": {"S": "carried#tags"}, "at": {"S": "2026-12-05T10:00:00Z"}},
            {"pk": {"S": "svc"}, "sk": {"S": "verdict#arn:td/api:8"}, "verdict": {"S": "failed"},
             "deployment": {"S": "d-1"}, "why": {"S": "h: passed 0 of 3"}},
            {"pk": {"S": "svc"}, "sk": {"S": "something#else"}},
            {"pk": {"S": "svc"}, "sk": {"N": "7"}},
        ]);
        let mut memory = Memory::default();
        for item in items.as_array().unwrap() {
            memory.learn(item);
        }
        assert_eq!(
            memory,
            Memory {
                quarantine: vec![Quarantined { digest: "sha256:ab".into(), reason: "failed".into() }],
                verdicts: vec![VerdictSeen {
                    task_definition: "arn:td/api:8".into(),
                    passed: false,
                    deployment: "d-1".into(),
                    why: "h: passed 0 of 3".into(),
                }],
                marks: vec![("ecs-svc/1".into(), "failed".into())],
                carried: true,
            }
        );
        assert!(memory.verdict("arn:td/api:8").is_some_and(|v| !v.passed));
        assert_eq!(memory.mark("ecs-svc/1"), Some("failed"));
    }

    /// A table over a stand-in DynamoDB answering with `answer`.
    fn table_at(answer: impl Fn(&str, &str) -> (u16, String) + Send + 'static) -> (StateTable, crate::loopback::Sent) {
        let (url, sent) = crate::loopback::serve(answer);
        (StateTable::new(Arc::new(SignedHttp::new(&crate::loopback::sdk_config(&url))), "t"), sent)
    }

    #[tokio::test]
    async fn keys_left_unprocessed_are_asked_for_again_and_what_comes_back_is_read() {
        let asked = std::sync::atomic::AtomicUsize::new(0);
        let (table, sent) = table_at(move |_, body| {
            let request: Value = serde_json::from_str(body).unwrap();
            let keys = &request["RequestItems"]["t"]["Keys"];
            if asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                // Throttled: nothing read, every key unprocessed.
                return (200, json!({"Responses": {"t": []}, "UnprocessedKeys": {"t": {"Keys": keys}}}).to_string());
            }
            let mut held: Vec<Value> = keys
                .as_array()
                .unwrap()
                .iter()
                .filter(|k| k["pk"]["S"] == "a" && k["sk"]["S"] != "carried#tags" && k["sk"]["S"] != "asleep")
                .cloned()
                .collect();
            // b sleeps after its promotion, with what it ran with.
            held.push(json!({"pk": {"S": "asleep#b"}, "sk": {"S": "asleep"}, "desired": {"N": "2"}, "min": {"N": "1"},
                             "max": {"N": "4"}, "at": {"S": "2026-12-05T01:00:00Z"}, "why": {"S": "promoted"}}));
            (200, json!({"Responses": {"t": held}, "UnprocessedKeys": {}}).to_string())
        });
        let digest = "sha256:aaaaaaaaaaaaaaaa1111111111111111111111111111111111111111111111";
        let seen = table.digest_on(&["a", "b"], digest).await.unwrap();
        let asleep =
            Asleep { desired: 2, capacity: Some((1, 4)), since: "2026-12-05T01:00:00Z".into(), why: "promoted".into() };
        assert_eq!(
            seen,
            [
                DigestSeen { quarantined: true, carried: false, asleep: None, holds: vec![] },
                DigestSeen { quarantined: false, carried: false, asleep: Some(asleep), holds: vec![] }
            ]
        );
        assert_eq!(*sent.lock().unwrap(), ["BatchGetItem", "BatchGetItem"]);
    }

    #[tokio::test]
    async fn a_refused_condition_is_no_error_another_error_names_its_code_and_a_query_reads_every_page() {
        let (table, sent) = table_at(|operation, body| {
            let request: Value = serde_json::from_str(body).unwrap();
            let error = |kind: &str, message: &str| {
                (
                    400,
                    json!({"__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"), "message": message})
                        .to_string(),
                )
            };
            match (operation, request["Item"]["sk"]["S"].as_str()) {
                ("PutItem", Some("carried#tags")) => {
                    error("ConditionalCheckFailedException", "The conditional request failed")
                }
                ("PutItem", _) => error("AccessDeniedException", "not authorized to perform: dynamodb:PutItem"),
                ("Query", _) if request["ExclusiveStartKey"].is_null() => (
                    200,
                    json!({
                    "Items": [{"pk": {"S": "a"}, "sk": {"S": "carried#tags"}}],
                    "LastEvaluatedKey": {"pk": {"S": "a"}, "sk": {"S": "carried#tags"}}})
                    .to_string(),
                ),
                _ => (
                    200,
                    json!({"Items": [{"pk": {"S": "a"}, "sk": {"S": "told#ecs-svc/1"}, "mark": {"S": "failed"}}]})
                        .to_string(),
                ),
            }
        });
        let now = DateTime::parse_from_rfc3339("2026-12-05T10:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(table.write(&StateWrite::Carried { service: "a".into() }, now).await, Ok(false));
        let quarantine = StateWrite::Quarantine { service: "a".into(), digest: "sha256:ab".into(), reason: "x".into() };
        let err = table.write(&quarantine, now).await.unwrap_err();
        assert_eq!(err.code.as_deref(), Some("AccessDeniedException"));
        assert_eq!(err.to_string(), "PutItem on a failed: not authorized to perform: dynamodb:PutItem");
        let memory = table.memory("a").await.unwrap();
        assert!(memory.carried);
        assert_eq!(memory.mark("ecs-svc/1"), Some("failed"));
        assert_eq!(*sent.lock().unwrap(), ["PutItem", "PutItem", "Query", "Query"]);
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
