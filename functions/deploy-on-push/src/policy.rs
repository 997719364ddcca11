//! Which pushed tags a container takes: the service's `nightshift:deploy` tag
//! (`semver`, `minor`, `patch`, `track`, `label`), or the container's own
//! docker label `nightshift.deploy`, which also takes `glob:` and `regex:`
//! (ECS tag values cannot hold `*`, `|`, `[` and the like; docker labels can).

use std::cmp::Ordering;
use std::fmt;

use regex_lite::Regex;

/// A tag read as `<prefix><major>.<minor>.<patch>[-suffix][+build]`, the
/// prefix being whatever comes before the first digit (`v`, `RC_`, or none).
/// The suffix is a pre-release (`-rc.1`, `-beta2`, `-3`) when its first
/// identifier is a number or starts with a pre-release word; otherwise it is
/// an image variant (`-alpine`, `-slim`, `-debian12`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub prefix: String,
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// Dot-separated identifiers of a pre-release; empty for a release.
    pub pre: Vec<String>,
    /// The variant suffix (`alpine`); empty for a plain image.
    pub variant: String,
}

/// First identifiers of a pre-release, less any digits after them (`rc1`, `beta`).
const PRE_RELEASE_WORDS: [&str; 16] = [
    "a",
    "alpha",
    "b",
    "beta",
    "canary",
    "cr",
    "dev",
    "ea",
    "m",
    "milestone",
    "next",
    "nightly",
    "pre",
    "preview",
    "rc",
    "snapshot",
];

/// Whether a version suffix is a pre-release rather than an image variant.
fn is_pre_release_suffix(suffix: &str) -> bool {
    let first = suffix.split(['.', '-']).next().unwrap_or_default().to_ascii_lowercase();
    let word = first.trim_end_matches(|c: char| c.is_ascii_digit());
    word.is_empty() || PRE_RELEASE_WORDS.contains(&word)
}

impl Version {
    pub fn parse(tag: &str) -> Option<Self> {
        let start = tag.find(|c: char| c.is_ascii_digit())?;
        let (prefix, rest) = tag.split_at(start);
        if prefix.chars().any(|c| c.is_ascii_digit() || c == '.') {
            return None;
        }
        let rest = rest.split_once('+').map_or(rest, |(v, _build)| v);
        let (core, pre, variant) = match rest.split_once('-') {
            Some((core, suffix)) if !suffix.is_empty() => {
                if is_pre_release_suffix(suffix) {
                    (core, suffix.split('.').map(str::to_owned).collect(), String::new())
                } else {
                    (core, Vec::new(), suffix.to_owned())
                }
            }
            Some(_) => return None,
            None => (rest, Vec::new(), String::new()),
        };
        let mut parts = core.split('.').map(|p| {
            let numeric = !p.is_empty() && p.chars().all(|c| c.is_ascii_digit());
            numeric.then(|| p.parse::<u64>().ok()).flatten()
        });
        let (major, minor, patch) = (parts.next()??, parts.next()??, parts.next()??);
        if parts.next().is_some() {
            return None;
        }
        Some(Self { prefix: prefix.to_owned(), major, minor, patch, pre, variant })
    }

    pub fn is_pre_release(&self) -> bool {
        !self.pre.is_empty()
    }

    /// Semantic-versioning precedence; `None` across prefixes or variants, which are never compared.
    pub fn compare(&self, other: &Self) -> Option<Ordering> {
        if self.prefix != other.prefix || self.variant != other.variant {
            return None;
        }
        let core = (self.major, self.minor, self.patch).cmp(&(other.major, other.minor, other.patch));
        Some(core.then_with(|| compare_pre(&self.pre, &other.pre)))
    }
}

fn compare_pre(a: &[String], b: &[String]) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        // A release outranks its pre-releases.
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        (false, false) => {}
    }
    for (x, y) in a.iter().zip(b) {
        let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            (Err(_), Err(_)) => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    a.len().cmp(&b.len())
}

