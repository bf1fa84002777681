//! Redaction of secret values from every text that leaves a plugin: log lines, captured
//! stdout/stderr, error messages and verdict reasons.
//!
//! # Caveats
//! Only literal occurrences of a value are found (plus its percent-encoded form). A plugin that
//! transforms a secret (reverses it, base64-encodes it, sends it to a granted host) cannot be
//! stopped by redaction; grant secrets only to plugins you trust with them.

/// Replaces secret values with `[redacted:NAME]`.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// `(needle, replacement)`, longest needles first so overlapping values redact fully.
    needles: Vec<(String, String)>,
}

/// Values shorter than this are not redacted: replacing every `a` in a log would hide the log,
/// not the secret. Such short secrets get no protection (the README says so).
const MIN_SECRET_LEN: usize = 4;

impl Redactor {
    /// A redactor for the given `(name, value)` pairs.
    pub fn new<'a>(secrets: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut needles = Vec::new();
        for (name, value) in secrets {
            if value.len() < MIN_SECRET_LEN {
                continue;
            }
            let replacement = format!("[redacted:{name}]");
            let encoded: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
            if encoded != value {
                needles.push((encoded, replacement.clone()));
            }
            needles.push((value.to_owned(), replacement));
        }
        needles.sort_by_key(|(needle, _)| std::cmp::Reverse(needle.len()));
        Redactor { needles }
    }

    /// `text` with every secret value replaced.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (needle, replacement) in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), replacement);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_occurrence_of_a_secret_is_replaced_by_its_name() {
        let r = Redactor::new([("TOKEN", "s3cr3t-value")]);
        assert_eq!(
            r.redact("token=s3cr3t-value and again s3cr3t-value"),
            "token=[redacted:TOKEN] and again [redacted:TOKEN]"
        );
    }

    #[test]
    fn the_url_encoded_form_is_replaced_too() {
        let r = Redactor::new([("HOOK", "https://hooks.example/a b")]);
        let out = r.redact("GET https%3A%2F%2Fhooks.example%2Fa+b failed");
        assert!(!out.contains("hooks.example"), "{out}");
    }

    #[test]
    fn overlapping_secrets_redact_the_longest_first() {
        let r = Redactor::new([("SHORT", "abcd"), ("LONG", "abcdefgh")]);
        assert_eq!(r.redact("x abcdefgh y"), "x [redacted:LONG] y");
    }

    #[test]
    fn very_short_values_are_left_alone() {
        let r = Redactor::new([("PIN", "42")]);
        assert_eq!(r.redact("answer 42"), "answer 42");
    }
}
