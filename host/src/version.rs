//! Release versions as users write them, image tag templates, and reading the tag of an image
//! reference.
//!
//! Pure: no I/O. A [`Version`] keeps the text it was written as (`v3.1.0` prints as `v3.1.0`)
//! and compares by semver precedence, so `v3.0.0-rc1 < v3.0.0`, `3.1.0 == v3.1.0` and build
//! metadata does not count (`v3.1.0+build.7 == v3.1.0`).

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

/// The placeholder a [`TagTemplate`] must contain exactly once.
pub const VERSION_PLACEHOLDER: &str = "{{version}}";

/// What went wrong reading a version or a tag template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The text was empty.
    #[error("the version is empty: expected MAJOR.MINOR.PATCH like `v3.1.0`")]
    Empty,
    /// The text does not have the `MAJOR.MINOR.PATCH` shape.
    #[error("`{text}` is not a version: expected MAJOR.MINOR.PATCH like `v3.1.0`")]
    Malformed {
        /// The text as given.
        text: String,
    },
    /// The shape is right but semver rejects a detail (a leading zero, an empty pre-release).
    #[error("`{text}` is not a version: {reason}")]
    Invalid {
        /// The text as given.
        text: String,
        /// What semver objected to.
        reason: String,
    },
    /// A tag template without `{{version}}`.
    #[error("tag template `{template}` does not contain `{{{{version}}}}`")]
    MissingPlaceholder {
        /// The template as given.
        template: String,
    },
    /// A tag template with `{{version}}` more than once.
    #[error("tag template `{template}` contains `{{{{version}}}}` more than once")]
    RepeatedPlaceholder {
        /// The template as given.
        template: String,
    },
    /// A version whose image tag (rendered with a tag template) is not a valid image tag, e.g.
    /// one with build metadata: `+` is not allowed in a tag.
    #[error(
        "`{version}` gives the image tag `{tag}` (tag template `{template}`), which is not a valid image tag: {why}"
    )]
    InvalidTag {
        /// The version as given.
        version: String,
        /// The tag it renders to.
        tag: String,
        /// The template.
        template: String,
        /// What is wrong with the tag.
        why: String,
    },
    /// A tag template with a character no image tag may contain.
    #[error("tag template `{template}` contains `{character}`, which an image tag cannot contain")]
    InvalidTagCharacter {
        /// The template as given.
        template: String,
        /// The offending character.
        character: char,
    },
}

/// A release version: an optional `v` followed by a semantic version (`v3.1.0`, `3.1.0`,
/// `v3.0.0-rc1`).
///
/// Display prints the text as given. Equality, ordering and hashing use semver precedence:
/// numbers, then pre-release; build metadata is ignored (unlike the `semver` crate's `Ord`,
/// where it breaks ties), so `v3.1.0 == 3.1.0 == v3.1.0+build.7` and
/// `v3.0.0-rc1 < v3.0.0 < v3.0.1`.
#[derive(Debug, Clone)]
pub struct Version {
    text: String,
    semver: semver::Version,
}

impl Version {
    /// The text as the user wrote it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed semantic version, without the `v` prefix.
    pub fn semver(&self) -> &semver::Version {
        &self.semver
    }

    /// Whether this is a pre-release (`v3.0.0-rc1`), which sorts below its release.
    pub fn is_prerelease(&self) -> bool {
        !self.semver.pre.is_empty()
    }

    /// The version as written without its build metadata (`v2.0.1+build.7` → `v2.0.1`).
    pub fn without_build(&self) -> &str {
        self.text.split('+').next().unwrap_or(&self.text)
    }

