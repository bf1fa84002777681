//! Docker's image reference grammar, as the kubelet applies it before pulling (docker/distribution
//! `reference.ParseNormalizedNamed`, vendored by Kubernetes 1.20): which image references are valid,
//! their parts, and the message a kubelet gives for an invalid one. Pure; the kubelet stand-in and
//! the tests use it.
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [domain "/"] path-component ["/" path-component]*
//! domain     := domain-component ["." domain-component]* [":" port]
//! domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
//! path-component   := [a-z0-9]+ (separator [a-z0-9]+)*    separator := "." | "_" | "__" | "-"+
//! tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! digest     := algorithm ":" hex{32,}   (then sha256 needs 64, sha384 96, sha512 128 lower-case hex)
//! ```
//!
//! The first path segment is the domain when it contains `.` or `:` or is `localhost`; otherwise
//! the domain is `docker.io` and a one-segment name gets `library/` in front (which counts towards
//! the 255-character limit of a name).

use std::fmt;

/// The longest name (domain, `/` and path) the grammar allows.
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// A valid image reference, in the parts it was written with (nothing normalised).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageReference<'a> {
    /// The registry host (with port), when the reference names one.
    pub domain: Option<&'a str>,
    /// The repository path, without domain, tag or digest: `gitlab/registry`.
    pub path: &'a str,
    /// The tag, when the reference has one.
    pub tag: Option<&'a str>,
    /// The digest (`sha256:<hex>`), when the reference has one.
    pub digest: Option<&'a str>,
}

/// Why a reference is not valid, each with the text docker/distribution gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceError {
    /// `invalid reference format`: the grammar does not match.
    InvalidFormat,
    /// `invalid reference format: repository name must be lowercase`.
    NotLowercase,
    /// `repository name must not be more than 255 characters`.
    NameTooLong,
    /// The whole reference is 64 hex digits, which Docker reserves for image IDs.
    Identifier,
    /// `unsupported digest algorithm`: not sha256, sha384 or sha512.
    UnsupportedDigest,
    /// `invalid checksum digest length`: the hex does not fit the algorithm.
    DigestLength,
    /// `invalid checksum digest format`: the hex is not lower-case.
    DigestFormat,
}

impl fmt::Display for ReferenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidFormat => "invalid reference format",
            Self::NotLowercase => "invalid reference format: repository name must be lowercase",
            Self::NameTooLong => "repository name must not be more than 255 characters",
            Self::Identifier => "cannot specify 64-byte hexadecimal strings",
            Self::UnsupportedDigest => "unsupported digest algorithm",
            Self::DigestLength => "invalid checksum digest length",
            Self::DigestFormat => "invalid checksum digest format",
        })
    }
}

/// The message a kubelet puts on a container waiting `InvalidImageName` for `image`.
pub fn invalid_image_message(image: &str, error: ReferenceError) -> String {
    let cause = match error {
        ReferenceError::Identifier => {
            format!("invalid repository name ({image}), cannot specify 64-byte hexadecimal strings")
        }
        other => other.to_string(),
    };
    format!(
        "Failed to apply default image tag {image:?}: couldn't parse image reference {image:?}: {cause}"
    )
}

/// Parses `image` as the kubelet does before pulling it.
pub fn parse_image_reference(image: &str) -> Result<ImageReference<'_>, ReferenceError> {
    if image.len() == 64
        && image
            .bytes()
            .all(|b| matches!(b, b'a'..=b'f' | b'0'..=b'9'))
    {
        return Err(ReferenceError::Identifier);
    }
    let (domain, remainder) = match image.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (Some(first), rest)
        }
        _ => (None, image),
    };
    let remote_name = remainder.split(':').next().unwrap_or(remainder);
    if remote_name.to_lowercase() != remote_name {
        return Err(ReferenceError::NotLowercase);
    }
    let (named, digest) = match remainder.split_once('@') {
        Some((named, digest)) => (named, Some(digest)),
        None => (remainder, None),
    };
    let (path, tag) = match named.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') => (path, Some(tag)),
        _ => (named, None),
    };
    let format_ok = domain.is_none_or(is_domain)
        && path.split('/').all(is_path_component)
        && tag.is_none_or(is_tag)
        && digest.is_none_or(is_digest_shape);
    if !format_ok {
        return Err(ReferenceError::InvalidFormat);
    }
    let implied_library = if domain.is_none() && !path.contains('/') {
        "library/".len()
    } else {
        0
    };
    let name_length = domain.map_or("docker.io".len(), str::len) + 1 + implied_library + path.len();
    if name_length > NAME_TOTAL_LENGTH_MAX {
        return Err(ReferenceError::NameTooLong);
    }
    if let Some(digest) = digest {
        validate_digest(digest)?;
    }
    Ok(ImageReference {
        domain,
        path,
        tag,
        digest,
    })
}

