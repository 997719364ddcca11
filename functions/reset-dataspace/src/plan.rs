//! The decisions: which participants, when the run began, the guard, and
//! each participant's reset (DID document, restarts). No AWS calls here.

use aws_sdk_ecs::types::Service;
use chrono::{DateTime, Timelike, Utc};
use nightshift::Trigger;
use nightshift::s3_sweep::S3Error;
use serde_json::Value;

use crate::calls::DATASPACE_TAG;
use crate::manifest::{Manifest, Participant};
use crate::{DidOutcome, DidReport, ServiceReset};

/// `{"participants": [...]}` resets those; any other event resets all.
pub fn selection(payload: &Value) -> Result<Option<Vec<String>>, String> {
    let Some(list) = payload.get("participants") else {
        return Ok(None);
    };
    let names = list.as_array().ok_or("participants: must be a list of participant names")?;
    names
        .iter()
        .enumerate()
        .map(|(i, n)| n.as_str().map(str::to_owned).ok_or_else(|| format!("participants[{i}]: must be a name")))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// When the run began: the schedule's time, a manual event's `time`, else `now`.
pub fn run_start(trigger: &Trigger, payload: &Value, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    match trigger {
        Trigger::Scheduled { time, .. } => Ok(*time),
        Trigger::Manual => match payload.get("time") {
            None => Ok(now),
            Some(Value::String(text)) => DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| format!("time: {text:?} is not an RFC 3339 time ({e})")),
            Some(other) => Err(format!("time: must be an RFC 3339 time, not {other}")),
        },
    }
}

/// When the service's current deployment began, if it began at or after
/// `start` and the service is at the declared count and revision: this run
/// (or another since it began) restarted it already.
pub fn restarted_since(
    service: &Service,
    desired_count: i64,
    task_definition: Option<&str>,
    start: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let primary = service.deployments().iter().find(|d| d.status() == Some("PRIMARY"))?;
    let at = primary.created_at()?;
    let at = DateTime::<Utc>::from_timestamp(at.secs(), at.subsec_nanos())?;
    let revision = nightshift::ecs::revision_of;
    let same_revision =
        task_definition.is_none_or(|want| service.task_definition().is_some_and(|td| revision(td) == revision(want)));
    (at >= start && i64::from(service.desired_count()) == desired_count && same_revision).then_some(at)
}

/// The guard: every service and bucket of the participant exists and carries
/// `nightshift:dataspace=<dataspace>`. `Err` says the first one that does not.
pub fn guard(
    dataspace: &str,
    participant: &Participant,
    services: &[Service],
    buckets: &[(String, Result<Option<String>, S3Error>)],
) -> Result<(), String> {
    for spec in &participant.services {
        let found =
            services.iter().find(|s| s.service_name() == Some(spec.service.as_str()) && s.status() != Some("INACTIVE"));
        let Some(service) = found else {
            return Err(format!("service {:?} not found in cluster {:?}", spec.service, participant.cluster));
        };
        let tag = nightshift::ecs::tag_value(service.tags(), DATASPACE_TAG);
        if tag != Some(dataspace) {
            return Err(match tag {
                None => format!("service {}/{} is not tagged {DATASPACE_TAG}", participant.cluster, spec.service),
                Some(other) => format!(
                    "service {}/{} is tagged {DATASPACE_TAG}={other}, not {dataspace}",
                    participant.cluster, spec.service
                ),
            });
        }
    }
    for (bucket, tag) in buckets {
        match tag {
            Err(err) => return Err(err.to_string()),
            Ok(None) => return Err(format!("bucket {bucket:?} is not tagged {DATASPACE_TAG}")),
            Ok(Some(other)) if other != dataspace => {
                return Err(format!("bucket {bucket:?} is tagged {DATASPACE_TAG}={other}, not {dataspace}"));
            }
            Ok(Some(_)) => {}
        }
    }
    Ok(())
}

/// One participant's reset, decided before anything changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantPlan {
    /// The purges delete what was last modified before this (the run's start, to the second).
    pub purge_before: DateTime<Utc>,
    pub did: DidReport,
    /// Each declared service: restarted, unless `restarted_at` says it was since the run began.
    pub restarts: Vec<ServiceReset>,
}

