//! The dataspace manifest: the initial setup a reset returns to.
//!
//! Read whole and validated before anything is touched; every error names the
//! path of the bad field (`participants[1].services[0].desired_count`).

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Every touched resource must carry `nightshift:dataspace=<this>`.
    pub dataspace: String,
    pub participants: Vec<Participant>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Participant {
    pub name: String,
    pub cluster: String,
    pub services: Vec<ServiceSpec>,
    pub did: DidSpec,
    #[serde(default)]
    pub purge: Vec<PurgeSpec>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub service: String,
    pub desired_count: i64,
    /// `family:revision` or a full ARN; the service keeps its own when absent.
    #[serde(default)]
    pub task_definition: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DidSpec {
    pub bucket: String,
    pub document: Value,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeSpec {
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
}

/// Where a `did:web` DID's document is published: the key in the DID bucket.
///
/// `did:web:host` resolves to `https://host/.well-known/did.json`, and
/// `did:web:host:a:b` to `https://host/a/b/did.json`; a port is written
/// `%3A` in the host and is not part of the key.
pub fn did_document_key(did: &str) -> Result<String, String> {
    let rest = did.strip_prefix("did:web:").ok_or_else(|| format!("{did:?} is not a did:web DID"))?;
    let mut parts = rest.split(':');
    let host = parts.next().unwrap_or_default();
    let (name, port) = match host.split_once("%3A").or_else(|| host.split_once("%3a")) {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let host_ok = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        && port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if !host_ok {
        return Err(format!("{did:?}: {host:?} is not a host name (a port is written %3A)"));
    }
    let path: Vec<&str> = parts.collect();
    if path.is_empty() {
        return Ok(".well-known/did.json".into());
    }
    let mut key = String::new();
    for segment in path {
        let decoded = nightshift::percent::decode(segment, false)
            .map_err(|_| format!("{did:?}: path segment {segment:?} is not valid"))?;
        if decoded.is_empty() || decoded.contains('/') || decoded == "." || decoded == ".." {
            return Err(format!("{did:?}: path segment {segment:?} is not valid"));
        }
        key.push_str(&decoded);
        key.push('/');
    }
    key.push_str("did.json");
    Ok(key)
}

fn name_ok(name: &str) -> bool {
    !name.trim().is_empty() && name.trim() == name
}

fn bucket_ok(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

impl Manifest {
    /// Parses and validates; the error starts with the path of the bad field.
    pub fn parse(text: &[u8]) -> Result<Self, String> {
        let de = &mut serde_json::Deserializer::from_slice(text);
        let manifest: Self = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." { inner.to_string() } else { format!("{path}: {inner}") }
        })?;
        manifest.validate()?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<(), String> {
        if !name_ok(&self.dataspace) {
            return Err("dataspace: must be a name".into());
        }
        if self.participants.is_empty() {
            return Err("participants: must list at least one participant".into());
        }
        let mut names = HashSet::new();
        for (i, p) in self.participants.iter().enumerate() {
            let at = format!("participants[{i}]");
            if !name_ok(&p.name) {
                return Err(format!("{at}.name: must be a name"));
            }
            if !names.insert(p.name.as_str()) {
                return Err(format!("{at}.name: {:?} is listed twice", p.name));
            }
            if !name_ok(&p.cluster) {
                return Err(format!("{at}.cluster: must be a cluster name"));
            }
            let mut services = HashSet::new();
            for (j, s) in p.services.iter().enumerate() {
                let at = format!("{at}.services[{j}]");
                if !name_ok(&s.service) {
                    return Err(format!("{at}.service: must be a service name"));
                }
                if !services.insert(s.service.as_str()) {
                    return Err(format!("{at}.service: {:?} is listed twice", s.service));
                }
                if !(0..=10_000).contains(&s.desired_count) {
                    return Err(format!("{at}.desired_count: {} is not a count from 0 to 10000", s.desired_count));
                }
                if let Some(td) = &s.task_definition {
                    let ok = td.starts_with("arn:")
                        || td.split_once(':').is_some_and(|(f, r)| !f.is_empty() && r.parse::<u32>().is_ok());
                    if !ok {
                        return Err(format!("{at}.task_definition: {td:?} is neither family:revision nor an ARN"));
                    }
                }
            }
            if !bucket_ok(&p.did.bucket) {
                return Err(format!("{at}.did.bucket: {:?} is not a bucket name", p.did.bucket));
            }
            let Some(document) = p.did.document.as_object() else {
                return Err(format!("{at}.did.document: must be a JSON object"));
            };
            match document.get("id").and_then(Value::as_str) {
                None => return Err(format!("{at}.did.document.id: is missing")),
                Some(id) => {
                    did_document_key(id).map_err(|e| format!("{at}.did.document.id: {e}"))?;
                }
            }
            for (k, purge) in p.purge.iter().enumerate() {
                if !bucket_ok(&purge.bucket) {
                    return Err(format!("{at}.purge[{k}].bucket: {:?} is not a bucket name", purge.bucket));
                }
            }
        }
        Ok(())
    }

    /// The participants to reset: `only` by name (each must exist), or all.
    pub fn select(&self, only: Option<&[String]>) -> Result<Vec<&Participant>, String> {
        let Some(only) = only else {
            return Ok(self.participants.iter().collect());
        };
        if only.is_empty() {
            return Err("participants: the list is empty; leave it out to reset all".into());
        }
        only.iter()
            .map(|name| {
                self.participants.iter().find(|p| &p.name == name).ok_or_else(|| {
                    let known: Vec<&str> = self.participants.iter().map(|p| p.name.as_str()).collect();
                    format!("participants: no participant {name:?} in the manifest (it has {})", known.join(", "))
                })
            })
            .collect()
    }

    /// The key a participant's DID document is published at (validated in `parse`).
    pub fn did_key(participant: &Participant) -> String {
        participant.did.document["id"].as_str().and_then(|id| did_document_key(id).ok()).unwrap_or_default()
    }
}

/// `s3://bucket/key`, as `DATASPACE_MANIFEST` holds it.
pub fn parse_s3_uri(uri: &str) -> Option<(String, String)> {
    let (bucket, key) = uri.strip_prefix("s3://")?.split_once('/')?;
    (bucket_ok(bucket) && !key.is_empty()).then(|| (bucket.to_owned(), key.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> Value {
        json!({
            "dataspace": "mvd",
            "participants": [{
                "name": "galactic-turbine-industries",
                "cluster": "gti",
                "services": [
                    {"service": "connector", "desired_count": 1, "task_definition": "gti-connector:1"},
                    {"service": "dpf", "desired_count": 3}
                ],
                "did": {"bucket": "gti-did", "document": {"id": "did:web:gti.example.org", "@context": ["https://www.w3.org/ns/did/v1"]}},
                "purge": [{"bucket": "gti-data", "prefix": "transfers/"}]
            }]
        })
    }

    fn parse(v: &Value) -> Result<Manifest, String> {
        Manifest::parse(v.to_string().as_bytes())
    }

    #[test]
    fn the_issues_example_is_valid() {
        let m = parse(&valid()).unwrap();
        assert_eq!(m.participants[0].services[1].task_definition, None);
        assert_eq!(Manifest::did_key(&m.participants[0]), ".well-known/did.json");
    }

    #[test]
    fn the_shipped_manifest_is_the_seeds_three_participants() {
        let text = include_bytes!("../../../dataspace/mvd.json");
        let m = Manifest::parse(text).unwrap();
        let names: Vec<&str> = m.participants.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["galactic-turbine-industries", "space-enforcer-laser-tec", "interstellar-assembly-services"]
        );
        let dpf = |i: usize| m.participants[i].services.iter().find(|s| s.service == "dpf").unwrap().desired_count;
        assert_eq!((dpf(0), dpf(1), dpf(2)), (3, 1, 3));
        assert!(m.participants[0].services.iter().any(|s| s.service == "catalog"), "GTI runs a standalone catalog");
    }

    #[test]
    fn invalid_manifests_name_the_path_of_the_bad_field() {
        type Breakage = fn(&mut Value);
        let table: [(Breakage, &str); 11] = [
            (|m| m["participants"][0]["colour"] = json!("red"), "participants[0].colour: unknown field `colour`"),
            (
                |m| m["participants"][0]["services"][1]["desired_count"] = json!(-1),
                "participants[0].services[1].desired_count: -1 is not a count",
            ),
            (
                |m| m["participants"][0]["services"][1]["desired_count"] = json!("3"),
                "participants[0].services[1].desired_count: invalid type",
            ),
            (
                |m| {
                    m["participants"][0]["did"]["document"].as_object_mut().unwrap().remove("id");
                },
                "participants[0].did.document.id: is missing",
            ),
            (
                |m| m["participants"][0]["did"]["document"]["id"] = json!("did:key:z6Mk"),
                "participants[0].did.document.id: \"did:key:z6Mk\" is not a did:web DID",
            ),
            (
                |m| {
                    let p = m["participants"][0].clone();
                    m["participants"].as_array_mut().unwrap().push(p);
                },
                "participants[1].name: \"galactic-turbine-industries\" is listed twice",
            ),
            (
                |m| m["participants"][0]["services"][1]["service"] = json!("connector"),
                "participants[0].services[1].service: \"connector\" is listed twice",
            ),
            (|m| m["participants"][0]["purge"][0]["bucket"] = json!("Not A Bucket"), "participants[0].purge[0].bucket"),
            (
                |m| m["participants"][0]["services"][0]["task_definition"] = json!("latest"),
                "participants[0].services[0].task_definition",
            ),
            (
                |m| {
                    m.as_object_mut().unwrap().remove("dataspace");
                },
                "missing field `dataspace`",
            ),
            (|m| m["participants"] = json!([]), "participants: must list at least one"),
        ];
        for (break_it, want) in table {
            let mut m = valid();
            break_it(&mut m);
            let err = parse(&m).unwrap_err();
            assert!(err.starts_with(want), "want {want:?} first, got {err:?}");
        }
        assert!(Manifest::parse(b"{not json").unwrap_err().contains("key must be a string"));
    }

    #[test]
    fn did_web_resolves_to_its_document_key() {
        let table = [
            ("did:web:gti.example.org", Ok(".well-known/did.json")),
            ("did:web:example.com:user:alice", Ok("user/alice/did.json")),
            ("did:web:localhost%3A8443", Ok(".well-known/did.json")),
            ("did:web:localhost%3A8443:participants:sel", Ok("participants/sel/did.json")),
            ("did:web:example.com:caf%C3%A9", Ok("café/did.json")),
            ("did:web:", Err("is not a host name")),
            ("did:web:exa mple.com", Err("is not a host name")),
            ("did:web:example.com%3A", Err("is not a host name")),
            ("did:web:example.com::x", Err("path segment")),
            ("did:web:example.com:a%2Fb", Err("path segment")),
            ("did:web:example.com:..", Err("path segment")),
            ("did:key:z6Mk", Err("not a did:web DID")),
        ];
        for (did, want) in table {
            match (did_document_key(did), want) {
                (Ok(key), Ok(w)) => assert_eq!(key, w, "{did}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{did}: {e}"),
                (got, want) => panic!("{did}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_selection_names_existing_participants_only() {
        let m = parse(&valid()).unwrap();
        assert_eq!(m.select(None).unwrap().len(), 1);
        let one = ["galactic-turbine-industries".to_owned()];
        assert_eq!(m.select(Some(&one)).unwrap()[0].name, "galactic-turbine-industries");
        let unknown = ["acme".to_owned()];
        assert!(m.select(Some(&unknown)).unwrap_err().contains("no participant \"acme\""));
        assert!(m.select(Some(&[])).unwrap_err().contains("empty"));
    }

    #[test]
    fn manifest_uris_are_s3_uris() {
        assert_eq!(
            parse_s3_uri("s3://mvd-config/manifests/mvd.json"),
            Some(("mvd-config".into(), "manifests/mvd.json".into()))
        );
        for bad in ["https://x/y", "s3://bucket", "s3://bucket/", "s3://B/k", "mvd.json"] {
            assert_eq!(parse_s3_uri(bad), None, "{bad}");
        }
    }
}
