//! Which merge an image is: its pull request, commit, branch build and
//! source, read from the image itself (its other tags, the OCI labels of its
//! config) and written on every revision nightshift registers
//! (`nightshift:pr`, `nightshift:commit`, `nightshift:source`), so "what runs
//! in PROD" answers with a pull request and a commit. No AWS calls here.

use serde::Serialize;

use crate::config::{ConfigError, Vars};

/// The revision tags identity is written to.
pub const PR_TAG: &str = "nightshift:pr";
pub const COMMIT_TAG: &str = "nightshift:commit";
pub const SOURCE_TAG: &str = "nightshift:source";
/// The OCI labels read from an image's config.
pub const REVISION_LABEL: &str = "org.opencontainers.image.revision";
pub const SOURCE_LABEL: &str = "org.opencontainers.image.source";

/// What is known of the merge an image was built from; every part optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Identity {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// A branch build's tag (`main-42`): branch and build number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// One part of a tag pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    /// `<n>`: one or more digits.
    Number,
    /// `<hex>`: 7 to 40 hex digits (a short or whole Git commit).
    Hex,
    /// `<branch>`: one or more of letters, digits, `.`, `_`, `-`, `/`.
    Branch,
}

/// A tag pattern: text with `<n>`, `<hex>` and `<branch>` in it (`pr-<n>`, `sha-<hex>`, `<branch>-<n>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPattern {
    source: String,
    parts: Vec<Part>,
}

impl TagPattern {
    pub fn parse(pattern: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = pattern;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('<') {
                let (name, tail) =
                    after.split_once('>').ok_or_else(|| format!("{pattern:?} opens a < it never closes"))?;
                parts.push(match name {
                    "n" => Part::Number,
                    "hex" => Part::Hex,
                    "branch" => Part::Branch,
                    other => {
                        return Err(format!("{pattern:?} names <{other}>; a pattern knows <n>, <hex> and <branch>"));
                    }
                });
                rest = tail;
            } else {
                let end = rest.find('<').unwrap_or(rest.len());
                parts.push(Part::Text(rest[..end].to_owned()));
                rest = &rest[end..];
            }
        }
        if !parts.iter().any(|p| !matches!(p, Part::Text(_))) {
            return Err(format!("{pattern:?} has none of <n>, <hex>, <branch>: it could name one tag only"));
        }
        Ok(Self { source: pattern.to_owned(), parts })
    }

    /// The values of the pattern's placeholders in `tag`, in order; `None` when it does not match.
    pub fn captures(&self, tag: &str) -> Option<Vec<String>> {
        let mut found = Vec::new();
        matches(&self.parts, tag, &mut found).then_some(found)
    }
}

impl std::fmt::Display for TagPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

fn allowed(part: &Part, c: char) -> bool {
    match part {
        Part::Number => c.is_ascii_digit(),
        Part::Hex => c.is_ascii_hexdigit(),
        Part::Branch => c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'),
        Part::Text(_) => false,
    }
}

/// Matches with backtracking (`<branch>-<n>` splits `release-2-17` at its last dash).
fn matches(parts: &[Part], text: &str, found: &mut Vec<String>) -> bool {
    let Some((first, rest)) = parts.split_first() else { return text.is_empty() };
    if let Part::Text(literal) = first {
        return text.strip_prefix(literal.as_str()).is_some_and(|tail| matches(rest, tail, found));
    }
    let run = text.find(|c| !allowed(first, c)).unwrap_or(text.len());
    let (least, most) = match first {
        Part::Hex => (7, run.min(40)),
        _ => (1, run),
    };
    for end in (least..=most).rev() {
        found.push(text[..end].to_owned());
        if matches(rest, &text[end..], found) {
            return true;
        }
        found.pop();
    }
    false
}

/// The patterns an image's tags are read with (settings `PR_TAG_PATTERNS`,
/// `COMMIT_TAG_PATTERNS`, `BRANCH_TAG_PATTERNS`: patterns separated by spaces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityPatterns {
    pub pr: Vec<TagPattern>,
    pub commit: Vec<TagPattern>,
    pub branch: Vec<TagPattern>,
}

pub const PR_DEFAULT: &str = "pr-<n>";
pub const COMMIT_DEFAULT: &str = "sha-<hex> git-<hex>";
pub const BRANCH_DEFAULT: &str = "<branch>-<n>";

