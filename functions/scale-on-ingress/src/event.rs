//! The triggers: S3 event notifications, and EventBridge "Object Created" events from S3.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::s3::S3Event;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

/// Files that landed under the prefix, and when the last one did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingress {
    pub keys: Vec<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngressEvent {
    Ingress(Ingress),
    /// Well-formed, but nothing to act on: the reason.
    Ignored(String),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ObjectCreated {
    object: ObjectDetail,
}

#[derive(Debug, Deserialize)]
struct ObjectDetail {
    key: String,
}

/// Decodes a key as S3 notifications carry it: URL-encoded, spaces as `+`.
pub fn decode_key(encoded: &str) -> Result<String, String> {
    nightshift::percent::decode(encoded, true).map_err(|why| format!("key {encoded:?}: {why}"))
}

/// Reads the event; keys outside `prefix` do not count.
pub fn parse(payload: &Value, prefix: &str) -> Result<IngressEvent, String> {
    if payload.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(IngressEvent::Ignored("s3:TestEvent (sent when a notification is configured)".into()));
    }
    let (keys, times) = if payload.get("Records").is_some() {
        let event: S3Event =
            serde_json::from_value(payload.clone()).map_err(|e| format!("not an S3 notification: {e}"))?;
        let mut keys = Vec::new();
        let mut times = Vec::new();
        for (n, record) in event.records.iter().enumerate() {
            if !record.event_name.as_deref().unwrap_or_default().starts_with("ObjectCreated:") {
                continue;
            }
            let key =
                record.s3.object.key.as_deref().ok_or_else(|| format!("Records[{n}].s3.object.key is missing"))?;
            keys.push(decode_key(key).map_err(|e| format!("Records[{n}].s3.object.key: {e}"))?);
            times.push(record.event_time);
        }
        (keys, times)
    } else {
        let event: EventBridgeEvent<Value> = serde_json::from_value(payload.clone())
            .map_err(|e| format!("neither an S3 notification nor an EventBridge event: {e}"))?;
        if event.source != "aws.s3" || event.detail_type != "Object Created" {
            return Ok(IngressEvent::Ignored(format!(
                "not an S3 Object Created event (source {:?}, detail-type {:?})",
                event.source, event.detail_type
            )));
        }
        let time = event.time.ok_or("time is missing")?;
        let detail: ObjectCreated =
            serde_json::from_value(event.detail).map_err(|e| format!("detail.object.key: {e}"))?;
        // EventBridge carries the key as it is, not URL-encoded.
        (vec![detail.object.key], vec![time])
    };
    let (keys, times): (Vec<String>, Vec<DateTime<Utc>>) =
        keys.into_iter().zip(times).filter(|(k, _)| k.starts_with(prefix)).unzip();
    match times.into_iter().max() {
        Some(at) => Ok(IngressEvent::Ingress(Ingress { keys, at })),
        None if prefix.is_empty() => Ok(IngressEvent::Ignored("no object was created".into())),
        None => Ok(IngressEvent::Ignored(format!("no created key under {prefix:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn notification(keys: &[&str]) -> Value {
        let records: Vec<Value> = keys
            .iter()
            .enumerate()
            .map(|(n, key)| {
                json!({
                    "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "eu-west-1",
                    "eventTime": format!("2026-11-28T03:0{n}:00.000Z"), "eventName": "ObjectCreated:Put",
                    "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
                    "requestParameters": {"sourceIPAddress": "10.0.0.1"},
                    "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8"},
                    "s3": {"s3SchemaVersion": "1.0", "configurationId": "nightshift",
                           "bucket": {"name": "ingress", "ownerIdentity": {"principalId": "A3NL1KOZZKExample"}, "arn": "arn:aws:s3:::ingress"},
                           "object": {"key": key, "size": 1024, "eTag": "d41d8cd98f00b204e9800998ecf8427e", "sequencer": "0055AED6DCD90281E5"}}
                })
            })
            .collect();
        json!({ "Records": records })
    }

    #[test]
    fn keys_are_url_decoded() {
        let table = [
            ("file+one.csv", "file one.csv"),
            ("landing%2Fday%3D1%2Fa.csv", "landing/day=1/a.csv"),
            ("caf%C3%A9.csv", "café.csv"),
            ("100%25+done.csv", "100% done.csv"),
        ];
        for (encoded, decoded) in table {
            assert_eq!(decode_key(encoded).unwrap(), decoded);
        }
        assert!(decode_key("bad%zz").unwrap_err().contains("not hex"));
        assert!(decode_key("cut%2").unwrap_err().contains("two hex digits"));
    }

    #[test]
    fn a_notification_gives_its_keys_and_the_latest_time() {
        let IngressEvent::Ingress(ingress) =
            parse(&notification(&["landing/file+one.csv", "landing%2Fb.csv"]), "").unwrap()
        else {
            panic!()
        };
        assert_eq!(ingress.keys, ["landing/file one.csv", "landing/b.csv"]);
        assert_eq!(ingress.at, "2026-11-28T03:01:00Z".parse::<DateTime<Utc>>().unwrap());
    }

    #[test]
    fn keys_outside_the_prefix_do_not_count() {
        let IngressEvent::Ingress(ingress) = parse(&notification(&["landing/a.csv", "tmp/b.csv"]), "landing/").unwrap()
        else {
            panic!()
        };
        assert_eq!(ingress.keys, ["landing/a.csv"]);
        assert_eq!(
            parse(&notification(&["tmp/b.csv"]), "landing/").unwrap(),
            IngressEvent::Ignored("no created key under \"landing/\"".into())
        );
    }

    #[test]
    fn eventbridge_object_created_events_count_and_others_are_ignored() {
        let mut event = json!({
            "version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103", "detail-type": "Object Created",
            "source": "aws.s3", "account": "123456789012", "time": "2026-11-28T03:05:00Z", "region": "eu-west-1",
            "resources": ["arn:aws:s3:::ingress"],
            "detail": {"version": "0", "bucket": {"name": "ingress"},
                       "object": {"key": "landing/file one+two.csv", "size": 5, "etag": "b1946ac92492d2347c6235b4d2611184", "sequencer": "00617F08299329D189"},
                       "request-id": "N4N7GDK58NMKJ12R", "requester": "123456789012", "reason": "PutObject"}
        });
        let IngressEvent::Ingress(ingress) = parse(&event, "landing/").unwrap() else { panic!() };
        assert_eq!(ingress.keys, ["landing/file one+two.csv"]);
        event["detail-type"] = json!("Object Deleted");
        assert!(matches!(parse(&event, ""), Ok(IngressEvent::Ignored(_))));
    }

    #[test]
    fn the_test_event_and_other_records_are_ignored_and_garbage_is_an_error() {
        let test_event = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-11-28T03:00:00.000Z",
                                "Bucket": "ingress", "RequestId": "5582815E1AEA5ADF", "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"});
        assert!(matches!(parse(&test_event, ""), Ok(IngressEvent::Ignored(r)) if r.starts_with("s3:TestEvent")));
        let mut removed = notification(&["a.csv"]);
        removed["Records"][0]["eventName"] = json!("ObjectRemoved:Delete");
        assert_eq!(parse(&removed, "").unwrap(), IngressEvent::Ignored("no object was created".into()));
        assert!(parse(&json!({"Records": "x"}), "").unwrap_err().starts_with("not an S3 notification"));
        assert!(parse(&json!(42), "").unwrap_err().starts_with("neither"));
    }
}