#[derive(Debug, Clone)]
pub enum DeployPolicy {
    /// Any newer version.
    Semver,
    /// Newer, same major.
    Minor,
    /// Newer, same major.minor.
    Patch,
    /// Any tag matching the glob (`*` any run, `?` one character).
    Glob(String, Regex),
    /// Any tag the regular expression matches as a whole.
    Regex(String, Regex),
    /// The tag the service runs now, whenever it gets a new digest.
    Track,
}

impl fmt::Display for DeployPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Semver => f.write_str("semver"),
            Self::Minor => f.write_str("minor"),
            Self::Patch => f.write_str("patch"),
            Self::Glob(g, _) => write!(f, "glob:{g}"),
            Self::Regex(r, _) => write!(f, "regex:{r}"),
            Self::Track => f.write_str("track"),
        }
    }
}

/// What a service's `nightshift:deploy` tag says.
#[derive(Debug, Clone)]
pub enum ServicePolicy {
    /// Every container from the pushed repository follows this policy, unless its label says another.
    All(DeployPolicy),
    /// `label`: only the containers whose docker label `nightshift.deploy` names a policy follow.
    Label,
}

impl fmt::Display for ServicePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All(policy) => policy.fmt(f),
            Self::Label => f.write_str("label"),
        }
    }
}

impl ServicePolicy {
    /// Reads a `nightshift:deploy` tag value; the error says why it is not understood.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.trim() {
            "label" => Ok(Self::Label),
            plain @ ("semver" | "minor" | "patch" | "track") => DeployPolicy::parse(plain).map(Self::All),
            pattern if pattern.starts_with("glob:") || pattern.starts_with("regex:") => Err(format!(
                "{pattern:?}: glob and regex policies go in a container's docker label nightshift.deploy \
                 (with the tag nightshift:deploy=label or another policy), not in a service tag"
            )),
            other => Err(format!("{other:?} is not a policy (semver, minor, patch, track, label)")),
        }
    }
}

/// The docker label that sets one container's policy.
pub const DEPLOY_LABEL: &str = "nightshift.deploy";

impl DeployPolicy {
    /// Reads a policy from a container's `nightshift.deploy` docker label (any
    /// policy, `glob:` and `regex:` included); the error says why it is not understood.
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        if let Some(glob) = value.strip_prefix("glob:") {
            if glob.is_empty() {
                return Err("glob: needs a pattern".into());
            }
            let pattern = glob
                .chars()
                .map(|c| match c {
                    '*' => ".*".to_owned(),
                    '?' => ".".to_owned(),
                    c => regex_lite::escape(&c.to_string()),
                })
                .collect::<String>();
            let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| format!("glob:{glob}: {e}"))?;
            return Ok(Self::Glob(glob.to_owned(), regex));
        }
        if let Some(re) = value.strip_prefix("regex:") {
            if re.is_empty() {
                return Err("regex: needs a pattern".into());
            }
            let regex = Regex::new(&format!("^(?:{re})$")).map_err(|e| format!("regex:{re}: {e}"))?;
            return Ok(Self::Regex(re.to_owned(), regex));
        }
        match value {
            "semver" => Ok(Self::Semver),
            "minor" => Ok(Self::Minor),
            "patch" => Ok(Self::Patch),
            "track" => Ok(Self::Track),
            other => {
                Err(format!("{other:?} is not a policy (semver, minor, patch, track, glob:<pattern>, regex:<pattern>)"))
            }
        }
    }
}

/// What a container runs now, as far as can be known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Running {
    /// The tag it was deployed from: recorded by nightshift, or in the image reference.
    pub tag: Option<String>,
    pub digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Deploy,
    Skip(String),
}

/// `<tag> ...` as the reasons name a running tag.
fn variant_of(version: &Version) -> String {
    if version.variant.is_empty() { "a plain release".into() } else { format!("the -{} variant", version.variant) }
}