    /// What semver precedence compares: the numbers and the pre-release, not the build.
    fn precedence(&self) -> (u64, u64, u64, &semver::Prerelease) {
        let s = &self.semver;
        (s.major, s.minor, s.patch, &s.pre)
    }
}

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err(VersionError::Empty);
        }
        let bare = text.strip_prefix('v').unwrap_or(text);
        let core = bare.split(['-', '+']).next().unwrap_or_default();
        let numeric_parts = core.split('.').collect::<Vec<_>>();
        let well_shaped = numeric_parts.len() == 3
            && numeric_parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if !well_shaped {
            return Err(VersionError::Malformed {
                text: text.to_owned(),
            });
        }
        let semver = semver::Version::parse(bare).map_err(|e| VersionError::Invalid {
            text: text.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Version {
            text: text.to_owned(),
            semver,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.precedence() == other.precedence()
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.precedence().cmp(&other.precedence())
    }
}

impl Hash for Version {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.precedence().hash(state);
    }
}

impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

/// How a version becomes an image tag: a template containing `{{version}}` exactly once, such
/// as `{{version}}-gitlab` (so `v3.1.0` is deployed as the image tag `v3.1.0-gitlab`).
///
/// The version is inserted as written, so the `v` prefix (or its absence) carries over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagTemplate {
    template: String,
    prefix: String,
    suffix: String,
}

impl TagTemplate {
    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.template
    }

    /// The image tag for `version`.
    pub fn render(&self, version: &Version) -> String {
        format!("{}{}{}", self.prefix, version.as_str(), self.suffix)
    }

    /// The image tag for `version`, or why it cannot be one: a tag is
    /// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`, so build metadata (`+build.7`) or a tag longer than
    /// 128 characters is refused ([`VersionError::InvalidTag`]).
    pub fn render_checked(&self, version: &Version) -> Result<String, VersionError> {
        let tag = self.render(version);
        if is_valid_image_tag(&tag) {
            return Ok(tag);
        }
        let why = if let Some(c) = tag
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            format!("`{c}` is not allowed in an image tag (only letters, digits, `_`, `.` and `-`)")
        } else if tag.len() > 128 {
            format!(
                "it is {} characters long, more than the 128 allowed",
                tag.len()
            )
        } else {
            "an image tag must start with a letter, a digit or `_`".to_owned()
        };
        Err(VersionError::InvalidTag {
            version: version.to_string(),
            tag,
            template: self.template.clone(),
            why,
        })
    }

    /// The version an image tag was rendered from, or `None` when the tag does not fit the
    /// template or its middle is not a version (`latest`).
    pub fn parse_tag(&self, tag: &str) -> Option<Version> {
        tag.strip_prefix(&self.prefix)?
            .strip_suffix(&self.suffix)?
            .parse()
            .ok()
    }
}

impl Default for TagTemplate {
    /// The bare version: `{{version}}`.
    fn default() -> Self {
        TagTemplate {
            template: VERSION_PLACEHOLDER.to_owned(),
            prefix: String::new(),
            suffix: String::new(),
        }
    }
}

impl FromStr for TagTemplate {
    type Err = VersionError;

    fn from_str(template: &str) -> Result<Self, Self::Err> {
        let Some((prefix, suffix)) = template.split_once(VERSION_PLACEHOLDER) else {
            return Err(VersionError::MissingPlaceholder {
                template: template.to_owned(),
            });
        };
        if suffix.contains(VERSION_PLACEHOLDER) {
            return Err(VersionError::RepeatedPlaceholder {
                template: template.to_owned(),
            });
        }
        // Image tags are `[A-Za-z0-9_.-]`; versions supply the rest (`+` is not allowed in a
        // tag, but that is the version's business at render time, not the template's).
        if let Some(character) = prefix
            .chars()
            .chain(suffix.chars())
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(VersionError::InvalidTagCharacter {
                template: template.to_owned(),
                character,
            });
        }
        Ok(TagTemplate {
            template: template.to_owned(),
            prefix: prefix.to_owned(),
            suffix: suffix.to_owned(),
        })
    }
}

impl fmt::Display for TagTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.template)
    }
}

