//! Container image references, parsed the way Docker reads them:
//! `[registry[:port]/]repository[:tag][@digest]`.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `None` for Docker Hub shorthand (`nginx`, `library/nginx`).
    pub registry: Option<String>,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("image reference {reference:?}: {reason}")]
pub struct ImageRefError {
    pub reference: String,
    pub reason: &'static str,
}

/// Why a text is not an image digest as ECR writes them (`sha256:` and 64
/// lowercase hex digits; `sha512:` and 128), or `None` when it is one. Events
/// are checked with it at the edge; references in task definitions, which
/// people write, are read more leniently (`FromStr`).
pub fn digest_problem(digest: &str) -> Option<&'static str> {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Some("it is not of the form algorithm:hex");
    };
    let length = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => return Some("its algorithm is neither sha256 nor sha512"),
    };
    if hex.len() != length || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Some("its hex part is not the algorithm's number of lowercase hex digits");
    }
    None
}

impl FromStr for ImageRef {
    type Err = ImageRefError;

    fn from_str(reference: &str) -> Result<Self, Self::Err> {
        let fail = |reason| ImageRefError { reference: reference.to_owned(), reason };
        if reference.is_empty() || reference.chars().any(char::is_whitespace) {
            return Err(fail("empty or contains white space"));
        }
        let (name, digest) = match reference.split_once('@') {
            Some((name, digest)) => {
                let valid = digest.split_once(':').is_some_and(|(algo, hex)| {
                    !algo.is_empty() && !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit())
                });
                if !valid {
                    return Err(fail("the digest is not of the form algorithm:hex"));
                }
                (name, Some(digest.to_owned()))
            }
            None => (reference, None),
        };
        // The first component is a registry only if it looks like a host.
        let (registry, path) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (Some(first.to_owned()), rest),
            _ => (None, name),
        };
        // A tag is a colon in the last path component (a registry's port is not in the path).
        let last_slash = path.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match path[last_slash..].rfind(':') {
            Some(colon) => {
                let at = last_slash + colon;
                (&path[..at], Some(path[at + 1..].to_owned()))
            }
            None => (path, None),
        };
        if repository.is_empty() || repository.split('/').any(str::is_empty) {
            return Err(fail("the repository name is empty"));
        }
        let repository_ok = repository
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '/'));
        if !repository_ok {
            return Err(fail("the repository name may hold only lowercase letters, digits and . _ - /"));
        }
        if let Some(tag) = &tag {
            let tag_ok = !tag.is_empty()
                && tag.len() <= 128
                && tag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !tag_ok {
                return Err(fail("the tag may hold only letters, digits and . _ - (at most 128)"));
            }
        }
        if registry.as_deref().is_some_and(|r| r.ends_with(':') || r.starts_with(':')) {
            return Err(fail("the registry's port is empty"));
        }
        Ok(Self { registry, repository: repository.to_owned(), tag, digest })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(registry) = &self.registry {
            write!(f, "{registry}/")?;
        }
        f.write_str(&self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// The ECR registry host of an account and region.
pub fn ecr_registry(account: &str, region: &str) -> String {
    let suffix = if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
    format!("{account}.dkr.ecr.{region}.{suffix}")
}

impl ImageRef {
    /// True when this image is exactly `repository` in `registry`.
    pub fn is_from(&self, registry: &str, repository: &str) -> bool {
        self.registry.as_deref() == Some(registry) && self.repository == repository
    }

    /// The image pinned by digest: `<registry>/<repository>@<digest>`.
    pub fn pinned(registry: &str, repository: &str, digest: &str) -> String {
        format!("{registry}/{repository}@{digest}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ECR: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
    const DIGEST: &str = "sha256:4d5b1f0e9c2a7b3d8e6f1a0c9b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d";

    fn parsed(r: &str) -> (Option<&str>, String, Option<String>, Option<String>) {
        let i: ImageRef = r.parse().unwrap_or_else(|e| panic!("{e}"));
        let registry = i.registry.map(|r| {
            if r == ECR {
                "ECR"
            } else if r == "localhost:5000" {
                "localhost:5000"
            } else {
                "other"
            }
        });
        (registry, i.repository, i.tag, i.digest)
    }

    #[test]
    fn references_parse_into_registry_repository_tag_and_digest() {
        let s = |v: &str| Some(v.to_owned());
        let table = [
            (format!("{ECR}/shop/api:1.2.3"), (Some("ECR"), "shop/api", s("1.2.3"), None)),
            (format!("{ECR}/shop/api@{DIGEST}"), (Some("ECR"), "shop/api", None, s(DIGEST))),
            (format!("{ECR}/shop/api:RC_1.4.2@{DIGEST}"), (Some("ECR"), "shop/api", s("RC_1.4.2"), s(DIGEST))),
            (format!("{ECR}/dagster"), (Some("ECR"), "dagster", None, None)),
            ("localhost:5000/team/app:v2".to_owned(), (Some("localhost:5000"), "team/app", s("v2"), None)),
            ("localhost:5000/app".to_owned(), (Some("localhost:5000"), "app", None, None)),
            ("nginx:1.25".to_owned(), (None, "nginx", s("1.25"), None)),
            ("library/nginx".to_owned(), (None, "library/nginx", None, None)),
            ("ghcr.io/org/tool:latest".to_owned(), (Some("other"), "org/tool", s("latest"), None)),
        ];
        for (reference, (registry, repository, tag, digest)) in table {
            assert_eq!(parsed(&reference), (registry, repository.to_owned(), tag, digest), "{reference}");
            assert_eq!(reference.parse::<ImageRef>().unwrap().to_string(), reference, "round trip");
        }
    }

    #[test]
    fn malformed_references_are_errors_that_say_why() {
        let table = [
            ("", "empty"),
            ("repo:tag with space", "white space"),
            (&*format!("{ECR}/Shop/api:1"), "lowercase"),
            (&*format!("{ECR}/shop/api:"), "tag"),
            (&*format!("{ECR}/shop/api@sha256"), "digest"),
            (&*format!("{ECR}/shop/api@sha256:xyz"), "digest"),
            (&*format!("{ECR}//api"), "empty"),
            (&*format!("{ECR}/"), "empty"),
        ];
        for (reference, why) in table {
            let err = reference.parse::<ImageRef>().unwrap_err();
            assert!(err.to_string().contains(why), "{reference:?}: {err}");
        }
    }

    #[test]
    fn a_digest_is_an_algorithm_and_its_exact_lowercase_hex() {
        let hex64 = "7f5b0c0e0d7a6a4bd2c1e5f3a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0";
        assert_eq!(digest_problem(&format!("sha256:{hex64}")), None);
        assert_eq!(digest_problem(&format!("sha512:{hex64}{hex64}")), None);
        let table = [
            ("sha256".to_owned(), "it is not of the form algorithm:hex"),
            (format!("md5:{hex64}"), "its algorithm is neither sha256 nor sha512"),
            ("sha256:abc".to_owned(), "its hex part is not the algorithm's number of lowercase hex digits"),
            (
                format!("sha256:{}", hex64.to_uppercase()),
                "its hex part is not the algorithm's number of lowercase hex digits",
            ),
            (format!("sha256:{}é", &hex64[..63]), "its hex part is not the algorithm's number of lowercase hex digits"),
            (
                format!("sha256:{}", "ü".repeat(32)),
                "its hex part is not the algorithm's number of lowercase hex digits",
            ),
        ];
        for (digest, why) in table {
            assert_eq!(digest_problem(&digest), Some(why), "{digest}");
        }
    }

    #[test]
    fn an_image_is_from_a_repository_only_on_an_exact_match() {
        let image: ImageRef = format!("{ECR}/shop/api:1.0.0").parse().unwrap();
        assert!(image.is_from(ECR, "shop/api"));
        assert!(!image.is_from(ECR, "shop/api-v2"));
        assert!(!image.is_from(ECR, "shop"));
        assert!(!image.is_from(ECR, "api"));
        assert!(!image.is_from("123456789012.dkr.ecr.us-east-1.amazonaws.com", "shop/api"));
        let v2: ImageRef = format!("{ECR}/shop/api-v2:1.0.0").parse().unwrap();
        assert!(!v2.is_from(ECR, "shop/api"));
    }

    #[test]
    fn ecr_registries_are_named_by_account_and_region() {
        assert_eq!(ecr_registry("123456789012", "eu-west-1"), ECR);
        assert_eq!(ecr_registry("123456789012", "cn-north-1"), "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn");
        assert_eq!(ImageRef::pinned(ECR, "shop/api", DIGEST), format!("{ECR}/shop/api@{DIGEST}"));
    }
}
