//! The quarantine: digests whose rollout to a service failed or was rolled
//! back, one item each in the state table (`state`), with no count limit.
//! `watch-rollouts` adds to it; `deploy-on-push` and promotions never deploy
//! what it holds to that service. Deleting the item releases the digest.
//!
//! An older release kept it in the service tag `nightshift:quarantine` (short
//! digests, `sha256:` and the first 16 hex digits, separated by spaces): that
//! tag is still honoured until `watch-rollouts` carries it into the table.

/// The service tag an older release kept the quarantine in.
pub const QUARANTINE_TAG: &str = "nightshift:quarantine";

/// `sha256:` and the first 16 hex digits of a digest (the whole digest when shorter).
pub fn short(digest: &str) -> String {
    match digest.split_once(':') {
        // By characters, not bytes: a malformed digest is shortened, never split inside a character.
        Some((algorithm, hex)) => format!("{algorithm}:{}", hex.chars().take(16).collect::<String>()),
        None => digest.chars().take(16).collect(),
    }
}

/// Whether `held` (digests as the state table keeps them: whole, or short as
/// an older release's tag held them) holds this digest.
pub fn held_in(held: &[String], digest: &str) -> bool {
    let wanted = short(digest);
    held.iter().any(|d| d == digest || *d == wanted)
}

/// Whether the tag's value holds this digest.
pub fn holds(value: &str, digest: &str) -> bool {
    let wanted = short(digest);
    value.split_whitespace().any(|d| d == wanted)
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
    fn a_digest_is_held_whole_or_short_and_the_older_tag_is_read() {
        assert_eq!(short(A), "sha256:aaaaaaaaaaaaaaaa");
        assert!(held_in(&[A.into()], A));
        assert!(held_in(&["sha256:aaaaaaaaaaaaaaaa".into()], A), "short, as the older tag held it");
        assert!(!held_in(&[B.into()], A));
        assert!(holds("sha256:bbbbbbbbbbbbbbbb sha256:aaaaaaaaaaaaaaaa", A));
        assert!(!holds("sha256:bbbbbbbbbbbbbbbb", A));
    }
}
