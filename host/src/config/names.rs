//! The name rules of the configuration (Kubernetes names, plugin names, environment variable
//! names) and "did you mean" suggestions. Pure.

/// A rule a name must follow, with the words used to explain it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameRule {
    /// RFC 1123 label: namespaces, containers, stage and environment names.
    Label,
    /// RFC 1123 subdomain: Deployments, Leases, service accounts.
    Subdomain,
    /// `[a-z0-9-]+`: plugin names.
    Plugin,
    /// `[A-Z_][A-Z0-9_]*`: secret names.
    Secret,
    /// `[A-Za-z_][A-Za-z0-9_]*`: environment variables of migration Jobs.
    EnvVar,
}

impl NameRule {
    pub(crate) fn allows(self, name: &str) -> bool {
        match self {
            NameRule::Label => is_label(name),
            NameRule::Subdomain => {
                name.len() <= 253 && !name.is_empty() && name.split('.').all(is_label)
            }
            NameRule::Plugin => {
                !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            }
            NameRule::Secret => {
                name.bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_uppercase() || b == b'_')
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            }
            NameRule::EnvVar => {
                name.bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            }
        }
    }

    /// What the rule asks for, to follow "must be".
    pub(crate) fn explain(self) -> &'static str {
        match self {
            NameRule::Label => {
                "lowercase letters, digits and `-`, starting and ending with a letter or digit, at most 63 characters"
            }
            NameRule::Subdomain => {
                "lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit, at most 253 characters"
            }
            NameRule::Plugin => "lowercase letters, digits and `-`",
            NameRule::Secret => {
                "uppercase letters, digits and `_`, not starting with a digit, like `SLACK_WEBHOOK_URL`"
            }
            NameRule::EnvVar => "letters, digits and `_`, not starting with a digit",
        }
    }
}

fn is_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 63
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes.iter().all(|b| edge(b) || *b == b'-')
}

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(&word, &c.to_lowercase()), c))
        .filter(|(distance, c)| *distance <= (c.chars().count() / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

/// `` `a`, `b`, `c` ``.
pub(crate) fn quoted_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items
        .into_iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_their_rules() {
        let long_label = "a".repeat(64);
        let cases = [
            (NameRule::Label, "gstg-cny", true),
            (NameRule::Label, "gprd", true),
            (NameRule::Label, "Gprd", false),
            (NameRule::Label, "gprd-", false),
            (NameRule::Label, "-gprd", false),
            (NameRule::Label, "g.prd", false),
            (NameRule::Label, "", false),
            (NameRule::Label, long_label.as_str(), false),
            (NameRule::Subdomain, "gitlab-registry", true),
            (NameRule::Subdomain, "tagship.gstg", true),
            (NameRule::Subdomain, "tagship..gstg", false),
            (NameRule::Subdomain, "tagship_gstg", false),
            (NameRule::Plugin, "prometheus-health", true),
            (NameRule::Plugin, "Health", false),
            (NameRule::Plugin, "", false),
            (NameRule::Secret, "SLACK_WEBHOOK_URL", true),
            (NameRule::Secret, "_X1", true),
            (NameRule::Secret, "1X", false),
            (NameRule::Secret, "slack_url", false),
            (NameRule::EnvVar, "SKIP_POST_DEPLOYMENT_MIGRATIONS", true),
            (NameRule::EnvVar, "lower_ok", true),
            (NameRule::EnvVar, "A-B", false),
        ];
        for (rule, name, allowed) in cases {
            assert_eq!(rule.allows(name), allowed, "{rule:?} {name:?}");
        }
    }

    #[test]
    fn suggestions_are_offered_only_for_likely_typos() {
        let keys = ["name", "namespace", "ttl", "wait", "environment"];
        let cases = [
            ("namspace", Some("namespace")),
            ("Namespace", Some("namespace")),
            ("nmae", Some("name")),
            ("ttll", Some("ttl")),
            ("enviroment", Some("environment")),
            ("timeout", None),
            ("x", None),
        ];
        for (word, expected) in cases {
            assert_eq!(closest(word, keys), expected, "{word}");
        }
    }
}