/// The tag of an image reference: `reg.example.com:5000/group/registry:v3.1.0-gitlab` →
/// `v3.1.0-gitlab`, also when it is pinned by digest as well (`registry:v3.1.0-gitlab@sha256:…`:
/// the digest says what runs, the tag which release it is).
///
/// `None` for a reference without a tag (`registry`, `reg.example.com:5000/registry`,
/// `registry@sha256:…`).
pub fn image_tag(image_ref: &str) -> Option<&str> {
    let named = image_ref.split('@').next().unwrap_or(image_ref);
    // A `:` before the last `/` is a registry port, not a tag.
    let last_segment = named.rsplit('/').next().unwrap_or(named);
    let (_, tag) = last_segment.split_once(':')?;
    (!tag.is_empty()).then_some(tag)
}

/// The repository of an image reference, without tag or digest:
/// `reg.example.com:5000/group/registry:v3.1.0@sha256:…` → `reg.example.com:5000/group/registry`.
pub fn image_repository(image_ref: &str) -> &str {
    let named = image_ref.split('@').next().unwrap_or(image_ref);
    let last_slash = named.rfind('/').map_or(0, |i| i + 1);
    match named[last_slash..].find(':') {
        Some(colon) => &named[..last_slash + colon],
        None => named,
    }
}

