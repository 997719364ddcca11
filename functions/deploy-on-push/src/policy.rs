//! `nightshift:deploy`: which pushed tags a service takes.

use std::cmp::Ordering;
use std::fmt;

use regex_lite::Regex;

/// A tag read as `<prefix><major>.<minor>.<patch>[-pre-release][+build]`,
/// the prefix being whatever comes before the first digit (`v`, `RC_`, or none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub prefix: String,
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// Dot-separated identifiers after `-`; empty for a release.
    pub pre: Vec<String>,
}

impl Version {
    pub fn parse(tag: &str) -> Option<Self> {
        let start = tag.find(|c: char| c.is_ascii_digit())?;
        let (prefix, rest) = tag.split_at(start);
        if prefix.chars().any(|c| c.is_ascii_digit() || c == '.') {
            return None;
        }
        let rest = rest.split_once('+').map_or(rest, |(v, _build)| v);
        let (core, pre) = match rest.split_once('-') {
            Some((core, pre)) if !pre.is_empty() => (core, pre.split('.').map(str::to_owned).collect()),
            Some(_) => return None,
            None => (rest, Vec::new()),
        };
        let mut parts = core.split('.').map(|p| {
            let numeric = !p.is_empty() && p.chars().all(|c| c.is_ascii_digit());
            numeric.then(|| p.parse::<u64>().ok()).flatten()
        });
        let (major, minor, patch) = (parts.next()??, parts.next()??, parts.next()??);
        if parts.next().is_some() {
            return None;
        }
        Some(Self { prefix: prefix.to_owned(), major, minor, patch, pre })
    }

    pub fn is_pre_release(&self) -> bool {
        !self.pre.is_empty()
    }

    /// Semantic-versioning precedence; `None` across prefixes, which are never compared.
    pub fn compare(&self, other: &Self) -> Option<Ordering> {
        if self.prefix != other.prefix {
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

impl DeployPolicy {
    /// Reads a `nightshift:deploy` tag value; the error says why it is not understood.
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

/// Whether a policy could take this tag at all, before anything about the
/// service's containers is known: lets a push skip describing task definitions.
pub fn could_take(policy: &DeployPolicy, tag: &str) -> bool {
    match policy {
        DeployPolicy::Track => true,
        DeployPolicy::Glob(_, re) | DeployPolicy::Regex(_, re) => re.is_match(tag),
        DeployPolicy::Semver | DeployPolicy::Minor | DeployPolicy::Patch => Version::parse(tag).is_some(),
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
    fn a_policy_that_cannot_take_the_tag_is_known_before_any_task_definition() {
        let could = |p: &str, tag: &str| could_take(&DeployPolicy::parse(p).unwrap(), tag);
        assert!(could("semver", "1.2.3") && !could("semver", "latest"));
        assert!(could("glob:RC_*", "RC_1") && !could("glob:RC_*", "v1"));
        assert!(could("track", "anything"));
    }
}
