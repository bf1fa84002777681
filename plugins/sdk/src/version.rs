//! Semantic versions as components and the GitLab registry write them: `v3.1.0`, `3.1.0`,
//! `v3.0.0-rc1`. Pure: no bindings, no I/O.
//!
//! Ordering follows semver 2.0: a pre-release sorts below its release
//! (`v3.0.0-rc1 < v3.0.0`), pre-release identifiers compare numerically when both are numbers
//! and lexically otherwise, and build metadata (`+...`) is ignored. A missing minor or patch
//! reads as `0` (`v3` is `v3.0.0`).

use std::cmp::Ordering;
use std::fmt;

/// A parsed version; compares by semver precedence.
#[derive(Debug, Clone)]
pub struct Version {
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Patch number.
    pub patch: u64,
    /// Pre-release identifiers (`rc1` in `v3.0.0-rc1`); empty for a release.
    pub pre: Vec<String>,
    text: String,
}

impl Version {
    /// Parses `text` (surrounding whitespace and a leading `v`/`V` allowed).
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let bad = |why: &str| format!("`{trimmed}` is not a version ({why})");
        let core_and_pre = trimmed
            .strip_prefix(['v', 'V'])
            .unwrap_or(trimmed)
            .split('+')
            .next()
            .unwrap_or_default();
        let (core, pre) = match core_and_pre.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (core_and_pre, None),
        };
        let mut numbers = [0_u64; 3];
        let parts: Vec<&str> = core.split('.').collect();
        if parts.len() > 3 {
            return Err(bad("expected MAJOR.MINOR.PATCH"));
        }
        for (slot, part) in numbers.iter_mut().zip(&parts) {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("expected MAJOR.MINOR.PATCH"));
            }
            *slot = part.parse().map_err(|_| bad("number too large"))?;
        }
        let pre = match pre {
            Some(pre) => {
                let identifiers: Vec<String> = pre.split('.').map(str::to_owned).collect();
                if identifiers.iter().any(String::is_empty) {
                    return Err(bad("empty pre-release identifier"));
                }
                identifiers
            }
            None => Vec::new(),
        };
        Ok(Self {
            major: numbers[0],
            minor: numbers[1],
            patch: numbers[2],
            pre,
            text: trimmed.to_owned(),
        })
    }

    /// True for a pre-release (`v3.0.0-rc1`).
    #[must_use]
    pub fn is_prerelease(&self) -> bool {
        !self.pre.is_empty()
    }

    /// The text the version was parsed from, trimmed.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
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
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| compare_pre(&self.pre, &other.pre))
    }
}

fn compare_pre(a: &[String], b: &[String]) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        (false, false) => {}
    }
    for (x, y) in a.iter().zip(b) {
        let order = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            (Err(_), Err(_)) => x.cmp(y),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

/// Compares two version texts by semver precedence.
pub fn compare(a: &str, b: &str) -> Result<Ordering, String> {
    Ok(Version::parse(a)?.cmp(&Version::parse(b)?))
}

/// True when `version` is at least `minimum`.
pub fn at_least(version: &str, minimum: &str) -> Result<bool, String> {
    Ok(compare(version, minimum)? != Ordering::Less)
}

/// True when two version texts are the same string once trimmed and stripped of a leading
/// `v`/`V` (`v3.1.0` and `3.1.0`). No semver parsing: `3.1` and `3.1.0` differ.
#[must_use]
pub fn same_text(a: &str, b: &str) -> bool {
    let strip = |s: &str| {
        let s = s.trim();
        s.strip_prefix(['v', 'V']).unwrap_or(s).to_owned()
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lt(a: &str, b: &str) {
        assert_eq!(compare(a, b), Ok(Ordering::Less), "{a} < {b}");
        assert_eq!(compare(b, a), Ok(Ordering::Greater), "{b} > {a}");
    }

    #[test]
    fn releases_order_by_numbers_not_text() {
        lt("v3.0.0", "v3.1.0");
        lt("v3.9.0", "v3.10.0");
        lt("v2.99.99", "v3.0.0");
        lt("v3.0.1", "v3.0.2");
    }

    #[test]
    fn a_prerelease_sorts_below_its_release() {
        lt("v3.0.0-rc1", "v3.0.0");
        lt("v2.9.9", "v3.0.0-rc1");
    }

    #[test]
    fn prerelease_identifiers_follow_semver_precedence() {
        // The example list from semver.org §11.
        let ordered = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
        ];
        for pair in ordered.windows(2) {
            lt(pair[0], pair[1]);
        }
    }

    #[test]
    fn the_v_prefix_and_build_metadata_do_not_matter() {
        assert_eq!(compare("v3.1.0", "3.1.0"), Ok(Ordering::Equal));
        assert_eq!(compare("3.1.0+build.7", "v3.1.0"), Ok(Ordering::Equal));
    }

    #[test]
    fn missing_minor_and_patch_read_as_zero() {
        assert_eq!(compare("v3", "v3.0.0"), Ok(Ordering::Equal));
        assert_eq!(compare("v3.1", "v3.1.0"), Ok(Ordering::Equal));
    }

    #[test]
    fn at_least_includes_equality() {
        assert_eq!(at_least("v3.1.0", "v3.1.0"), Ok(true));
        assert_eq!(at_least("v3.0.0", "v3.1.0"), Ok(false));
        assert_eq!(at_least("v3.1.0-rc1", "v3.1.0"), Ok(false));
    }

    #[test]
    fn garbage_is_an_error_naming_the_text() {
        for bad in [
            "",
            "latest",
            "v3..1",
            "v3.1.0.4",
            "v3.x.0",
            "v3.1.0-",
            "v3.1.0-rc..1",
        ] {
            let error = Version::parse(bad).unwrap_err();
            assert!(error.contains("is not a version"), "{bad}: {error}");
        }
    }

    #[test]
    fn display_keeps_the_text_as_written() {
        assert_eq!(
            Version::parse(" v3.1.0-rc1 ").unwrap().to_string(),
            "v3.1.0-rc1"
        );
    }

    #[test]
    fn same_text_ignores_only_a_leading_v() {
        assert!(same_text("v3.1.0", "3.1.0"));
        assert!(same_text(" v3.1.0\n", "v3.1.0"));
        assert!(!same_text("v3.1.0", "v3.1.0-gitlab"));
    }
}
