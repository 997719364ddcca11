//! The quarantine: digests whose rollout to a service failed or was rolled
//! back, kept on the service in the tag `nightshift:quarantine` (short
//! digests, `sha256:` and the first 16 hex digits, separated by spaces, the
//! most recent first, within a tag value's 256 characters). `watch-rollouts`
//! adds to it; `deploy-on-push` never deploys what it holds to that service.
//! Removing a digest from the tag releases it.

/// The service tag.
pub const QUARANTINE_TAG: &str = "nightshift:quarantine";
/// A tag value's limit.
const MAX_VALUE: usize = 256;

/// `sha256:` and the first 16 hex digits of a digest (the whole digest when shorter).
pub fn short(digest: &str) -> String {
    match digest.split_once(':') {
        // By characters, not bytes: a malformed digest is shortened, never split inside a character.
        Some((algorithm, hex)) => format!("{algorithm}:{}", hex.chars().take(16).collect::<String>()),
        None => digest.chars().take(16).collect(),
    }
}

/// Whether the tag's value holds this digest.
pub fn holds(value: &str, digest: &str) -> bool {
    let wanted = short(digest);
    value.split_whitespace().any(|d| d == wanted)
}

/// The value with `digests` added at the front (each once), the oldest
/// dropped to stay within 256 characters; `None` when nothing changes.
pub fn with(value: &str, digests: &[String]) -> Option<String> {
    let mut entries: Vec<String> = Vec::new();
    for digest in digests.iter().map(|d| short(d)) {
        if !entries.contains(&digest) {
            entries.push(digest);
        }
    }
    let fresh: Vec<String> = entries.iter().filter(|d| !holds(value, d)).cloned().collect();
    if fresh.is_empty() {
        return None;
    }
    for old in value.split_whitespace() {
        if !entries.iter().any(|e| e == old) {
            entries.push(old.to_owned());
        }
    }
    let mut kept = String::new();
    for entry in entries {
        let needed = if kept.is_empty() { entry.len() } else { kept.len() + 1 + entry.len() };
        if needed > MAX_VALUE {
            break;
        }
        if !kept.is_empty() {
            kept.push(' ');
        }
        kept.push_str(&entry);
    }
    Some(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaa1111111111111111111111111111111111111111111111";
    const B: &str = "sha256:bbbbbbbbbbbbbbbb2222222222222222222222222222222222222222222222";

    #[test]
    fn a_malformed_digest_is_shortened_by_characters_and_never_panics() {
        // Byte 16 of the hex part falls inside the eighth "é": slicing bytes there would panic.
        let malformed = format!("sha256:a{}", "é".repeat(20));
        assert_eq!(short(&malformed), format!("sha256:a{}", "é".repeat(15)));
    }

    #[test]
    fn digests_are_kept_short_most_recent_first_within_a_tag_value() {
        assert_eq!(short(A), "sha256:aaaaaaaaaaaaaaaa");
        assert_eq!(with("", &[A.into()]).as_deref(), Some("sha256:aaaaaaaaaaaaaaaa"));
        assert_eq!(
            with("sha256:aaaaaaaaaaaaaaaa", &[B.into()]).as_deref(),
            Some("sha256:bbbbbbbbbbbbbbbb sha256:aaaaaaaaaaaaaaaa")
        );
        assert_eq!(with("sha256:aaaaaaaaaaaaaaaa", &[A.into()]), None, "already held: nothing to write");
        assert!(holds("sha256:bbbbbbbbbbbbbbbb sha256:aaaaaaaaaaaaaaaa", A));
        assert!(!holds("sha256:bbbbbbbbbbbbbbbb", A));
        let full: Vec<String> = (0..10).map(|n| format!("sha256:{n:016x}")).collect();
        let value = with("", &full).unwrap();
        assert_eq!(value.len(), 10 * 23 + 9);
        let more = with(&value, &[A.into()]).unwrap();
        assert!(more.len() <= 256 && more.starts_with("sha256:aaaaaaaaaaaaaaaa "), "{more}");
        assert!(!more.contains(&format!("sha256:{:016x}", 9)), "the oldest (last) entries go");
    }
}