/// Decides the reset of a participant the guard let through, from its
/// services and its DID document (with when it was written) now.
pub fn plan_participant(
    p: &Participant,
    services: &[Service],
    document: Option<(Value, DateTime<Utc>)>,
    started: DateTime<Utc>,
) -> ParticipantPlan {
    // S3 gives times to the second: what was written in the second the run began counts as after it.
    let purge_before = started.with_nanosecond(0).unwrap_or(started);
    let key = Manifest::did_key(p);
    // A document the purge deletes (under a purged prefix, written before the run) is not there to keep.
    let purged = p.purge.iter().any(|x| x.bucket == p.did.bucket && key.starts_with(&x.prefix));
    let current = document.as_ref().filter(|(_, written)| !(purged && *written < purge_before));
    let did = DidReport {
        bucket: p.did.bucket.clone(),
        key,
        outcome: did_outcome(current.map(|(d, w)| (d, *w)), &p.did.document, purge_before),
    };
    let restarts = p
        .services
        .iter()
        .map(|spec| {
            let service = services.iter().find(|s| s.service_name() == Some(spec.service.as_str()));
            ServiceReset {
                service: spec.service.clone(),
                desired_count: spec.desired_count,
                task_definition: spec.task_definition.clone(),
                restarted_at: service
                    .and_then(|s| restarted_since(s, spec.desired_count, spec.task_definition.as_deref(), started)),
            }
        })
        .collect();
    ParticipantPlan { purge_before, did, restarts }
}