fn is_domain(domain: &str) -> bool {
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    let component_ok = |c: &str| {
        let bytes = c.as_bytes();
        !bytes.is_empty()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
            && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
    };
    host.split('.').all(component_ok)
        && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn is_path_component(component: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = component.as_bytes();
    if !bytes.first().is_some_and(|b| alnum(*b)) || !bytes.last().is_some_and(|b| alnum(*b)) {
        return false;
    }
    // Every run of non-alphanumerics must be one separator: ".", "_", "__" or any number of "-".
    let mut separator = String::new();
    for &b in bytes {
        if alnum(b) {
            if !separator.is_empty() {
                let ok = matches!(separator.as_str(), "." | "_" | "__")
                    || separator.bytes().all(|s| s == b'-');
                if !ok {
                    return false;
                }
                separator.clear();
            }
        } else if matches!(b, b'.' | b'_' | b'-') {
            separator.push(char::from(b));
        } else {
            return false;
        }
    }
    true
}

fn is_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    bytes.first().is_some_and(|b| word(*b))
        && bytes.len() <= 128
        && bytes.iter().all(|b| word(*b) || matches!(b, b'.' | b'-'))
}

/// The grammar's digest: `[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}`.
fn is_digest_shape(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let algorithm_ok = algorithm.split(['-', '_', '+', '.']).all(|part| {
        part.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
            && part.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    algorithm_ok && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// go-digest's validation of a digest the grammar accepted.
fn validate_digest(digest: &str) -> Result<(), ReferenceError> {
    let (algorithm, hex) = digest.split_once(':').unwrap_or((digest, ""));
    let length = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(ReferenceError::UnsupportedDigest),
    };
    if hex.len() != length {
        return Err(ReferenceError::DigestLength);
    }
    if !hex.bytes().all(|b| matches!(b, b'a'..=b'f' | b'0'..=b'9')) {
        return Err(ReferenceError::DigestFormat);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn real_world_references_are_valid_and_split_into_their_parts() {
        let with_digest =
            format!("registry.example.com/gitlab/registry:v3.1.0-gitlab@sha256:{HEX}");
        let digest = format!("sha256:{HEX}");
        for (image, domain, path, tag, digest) in [
            (
                "registry.gitlab.com/gitlab-org/build/cng/gitlab-container-registry:v3.1.0-gitlab",
                Some("registry.gitlab.com"),
                "gitlab-org/build/cng/gitlab-container-registry",
                Some("v3.1.0-gitlab"),
                None,
            ),
            (
                with_digest.as_str(),
                Some("registry.example.com"),
                "gitlab/registry",
                Some("v3.1.0-gitlab"),
                Some(digest.as_str()),
            ),
            ("nginx", None, "nginx", None, None),
            (
                "nginx:1.25-alpine",
                None,
                "nginx",
                Some("1.25-alpine"),
                None,
            ),
            (
                "library/nginx:latest",
                None,
                "library/nginx",
                Some("latest"),
                None,
            ),
            (
                "localhost:5000/registry",
                Some("localhost:5000"),
                "registry",
                None,
                None,
            ),
            (
                "localhost/a__b/c-----d/e.f:V_1",
                Some("localhost"),
                "a__b/c-----d/e.f",
                Some("V_1"),
                None,
            ),
            (
                "Registry.Example.COM/gitlab/registry:v1",
                Some("Registry.Example.COM"),
                "gitlab/registry",
                Some("v1"),
                None,
            ),
            (
                "registry.local/registry:v1.0.0-gitlab",
                Some("registry.local"),
                "registry",
                Some("v1.0.0-gitlab"),
                None,
            ),
            (
                "busybox:1.36.1-glibc",
                None,
                "busybox",
                Some("1.36.1-glibc"),
                None,
            ),
        ] {
            assert_eq!(
                parse_image_reference(image),
                Ok(ImageReference {
                    domain,
                    path,
                    tag,
                    digest
                }),
                "{image}"
            );
        }
    }

    #[test]
    fn invalid_references_fail_with_dockers_reason() {
        let long = format!("r.io/{}", "a".repeat(251));
        for (image, error) in [
            (
                "registry.example.com/GitLab/registry:v1",
                ReferenceError::NotLowercase,
            ),
            ("Nginx", ReferenceError::NotLowercase),
            (
                "registry.example.com/gitlab/registry:v2.0.1+build.7-gitlab",
                ReferenceError::InvalidFormat,
            ),
            (
                "registry.example.com/gitlab/registry:",
                ReferenceError::InvalidFormat,
            ),
            (
                "registry.example.com/gitlab/registry:-v1",
                ReferenceError::InvalidFormat,
            ),
            (
                "registry.example.com/gitlab/registry@sha256:xyz",
                ReferenceError::InvalidFormat,
            ),
            (
                "registry.example.com/gitlab/registry@sha256:abc",
                ReferenceError::InvalidFormat,
            ),
            (
                "registry.example.com/gitlab//registry",
                ReferenceError::InvalidFormat,
            ),
            (
                "registry.example.com/gitlab/registry/",
                ReferenceError::InvalidFormat,
            ),
            (
                "registry.example.com/git_-lab/registry",
                ReferenceError::InvalidFormat,
            ),
            (
                "registry.example.com/gitlab/registry:v1:v2",
                ReferenceError::InvalidFormat,
            ),
            (
                "-bad.example.com/gitlab/registry",
                ReferenceError::InvalidFormat,
            ),
            (
                "registry.example.com:port/gitlab/registry",
                ReferenceError::InvalidFormat,
            ),
            ("registry with space", ReferenceError::InvalidFormat),
            ("", ReferenceError::InvalidFormat),
            (long.as_str(), ReferenceError::NameTooLong),
            (HEX, ReferenceError::Identifier),
        ] {
            assert_eq!(parse_image_reference(image), Err(error), "{image:?}");
        }
        let tag = format!("r.io/a:{}", "t".repeat(129));
        assert_eq!(
            parse_image_reference(&tag),
            Err(ReferenceError::InvalidFormat)
        );
    }

    #[test]
    fn a_well_shaped_digest_must_still_fit_its_algorithm() {
        for (digest, result) in [
            (format!("sha256:{HEX}"), Ok(())),
            (format!("sha512:{HEX}{HEX}"), Ok(())),
            (format!("sha256:{HEX}00"), Err(ReferenceError::DigestLength)),
            (
                format!("sha256:{}", HEX.to_uppercase()),
                Err(ReferenceError::DigestFormat),
            ),
            (format!("md5:{HEX}"), Err(ReferenceError::UnsupportedDigest)),
        ] {
            let image = format!("r.io/registry:v1@{digest}");
            assert_eq!(parse_image_reference(&image).map(|_| ()), result, "{image}");
        }
    }

    #[test]
    fn the_kubelets_message_names_the_reference_twice_and_dockers_reason() {
        let image = "registry.example.com/gitlab/registry:v2.0.1+build.7-gitlab";
        assert_eq!(
            invalid_image_message(image, ReferenceError::InvalidFormat),
            format!(
                "Failed to apply default image tag \"{image}\": couldn't parse image reference \"{image}\": invalid reference format"
            )
        );
        assert_eq!(
            invalid_image_message("Nginx", ReferenceError::NotLowercase),
            "Failed to apply default image tag \"Nginx\": couldn't parse image reference \"Nginx\": invalid reference format: repository name must be lowercase"
        );
    }
}