/// Whether `tag` may be an image tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}` (the Docker
/// reference grammar).
pub fn is_valid_image_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && tag.len() <= 128
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        text.parse().unwrap()
    }

    #[test]
    fn versions_parse_with_or_without_the_v_prefix_and_print_as_written() {
        let cases = [
            ("v3.1.0", (3, 1, 0), ""),
            ("3.1.0", (3, 1, 0), ""),
            ("v3.0.0-rc1", (3, 0, 0), "rc1"),
            ("v3.0.0-errors", (3, 0, 0), "errors"),
            ("v17.5.0", (17, 5, 0), ""),
            ("v1.2.3+build.7", (1, 2, 3), ""),
        ];
        for (text, (major, minor, patch), pre) in cases {
            let version = v(text);
            assert_eq!(version.to_string(), text, "{text}");
            assert_eq!(version.as_str(), text);
            let s = version.semver();
            assert_eq!((s.major, s.minor, s.patch), (major, minor, patch), "{text}");
            assert_eq!(s.pre.as_str(), pre, "{text}");
            assert_eq!(version.is_prerelease(), !pre.is_empty(), "{text}");
        }
    }

    #[test]
    fn malformed_versions_are_refused_with_a_message_naming_the_text() {
        let cases = [
            (
                "3.1",
                "`3.1` is not a version: expected MAJOR.MINOR.PATCH like `v3.1.0`",
            ),
            (
                "v3",
                "`v3` is not a version: expected MAJOR.MINOR.PATCH like `v3.1.0`",
            ),
            (
                "latest",
                "`latest` is not a version: expected MAJOR.MINOR.PATCH like `v3.1.0`",
            ),
            (
                "V3.1.0",
                "`V3.1.0` is not a version: expected MAJOR.MINOR.PATCH like `v3.1.0`",
            ),
            (
                "v3.1.0.1",
                "`v3.1.0.1` is not a version: expected MAJOR.MINOR.PATCH like `v3.1.0`",
            ),
            (
                " v3.1.0",
                "` v3.1.0` is not a version: expected MAJOR.MINOR.PATCH like `v3.1.0`",
            ),
            (
                "",
                "the version is empty: expected MAJOR.MINOR.PATCH like `v3.1.0`",
            ),
        ];
        for (text, message) in cases {
            let err = text.parse::<Version>().unwrap_err();
            assert_eq!(err.to_string(), message, "{text:?}");
        }
    }

    #[test]
    fn well_shaped_versions_that_semver_rejects_carry_the_reason() {
        for text in ["v03.1.0", "v3.1.0-", "v3.1.0-rc..1"] {
            let err = text.parse::<Version>().unwrap_err();
            assert!(matches!(err, VersionError::Invalid { .. }), "{text}: {err}");
            assert!(
                err.to_string()
                    .starts_with(&format!("`{text}` is not a version: ")),
                "{err}"
            );
        }
    }

    #[test]
    fn versions_order_by_semver_precedence() {
        let ascending = [
            "v2.9.9",
            "v3.0.0-errors",
            "v3.0.0-rc1",
            "v3.0.0",
            "3.0.1",
            "v3.1.0",
            "v3.10.0",
            "v17.5.0",
        ];
        for pair in ascending.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn build_metadata_counts_neither_in_ordering_nor_in_equality() {
        let hash = |version: &Version| {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            version.hash(&mut hasher);
            hasher.finish()
        };
        let cases = [
            ("v2.0.1+build.7", "v2.0.1", Ordering::Equal),
            ("v2.0.1+build.7", "v2.0.1+build.8", Ordering::Equal),
            ("v2.0.1+zzz", "v2.0.2", Ordering::Less),
            ("v2.0.1-rc1+build.9", "v2.0.1", Ordering::Less),
            ("v2.0.1+build.7", "v2.0.0", Ordering::Greater),
        ];
        for (a, b, order) in cases {
            assert_eq!(v(a).cmp(&v(b)), order, "{a} vs {b}");
            assert_eq!(v(a) == v(b), order == Ordering::Equal, "{a} == {b}");
            if order == Ordering::Equal {
                assert_eq!(hash(&v(a)), hash(&v(b)), "{a} and {b} hash alike");
            }
        }
        assert_eq!(v("v2.0.1+build.7").without_build(), "v2.0.1");
        assert_eq!(v("v2.0.1").without_build(), "v2.0.1");
    }

    #[test]
    fn versions_whose_tag_is_not_an_image_tag_are_refused_naming_the_tag_and_why() {
        let gitlab: TagTemplate = "{{version}}-gitlab".parse().unwrap();
        let long = format!("v1.0.0-{}", "a".repeat(130));
        let cases = [
            ("v2.0.1", &gitlab, Ok("v2.0.1-gitlab".to_owned())),
            ("v2.0.1-rc1", &gitlab, Ok("v2.0.1-rc1-gitlab".to_owned())),
            (
                "v2.0.1+build.7",
                &gitlab,
                Err("`v2.0.1+build.7` gives the image tag `v2.0.1+build.7-gitlab` (tag template `{{version}}-gitlab`), which is not a valid image tag: `+` is not allowed in an image tag (only letters, digits, `_`, `.` and `-`)".to_owned()),
            ),
            (
                long.as_str(),
                &gitlab,
                Err(format!("`{long}` gives the image tag `{long}-gitlab` (tag template `{{{{version}}}}-gitlab`), which is not a valid image tag: it is 144 characters long, more than the 128 allowed")),
            ),
        ];
        for (version, template, expected) in cases {
            let got = template
                .render_checked(&v(version))
                .map_err(|e| e.to_string());
            assert_eq!(got, expected, "{version}");
        }
    }

    #[test]
    fn the_same_version_spelled_with_and_without_v_is_equal() {
        assert_eq!(v("v3.1.0"), v("3.1.0"));
        assert_eq!(v("v3.1.0").cmp(&v("3.1.0")), Ordering::Equal);
        let set = [v("v3.1.0"), v("3.1.0")]
            .into_iter()
            .collect::<std::collections::HashSet<_>>();
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn versions_deserialize_from_strings_and_serialize_as_written() {
        let version: Version = serde_json::from_str("\"v3.1.0\"").unwrap();
        assert_eq!(version, v("3.1.0"));
        assert_eq!(serde_json::to_string(&version).unwrap(), "\"v3.1.0\"");
        let err = serde_json::from_str::<Version>("\"3.1\"").unwrap_err();
        assert!(err.to_string().contains("`3.1` is not a version"), "{err}");
    }

    #[test]
    fn tag_templates_render_and_invert() {
        let cases = [
            ("{{version}}-gitlab", "v3.1.0", "v3.1.0-gitlab"),
            ("{{version}}", "v3.1.0", "v3.1.0"),
            ("{{version}}", "3.1.0", "3.1.0"),
            ("release-{{version}}", "v3.0.0-rc1", "release-v3.0.0-rc1"),
            ("{{version}}-gitlab", "v3.0.0-rc1", "v3.0.0-rc1-gitlab"),
        ];
        for (template, version, tag) in cases {
            let template: TagTemplate = template.parse().unwrap();
            assert_eq!(template.render(&v(version)), tag);
            let back = template.parse_tag(tag).unwrap();
            assert_eq!(back.as_str(), version, "{template}: {tag}");
        }
    }

    #[test]
    fn tags_that_do_not_fit_the_template_have_no_version() {
        let template: TagTemplate = "{{version}}-gitlab".parse().unwrap();
        for tag in [
            "latest",
            "v3.1.0",
            "v3.1.0-ubi",
            "main-gitlab",
            "-gitlab",
            "",
        ] {
            assert_eq!(template.parse_tag(tag), None, "{tag}");
        }
    }

    #[test]
    fn tag_templates_need_the_placeholder_exactly_once_and_only_tag_characters() {
        let cases = [
            (
                "latest",
                "tag template `latest` does not contain `{{version}}`",
            ),
            (
                "{{ version }}",
                "tag template `{{ version }}` does not contain `{{version}}`",
            ),
            (
                "{{version}}-{{version}}",
                "tag template `{{version}}-{{version}}` contains `{{version}}` more than once",
            ),
            (
                "{{version}}:x",
                "tag template `{{version}}:x` contains `:`, which an image tag cannot contain",
            ),
            (
                "{{environment}}-{{version}}",
                "tag template `{{environment}}-{{version}}` contains `{`, which an image tag cannot contain",
            ),
        ];
        for (template, message) in cases {
            let err = template.parse::<TagTemplate>().unwrap_err();
            assert_eq!(err.to_string(), message, "{template}");
        }
        assert_eq!(TagTemplate::default().as_str(), "{{version}}");
    }

    #[test]
    fn image_tag_reads_the_tag_after_the_last_slash() {
        let cases = [
            (
                "reg.example.com:5000/group/registry:v3.1.0-gitlab",
                Some("v3.1.0-gitlab"),
            ),
            (
                "registry.example.com/gitlab-container-registry:v3.1.0",
                Some("v3.1.0"),
            ),
            ("registry:v3.1.0", Some("v3.1.0")),
            ("localhost:5000/registry:latest", Some("latest")),
            ("reg.example.com:5000/group/registry", None),
            ("registry", None),
            ("registry:", None),
            ("registry@sha256:0123abcd", None),
            (
                "reg.example.com:5000/registry:v3.1.0@sha256:0123abcd",
                Some("v3.1.0"),
            ),
        ];
        for (reference, tag) in cases {
            assert_eq!(image_tag(reference), tag, "{reference}");
        }
    }

    #[test]
    fn the_repository_is_the_reference_without_tag_and_digest() {
        for (reference, repository) in [
            (
                "reg.example.com:5000/group/registry:v3.1.0-gitlab",
                "reg.example.com:5000/group/registry",
            ),
            (
                "reg.example.com:5000/registry",
                "reg.example.com:5000/registry",
            ),
            ("registry:v1@sha256:0123", "registry"),
            ("registry@sha256:0123", "registry"),
            ("busybox", "busybox"),
        ] {
            assert_eq!(image_repository(reference), repository, "{reference}");
        }
    }

    #[test]
    fn image_tags_follow_the_reference_grammar() {
        for tag in ["v3.1.0-gitlab", "latest", "_x", "1.36", &"a".repeat(128)] {
            assert!(is_valid_image_tag(tag), "{tag}");
        }
        for tag in [
            "",
            "v2.0.1+build.7-gitlab",
            ".v1",
            "-v1",
            "v1/x",
            &"a".repeat(129),
        ] {
            assert!(!is_valid_image_tag(tag), "{tag}");
        }
    }
}