impl Default for IdentityPatterns {
    fn default() -> Self {
        let parse = |list: &str| list.split_whitespace().filter_map(|p| TagPattern::parse(p).ok()).collect();
        Self { pr: parse(PR_DEFAULT), commit: parse(COMMIT_DEFAULT), branch: parse(BRANCH_DEFAULT) }
    }
}

impl IdentityPatterns {
    pub fn from_vars(vars: &impl Vars) -> Result<Self, ConfigError> {
        let read = |name: &str, default: &str| -> Result<Vec<TagPattern>, ConfigError> {
            let given = crate::config::optional(vars, name);
            let list = given.as_deref().unwrap_or(default);
            list.split_whitespace()
                .map(|p| {
                    TagPattern::parse(p).map_err(|why| {
                        ConfigError::new(name, Some(list), format!("patterns separated by spaces: {why}"))
                    })
                })
                .collect()
        };
        Ok(Self {
            pr: read("PR_TAG_PATTERNS", PR_DEFAULT)?,
            commit: read("COMMIT_TAG_PATTERNS", COMMIT_DEFAULT)?,
            branch: read("BRANCH_TAG_PATTERNS", BRANCH_DEFAULT)?,
        })
    }
}

/// A Git commit as a label or tag may give it: 7 to 40 hex digits, lowercased.
fn commit(value: &str) -> Option<String> {
    let value = value.trim();
    ((7..=40).contains(&value.len()) && value.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| value.to_ascii_lowercase())
}

/// A source URL as it may go into a tag value (ECS: letters, digits, spaces and `_.:/=+-@`, at most 256).
fn source(value: &str) -> Option<String> {
    let value = value.trim();
    let fits = !value.is_empty()
        && value.len() <= 256
        && value.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | ':' | '/' | '=' | '+' | '-' | '@'));
    fits.then(|| value.to_owned())
}