/// Whether a container running `running` takes the pushed `tag` at `digest`.
pub fn decide(policy: &DeployPolicy, tag: &str, digest: &str, running: &Running) -> Verdict {
    if running.digest.as_deref() == Some(digest) {
        return Verdict::Skip(format!("already runs {digest}"));
    }
    let pushed = Version::parse(tag);
    let current = running.tag.as_deref().and_then(Version::parse);
    // Never backwards, whatever the policy, between versions that compare.
    if let (Some(p), Some(c)) = (&pushed, &current)
        && p.compare(c) == Some(Ordering::Less)
    {
        return Verdict::Skip(format!(
            "{tag} is older than the running {}",
            running.tag.as_deref().unwrap_or_default()
        ));
    }
    let matches = |ok: bool, why: String| if ok { Verdict::Deploy } else { Verdict::Skip(why) };
    match policy {
        DeployPolicy::Track => match running.tag.as_deref() {
            Some(t) => matches(t == tag, format!("tracks {t}, not {tag}")),
            None => Verdict::Skip("track: the running tag is unknown".into()),
        },
        DeployPolicy::Glob(g, re) => matches(re.is_match(tag), format!("{tag} does not match glob:{g}")),
        DeployPolicy::Regex(r, re) => matches(re.is_match(tag), format!("{tag} does not match regex:{r}")),
        DeployPolicy::Semver | DeployPolicy::Minor | DeployPolicy::Patch => {
            let Some(pushed) = pushed else {
                return Verdict::Skip(format!("{tag} is not a version"));
            };
            let Some(current) = current else {
                // Nothing versioned runs yet (`latest`, or a bare digest): the first version is taken.
                return if pushed.is_pre_release() {
                    Verdict::Skip(format!("{tag} is a pre-release"))
                } else {
                    Verdict::Deploy
                };
            };
            if pushed.variant != current.variant {
                return Verdict::Skip(format!(
                    "{tag} is not {} as the running {} is",
                    variant_of(&current),
                    running.tag.as_deref().unwrap_or_default()
                ));
            }
            if pushed.prefix != current.prefix {
                return Verdict::Skip(format!(
                    "{tag} has another prefix than the running {}",
                    running.tag.as_deref().unwrap_or_default()
                ));
            }
            if pushed.compare(&current) != Some(Ordering::Greater) {
                return Verdict::Skip(format!(
                    "{tag} is not newer than the running {}",
                    running.tag.as_deref().unwrap_or_default()
                ));
            }
            if pushed.is_pre_release() && !current.is_pre_release() {
                return Verdict::Skip(format!("{tag} is a pre-release and a release runs"));
            }
            let same_line = match policy {
                DeployPolicy::Minor => pushed.major == current.major,
                DeployPolicy::Patch => (pushed.major, pushed.minor) == (current.major, current.minor),
                _ => true,
            };
            matches(same_line, format!("{tag} is outside {policy} of {}", running.tag.as_deref().unwrap_or_default()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D_NEW: &str = "sha256:bbbb";
    const D_OLD: &str = "sha256:aaaa";

    fn running(tag: Option<&str>) -> Running {
        Running { tag: tag.map(str::to_owned), digest: Some(D_OLD.into()) }
    }

    fn verdict(policy: &str, tag: &str, running_tag: Option<&str>) -> bool {
        let policy = DeployPolicy::parse(policy).unwrap();
        decide(&policy, tag, D_NEW, &running(running_tag)) == Verdict::Deploy
    }

    #[test]
    fn versions_parse_with_a_prefix_a_pre_release_and_build_metadata() {
        let v = Version::parse("RC_1.4.2").unwrap();
        assert_eq!((v.prefix.as_str(), v.major, v.minor, v.patch), ("RC_", 1, 4, 2));
        let v = Version::parse("v2.0.0-rc.1+build.7").unwrap();
        assert_eq!((v.prefix.as_str(), v.pre.clone()), ("v", vec!["rc".to_owned(), "1".to_owned()]));
        for not_a_version in ["latest", "1.2", "1.2.3.4", "v1.x.3", "staging-2", "1.2.3-", "abc1.2.3.", "sha-1.2.3x"] {
            assert_eq!(Version::parse(not_a_version), None, "{not_a_version}");
        }
    }

    #[test]
    fn versions_order_by_semver_precedence_within_a_prefix() {
        let cmp = |a: &str, b: &str| Version::parse(a).unwrap().compare(&Version::parse(b).unwrap());
        assert_eq!(cmp("1.2.10", "1.2.9"), Some(Ordering::Greater));
        assert_eq!(cmp("1.10.0", "1.9.9"), Some(Ordering::Greater));
        assert_eq!(cmp("1.0.0", "1.0.0-rc.1"), Some(Ordering::Greater));
        assert_eq!(cmp("1.0.0-rc.2", "1.0.0-rc.10"), Some(Ordering::Less));
        assert_eq!(cmp("1.0.0-alpha", "1.0.0-alpha.1"), Some(Ordering::Less));
        assert_eq!(cmp("1.0.0-1", "1.0.0-alpha"), Some(Ordering::Less));
        assert_eq!(cmp("1.0.0+a", "1.0.0+b"), Some(Ordering::Equal));
        assert_eq!(cmp("v1.0.0", "RC_0.1.0"), None);
    }

    #[test]
    fn the_policies_decide_as_documented() {
        // (policy, pushed tag, running tag, deploys?)
        let table = [
            ("semver", "1.3.0", Some("1.2.9"), true),
            ("semver", "2.0.0", Some("1.2.9"), true),
            ("semver", "1.2.9", Some("1.2.9"), false),
            ("semver", "1.2.8", Some("1.2.9"), false),
            ("semver", "v1.3.0", Some("v1.2.0"), true),
            ("semver", "v1.3.0", Some("RC_1.2.0"), false),
            ("semver", "RC_1.4.2", Some("RC_1.4.1"), true),
            ("semver", "latest", Some("1.2.0"), false),
            ("semver", "1.0.0", Some("latest"), true),
            ("semver", "1.0.0", None, true),
            ("semver", "2.0.0-rc.1", Some("1.0.0"), false),
            ("semver", "2.0.0-rc.2", Some("2.0.0-rc.1"), true),
            ("semver", "2.0.0", Some("2.0.0-rc.2"), true),
            ("semver", "1.0.0-rc.1", None, false),
            ("minor", "1.3.0", Some("1.2.0"), true),
            ("minor", "1.2.1", Some("1.2.0"), true),
            ("minor", "2.0.0", Some("1.2.0"), false),
            ("patch", "1.2.1", Some("1.2.0"), true),
            ("patch", "1.3.0", Some("1.2.0"), false),
            ("patch", "2.2.1", Some("1.2.0"), false),
            ("glob:RC_*", "RC_1.5.0", Some("RC_1.4.0"), true),
            ("glob:RC_*", "RC_1.3.0", Some("RC_1.4.0"), false),
            ("glob:RC_*", "v1.5.0", Some("RC_1.4.0"), false),
            ("glob:release-?", "release-7", None, true),
            ("glob:release-?", "release-10", None, false),
            ("glob:a.b", "axb", None, false),
            ("regex:staging-[0-9]+", "staging-42", Some("staging-41"), true),
            ("regex:staging-[0-9]+", "staging-42x", Some("staging-41"), false),
            ("regex:staging", "pre-staging", None, false),
            ("track", "latest", Some("latest"), true),
            ("track", "staging", Some("latest"), false),
            ("track", "latest", None, false),
        ];
        for (policy, tag, running_tag, deploys) in table {
            assert_eq!(verdict(policy, tag, running_tag), deploys, "{policy} {tag} over {running_tag:?}");
        }
    }

    #[test]
    fn the_digest_already_running_is_skipped_whatever_the_policy() {
        for policy in ["semver", "track", "glob:*"] {
            let policy = DeployPolicy::parse(policy).unwrap();
            let r = running(Some("latest"));
            assert_eq!(decide(&policy, "latest", D_OLD, &r), Verdict::Skip(format!("already runs {D_OLD}")));
        }
    }

    #[test]
    fn policies_that_are_not_understood_say_why() {
        for (value, why) in
            [("rolling", "not a policy"), ("glob:", "needs a pattern"), ("regex:(", "regex:("), ("", "not a policy")]
        {
            let err = DeployPolicy::parse(value).unwrap_err();
            assert!(err.contains(why), "{value:?}: {err}");
        }
        assert_eq!(DeployPolicy::parse(" semver ").unwrap().to_string(), "semver");
    }

    #[test]
    fn a_service_tag_holds_only_what_ecs_tags_can_hold() {
        for ok in ["semver", "minor", "patch", "track", "label", " semver "] {
            assert!(ServicePolicy::parse(ok).is_ok(), "{ok}");
            assert_eq!(nightshift::ecs::tag_problem("nightshift:deploy", ok.trim()), None);
        }
        let err = ServicePolicy::parse("glob:RC_*").unwrap_err();
        assert!(err.contains("docker label nightshift.deploy"), "{err}");
        let err = ServicePolicy::parse("sometimes").unwrap_err();
        assert_eq!(err, "\"sometimes\" is not a policy (semver, minor, patch, track, label)");
        assert!(DeployPolicy::parse("label").is_err(), "label is a service tag value, not a container policy");
    }

    #[test]
    fn a_container_keeps_to_its_image_variant() {
        // (policy, pushed tag, running tag, deploys?)
        let table = [
            ("semver", "1.24.0-alpine", Some("1.23.4-alpine"), true),
            ("semver", "1.24.0", Some("1.23.4-alpine"), false),
            ("semver", "1.23.5-debian", Some("1.23.4-alpine"), false),
            ("semver", "1.24.0-alpine", Some("1.23.4"), false),
            ("patch", "1.23.5-alpine", Some("1.23.4-alpine"), true),
            ("patch", "1.24.0-alpine", Some("1.23.4-alpine"), false),
            ("semver", "1.23.4-alpine", Some("1.23.4-alpine"), false),
            ("semver", "1.23.3-alpine", Some("1.23.4-alpine"), false),
            ("semver", "2.0.0-slim", Some("1.9.0-slim"), true),
            // Keel's row: running 1.4.5-xx, pushed 1.4.6-yy is refused
            ("semver", "1.4.6-yy", Some("1.4.5-xx"), false),
            ("semver", "1.4.6-xx", Some("1.4.5-xx"), true),
            // pre-releases keep their meaning on their line
            ("semver", "2.0.0-rc.2", Some("2.0.0-rc.1"), true),
            ("semver", "2.0.0", Some("2.0.0-rc.1"), true),
            ("semver", "2.0.0-beta2", Some("2.0.0-beta1"), true),
            ("semver", "1.5.0-rc.1", Some("1.4.0"), false),
            ("semver", "1.0.1-alpine", None, true),
        ];
        for (policy, tag, running_tag, deploys) in table {
            assert_eq!(verdict(policy, tag, running_tag), deploys, "{policy} {tag} over {running_tag:?}");
        }
        let policy = DeployPolicy::parse("semver").unwrap();
        assert_eq!(
            decide(&policy, "1.24.0", D_NEW, &running(Some("1.23.4-alpine"))),
            Verdict::Skip("1.24.0 is not the -alpine variant as the running 1.23.4-alpine is".into())
        );
        assert_eq!(
            decide(&policy, "1.24.0-alpine", D_NEW, &running(Some("1.23.4"))),
            Verdict::Skip("1.24.0-alpine is not a plain release as the running 1.23.4 is".into())
        );
    }

    #[test]
    fn suffixes_read_as_pre_releases_or_variants() {
        let v = |t: &str| {
            let v = Version::parse(t).unwrap();
            (v.pre.join("."), v.variant)
        };
        assert_eq!(v("1.0.0-rc.1"), ("rc.1".into(), String::new()));
        assert_eq!(v("1.0.0-beta2"), ("beta2".into(), String::new()));
        assert_eq!(v("1.0.0-1"), ("1".into(), String::new()));
        assert_eq!(v("1.0.0-alpine"), (String::new(), "alpine".into()));
        assert_eq!(v("1.0.0-alpine3.18"), (String::new(), "alpine3.18".into()));
        assert_eq!(v("1.0.0-slim-bookworm"), (String::new(), "slim-bookworm".into()));
    }
}