/// The DID document's fate: unchanged when it is the declared one, kept when
/// another was written since the run began, else published.
pub fn did_outcome(current: Option<(&Value, DateTime<Utc>)>, declared: &Value, since: DateTime<Utc>) -> DidOutcome {
    match current {
        Some((document, _)) if document == declared => DidOutcome::Unchanged,
        Some((_, written)) if written >= since => DidOutcome::Kept,
        _ => DidOutcome::Published,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::Tag;
    use serde_json::json;

    fn participant() -> Participant {
        let m = Manifest::parse(include_bytes!("../../../dataspace/mvd.json")).unwrap();
        m.participants[1].clone()
    }

    fn service(name: &str, tag: Option<&str>) -> Service {
        let mut b = Service::builder().service_name(name).status("ACTIVE");
        if let Some(tag) = tag {
            b = b.tags(Tag::builder().key(DATASPACE_TAG).value(tag).build());
        }
        b.build()
    }

    fn tagged(p: &Participant, tag: Option<&str>) -> Vec<Service> {
        p.services.iter().map(|s| service(&s.service, tag)).collect()
    }

    fn buckets(p: &Participant, tag: Option<&str>) -> Vec<(String, Result<Option<String>, S3Error>)> {
        std::iter::once(&p.did.bucket)
            .chain(p.purge.iter().map(|x| &x.bucket))
            .map(|b| (b.clone(), Ok(tag.map(str::to_owned))))
            .collect()
    }

    #[test]
    fn the_guard_lets_through_only_what_is_tagged_with_the_dataspace() {
        let p = participant();
        assert_eq!(guard("mvd", &p, &tagged(&p, Some("mvd")), &buckets(&p, Some("mvd"))), Ok(()));
        let table = [
            (tagged(&p, None), buckets(&p, Some("mvd")), "service selt/connector is not tagged nightshift:dataspace"),
            (
                tagged(&p, Some("prod")),
                buckets(&p, Some("mvd")),
                "service selt/connector is tagged nightshift:dataspace=prod, not mvd",
            ),
            (
                tagged(&p, Some("mvd"))[1..].to_vec(),
                buckets(&p, Some("mvd")),
                "service \"connector\" not found in cluster \"selt\"",
            ),
            (tagged(&p, Some("mvd")), buckets(&p, None), "bucket \"selt-did\" is not tagged nightshift:dataspace"),
            (
                tagged(&p, Some("mvd")),
                buckets(&p, Some("other")),
                "bucket \"selt-did\" is tagged nightshift:dataspace=other, not mvd",
            ),
        ];
        for (services, buckets, want) in table {
            assert_eq!(guard("mvd", &p, &services, &buckets), Err(want.to_owned()));
        }
    }

    #[test]
    fn the_event_selects_participants_or_all() {
        assert_eq!(selection(&json!({})), Ok(None));
        assert_eq!(selection(&json!({"version": "0", "detail-type": "Scheduled Event"})), Ok(None));
        assert_eq!(selection(&json!({"participants": ["a", "b"]})), Ok(Some(vec!["a".into(), "b".into()])));
        assert!(selection(&json!({"participants": "a"})).unwrap_err().contains("must be a list"));
        assert!(selection(&json!({"participants": ["a", 3]})).unwrap_err().starts_with("participants[1]"));
    }

    #[test]
    fn a_run_starts_at_its_schedule_or_when_it_began() {
        let now: DateTime<Utc> = "2026-11-27T00:00:03Z".parse().unwrap();
        let due: DateTime<Utc> = "2026-11-27T00:00:00Z".parse().unwrap();
        let scheduled = Trigger::Scheduled { id: "x".into(), time: due };
        assert_eq!(run_start(&scheduled, &json!({}), now), Ok(due));
        assert_eq!(run_start(&Trigger::Manual, &json!({"participants": ["a"]}), now), Ok(now));
        assert_eq!(run_start(&Trigger::Manual, &json!({"time": "2026-11-27T00:00:00Z"}), now), Ok(due));
        assert!(run_start(&Trigger::Manual, &json!({"time": "midnight"}), now).unwrap_err().starts_with("time: "));
        assert!(run_start(&Trigger::Manual, &json!({"time": 0}), now).unwrap_err().starts_with("time: must be"));
    }

    #[test]
    fn a_service_counts_as_restarted_when_its_deployment_began_since_and_it_is_as_declared() {
        use aws_sdk_ecs::primitives::DateTime as AwsTime;
        use aws_sdk_ecs::types::Deployment;
        let start: DateTime<Utc> = "2026-11-27T00:00:00Z".parse().unwrap();
        let service = |created: i64, count: i32, td: &str| {
            Service::builder()
                .desired_count(count)
                .task_definition(format!("arn:aws:ecs:us-east-1:123456789012:task-definition/{td}"))
                .deployments(
                    Deployment::builder().status("ACTIVE").created_at(AwsTime::from_secs(created + 99)).build(),
                )
                .deployments(Deployment::builder().status("PRIMARY").created_at(AwsTime::from_secs(created)).build())
                .build()
        };
        let at = start.timestamp();
        // (deployment began, count, revision, declared count, declared revision, counts as restarted)
        let table = [
            (at + 5, 1, "gti-connector:1", 1, Some("gti-connector:1"), true),
            (at + 5, 1, "gti-connector:1", 1, None, true),
            (at, 1, "gti-connector:1", 1, None, true),
            (at - 5, 1, "gti-connector:1", 1, None, false),
            (at + 5, 2, "gti-connector:1", 1, None, false),
            (at + 5, 1, "gti-connector:2", 1, Some("gti-connector:1"), false),
        ];
        for (created, count, td, declared, declared_td, restarted) in table {
            let found = restarted_since(&service(created, count, td), declared, declared_td, start);
            assert_eq!(found.is_some(), restarted, "{created} {count} {td} {declared} {declared_td:?}");
        }
    }

    #[test]
    fn the_did_document_is_published_unless_it_is_the_declared_one_or_written_since_the_run_began() {
        let start: DateTime<Utc> = "2026-11-27T00:00:00Z".parse().unwrap();
        let (declared, other) = (json!({"id": "did:web:a"}), json!({"id": "did:web:b"}));
        let before = start - chrono::Duration::seconds(1);
        let table = [
            (None, DidOutcome::Published),
            (Some((&declared, before)), DidOutcome::Unchanged),
            (Some((&declared, start)), DidOutcome::Unchanged),
            (Some((&other, before)), DidOutcome::Published),
            (Some((&other, start)), DidOutcome::Kept),
        ];
        for (current, want) in table {
            assert_eq!(did_outcome(current, &declared, start), want, "{current:?}");
        }
    }

    #[test]
    fn the_plan_restarts_each_declared_service_unless_restarted_since_and_purges_to_the_second() {
        use aws_sdk_ecs::primitives::DateTime as AwsTime;
        use aws_sdk_ecs::types::Deployment;
        // Given a run that began mid-second, one service restarted since and one not
        let p = participant();
        let start: DateTime<Utc> = "2026-11-27T00:00:00.600Z".parse().unwrap();
        let since = AwsTime::from_secs(start.timestamp() + 5);
        let services: Vec<Service> = p
            .services
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let created = if i == 0 { since } else { AwsTime::from_secs(start.timestamp() - 60) };
                Service::builder()
                    .service_name(&spec.service)
                    .desired_count(i32::try_from(spec.desired_count).unwrap())
                    .set_task_definition(spec.task_definition.clone())
                    .deployments(Deployment::builder().status("PRIMARY").created_at(created).build())
                    .build()
            })
            .collect();
        // When the participant is planned with its declared document in place
        let written = start - chrono::Duration::hours(1);
        let plan = plan_participant(&p, &services, Some((p.did.document.clone(), written)), start);
        // Then only the service not restarted since is restarted, the document is left, and the purge cuts at the second
        let restarted: Vec<bool> = plan.restarts.iter().map(|r| r.restarted_at.is_some()).collect();
        assert_eq!(restarted.len(), p.services.len());
        assert!(restarted[0] && restarted[1..].iter().all(|r| !r));
        assert_eq!(plan.did.outcome, DidOutcome::Unchanged);
        assert_eq!(plan.purge_before, "2026-11-27T00:00:00Z".parse::<DateTime<Utc>>().unwrap());
    }
}