impl Identity {
    /// Read from the image's tags (all of them: the pushed one and its others)
    /// and its config's labels (`(name, value)`); the label wins for the commit.
    pub fn of<'a>(
        tags: impl IntoIterator<Item = &'a str>,
        labels: &[(String, String)],
        patterns: &IdentityPatterns,
    ) -> Self {
        let label = |name: &str| labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let mut identity = Self {
            commit: label(REVISION_LABEL).and_then(commit),
            source: label(SOURCE_LABEL).and_then(source),
            ..Self::default()
        };
        let first = |list: &[TagPattern], tag: &str| list.iter().find_map(|p| p.captures(tag));
        for tag in tags {
            if let Some(found) = first(&patterns.pr, tag) {
                identity.pr = identity.pr.or_else(|| found.into_iter().find(|v| v.chars().all(|c| c.is_ascii_digit())));
            } else if let Some(found) = first(&patterns.commit, tag) {
                identity.commit = identity.commit.or_else(|| found.iter().find_map(|v| commit(v)));
            } else if let Some(found) = first(&patterns.branch, tag)
                && identity.branch.is_none()
                && let [branch, build] = found.as_slice()
            {
                (identity.branch, identity.build) = (Some(branch.clone()), Some(build.clone()));
            }
        }
        identity
    }

    /// From a revision's tags (what nightshift wrote there).
    pub fn of_revision(td_tags: &[(String, String)]) -> Self {
        let tag = |key: &str| td_tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        Self { pr: tag(PR_TAG), commit: tag(COMMIT_TAG), source: tag(SOURCE_TAG), ..Self::default() }
    }

    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// The revision tags it is written as; each part unknown is absent.
    pub fn tags(&self) -> Vec<(&'static str, String)> {
        [(PR_TAG, &self.pr), (COMMIT_TAG, &self.commit), (SOURCE_TAG, &self.source)]
            .into_iter()
            .filter_map(|(key, value)| Some((key, value.clone()?)))
            .collect()
    }

    /// What a notice says of it: `Merge` (pull request, commit, branch build) and `Source`, where known.
    pub fn facts(&self) -> Vec<(String, String)> {
        let mut facts = Vec::new();
        if self.pr.is_some() || self.commit.is_some() || self.branch.is_some() {
            facts.extend(self.words().map(|merge| ("Merge".to_owned(), merge)));
        }
        facts.extend(self.source.clone().map(|source| ("Source".to_owned(), source)));
        facts
    }

    /// For people: `PR #42, commit 1a2b3c4 (main-42)`; `None` when nothing is known.
    pub fn words(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(pr) = &self.pr {
            parts.push(format!("PR #{pr}"));
        }
        if let Some(commit) = &self.commit {
            parts.push(format!("commit {}", &commit[..commit.len().min(12)]));
        }
        let mut words = parts.join(", ");
        if let (Some(branch), Some(build)) = (&self.branch, &self.build) {
            words = if words.is_empty() { format!("{branch}-{build}") } else { format!("{words} ({branch}-{build})") };
        }
        if words.is_empty() {
            words = self.source.clone()?;
        }
        Some(words)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns() -> IdentityPatterns {
        IdentityPatterns::default()
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn the_default_patterns_read_a_pull_request_a_commit_and_a_branch_build() {
        let table: [(&[&str], Identity); 6] = [
            (
                &["RC_1.4.2", "pr-42", "sha-1a2b3c4d"],
                Identity { pr: Some("42".into()), commit: Some("1a2b3c4d".into()), ..Identity::default() },
            ),
            (&["git-ABCDEF0123"], Identity { commit: Some("abcdef0123".into()), ..Identity::default() }),
            (&["main-17"], Identity { branch: Some("main".into()), build: Some("17".into()), ..Identity::default() }),
            // The last dash splits branch from build; a pull request is not a branch build.
            (
                &["release-2-17", "pr-9"],
                Identity {
                    pr: Some("9".into()),
                    branch: Some("release-2".into()),
                    build: Some("17".into()),
                    ..Identity::default()
                },
            ),
            // Too short for a commit, and no number after a dash: nothing.
            (&["sha-abc", "latest", "1.2.0"], Identity::default()),
            (&[], Identity::default()),
        ];
        for (tags, expected) in table {
            assert_eq!(Identity::of(tags.iter().copied(), &[], &patterns()), expected, "{tags:?}");
        }
    }

    #[test]
    fn the_oci_labels_give_the_commit_and_source_and_win_over_a_tag() {
        let found = Identity::of(
            ["pr-7", "sha-1111111"],
            &labels(&[
                (REVISION_LABEL, "ABCDEF0123456789abcdef0123456789abcdef01"),
                (SOURCE_LABEL, "https://github.com/acme/shop"),
            ]),
            &patterns(),
        );
        assert_eq!(found.commit.as_deref(), Some("abcdef0123456789abcdef0123456789abcdef01"));
        assert_eq!(found.source.as_deref(), Some("https://github.com/acme/shop"));
        assert_eq!(found.words().as_deref(), Some("PR #7, commit abcdef012345"));
        assert_eq!(
            found.tags(),
            vec![
                (PR_TAG, "7".to_owned()),
                (COMMIT_TAG, "abcdef0123456789abcdef0123456789abcdef01".to_owned()),
                (SOURCE_TAG, "https://github.com/acme/shop".to_owned())
            ]
        );
        // A label that is no commit, or a source no tag value can hold, is left out.
        let odd = Identity::of(
            [],
            &labels(&[(REVISION_LABEL, "v1.2.0"), (SOURCE_LABEL, "https://example.com/?a=b&c")]),
            &patterns(),
        );
        assert!(odd.is_empty(), "{odd:?}");
    }

    #[test]
    fn patterns_are_settable_and_a_wrong_one_is_a_clear_error() {
        let vars = [("PR_TAG_PATTERNS", "mr<n> pull-<n>"), ("BRANCH_TAG_PATTERNS", "build-<branch>.<n>")];
        let set = IdentityPatterns::from_vars(&vars).unwrap();
        let found = Identity::of(["pull-5", "build-dev.3", "sha-1234567"], &[], &set);
        assert_eq!(
            (found.pr.as_deref(), found.branch.as_deref(), found.build.as_deref()),
            (Some("5"), Some("dev"), Some("3"))
        );
        assert_eq!(found.commit.as_deref(), Some("1234567"), "the commit default still holds");
        for (value, why) in [("pr-<id>", "names <id>"), ("pr-<n", "never closes"), ("latest", "has none of")] {
            let err = IdentityPatterns::from_vars(&[("PR_TAG_PATTERNS", value)]).unwrap_err();
            assert_eq!(err.variable, "PR_TAG_PATTERNS");
            assert!(err.to_string().contains(why), "{err}");
        }
    }

    #[test]
    fn a_revision_reads_back_what_was_written() {
        let written = Identity { pr: Some("3".into()), commit: Some("abcdef1".into()), ..Identity::default() };
        let tags: Vec<(String, String)> = written.tags().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        assert_eq!(Identity::of_revision(&tags), written);
        assert_eq!(Identity::default().words(), None);
    }
}
