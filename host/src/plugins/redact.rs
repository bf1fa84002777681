//! What a plugin says, made safe to show: secret values redacted and control characters
//! escaped, in every text that leaves a plugin (log lines, captured stdout/stderr, panic and
//! error messages, verdict reasons and thresholds, the fields of the runner's own debug lines).
//!
//! # What is found
//! A secret's value as granted, and the forms the runner or an HTTP library derives from it:
//! the value trimmed (a secret read from a file ends in a newline), each line of a multi-line
//! value on its own (a PEM key leaks line by line otherwise), the URL parsed and written back
//! (`HTTPS://h:443/p` → `https://h/p`) and that URL's path and query (where a webhook's token
//! lives), and each of them form-encoded (`+` for a space) and percent-encoded (`%20`, either
//! case of hex digit).
//!
//! # Caveats
//! A plugin that transforms a secret itself (reverses it, base64-encodes it, sends it to a
//! granted host) cannot be stopped by redaction; grant secrets only to plugins you trust with
//! them. Values shorter than [`MIN_SECRET_LEN`] are not redacted.

/// Replaces secret values with `[redacted:NAME]`; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// `(needle, replacement)`, longest needles first so overlapping values redact fully.
    needles: Vec<(String, String)>,
}

/// Values shorter than this are not redacted: replacing every `a` in a log would hide the log,
/// not the secret. Such short secrets get no protection (the README says so).
pub const MIN_SECRET_LEN: usize = 4;

impl Redactor {
    /// A redactor for the given `(name, value)` pairs.
    pub fn new<'a>(secrets: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut needles: Vec<(String, String)> = Vec::new();
        for (name, value) in secrets {
            let replacement = format!("[redacted:{name}]");
            for form in derived_forms(value) {
                if form.len() >= MIN_SECRET_LEN && !needles.iter().any(|(n, _)| *n == form) {
                    needles.push((form, replacement.clone()));
                }
            }
        }
        needles.sort_by_key(|(needle, _)| std::cmp::Reverse(needle.len()));
        Redactor { needles }
    }

    /// The length of the longest form redacted: output cut at N bytes must be read to
    /// N + this before it is redacted, so a value straddling the cut is found whole.
    pub fn longest(&self) -> usize {
        self.needles.first().map_or(0, |(needle, _)| needle.len())
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

    /// `text` redacted, then escaped for one line of the runner's output ([`escape`]).
    pub fn clean(&self, text: &str) -> String {
        escape(&self.redact(text))
    }
}

/// Every form of `value` the redactor looks for.
fn derived_forms(value: &str) -> Vec<String> {
    let mut plain = vec![value.to_owned(), value.trim().to_owned()];
    if value.trim().contains(['\n', '\r']) {
        plain.extend(value.lines().map(|line| line.trim().to_owned()));
    }
    if let Ok(url) = url::Url::parse(value.trim()) {
        plain.push(url.as_str().to_owned());
        let path_and_query = &url[url::Position::BeforePath..];
        if path_and_query.len() > 1 {
            plain.push(path_and_query.to_owned());
        }
    }
    let mut forms = Vec::with_capacity(plain.len() * 4);
    for form in plain {
        let form_encoded: String = url::form_urlencoded::byte_serialize(form.as_bytes()).collect();
        let percent = percent_encode(&form);
        forms.push(percent.to_ascii_lowercase_hex());
        forms.push(percent.0);
        forms.push(form_encoded);
        forms.push(form);
    }
    forms
}

/// Percent-encoding of every byte outside RFC 3986's unreserved set, upper-case hex.
struct Percent(String);

fn percent_encode(text: &str) -> Percent {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    Percent(out)
}

impl Percent {
    /// The same encoding with lower-case hex digits (`%2f`), which some encoders write.
    fn to_ascii_lowercase_hex(&self) -> String {
        let mut out = String::with_capacity(self.0.len());
        let mut chars = self.0.chars();
        while let Some(c) = chars.next() {
            out.push(c);
            if c == '%' {
                out.extend(chars.by_ref().take(2).map(|h| h.to_ascii_lowercase()));
            }
        }
        out
    }
}

/// Whether `c` must not reach a terminal or a log raw: C0 and C1 controls, DEL, the line and
/// paragraph separators, and the bidirectional formatting characters (U+202E turns the rest of
/// a line around on screen).
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `text` as one line: `\n`, `\r` and `\t` written as those two characters, every other
/// [`is_unsafe_char`] as `\u{…}`. A plugin cannot start a line of the runner's log, overwrite
/// its prefix with a carriage return, or reorder it with a bidi override.
pub fn escape(text: &str) -> String {
    if !text.chars().any(is_unsafe_char) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe_char(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    out
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

    #[test]
    fn a_webhook_url_is_redacted_in_every_form_the_runner_derives() {
        let token = "T000/B000/XXXXSECRETXXXX";
        for secret in [
            format!("https://hooks.slack.com/services/{token}\n"),
            format!("https://hooks.slack.com:443/services/{token}"),
            format!("HTTPS://hooks.slack.com/services/{token}"),
            format!("  https://Hooks.Slack.com/services/{token}  "),
        ] {
            let r = Redactor::new([("HOOK", secret.as_str())]);
            for said in [
                format!("POST https://hooks.slack.com/services/{token}: refused"),
                format!("path /services/{token}"),
                secret.trim().to_owned(),
                format!("escaped {}", percent_encode(secret.trim()).0),
                format!(
                    "lower {}",
                    percent_encode(secret.trim()).to_ascii_lowercase_hex()
                ),
            ] {
                let out = r.redact(&said);
                assert!(!out.contains("SECRET"), "{secret:?}: {said} -> {out}");
            }
        }
    }

    #[test]
    fn a_value_with_spaces_is_redacted_percent_encoded_in_a_path() {
        let r = Redactor::new([("KEY", "my secret key")]);
        assert_eq!(
            r.redact("GET /v1/my%20secret%20key and my+secret+key"),
            "GET /v1/[redacted:KEY] and [redacted:KEY]"
        );
    }

    #[test]
    fn each_line_of_a_multi_line_secret_is_redacted_on_its_own() {
        let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----\n";
        let r = Redactor::new([("PEM", pem)]);
        let out =
            r.redact("line MIIEvQIBADANBgkqhkiG9w0BAQEFAASC then BKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj");
        assert!(!out.contains("MIIE") && !out.contains("BKcw"), "{out}");
        let joined = r.redact(&pem.lines().collect::<Vec<_>>().join(" "));
        assert!(!joined.contains("MIIE"), "{joined}");
    }

    #[test]
    fn controls_and_bidi_overrides_are_escaped_onto_one_line() {
        assert_eq!(escape("plain text"), "plain text");
        assert_eq!(
            escape("ok\ntagship: stage gprd approved"),
            "ok\\ntagship: stage gprd approved"
        );
        assert_eq!(escape("\rWARN"), "\\rWARN");
        assert_eq!(escape("a\u{202E}b"), "a\\u{202e}b");
        assert_eq!(escape("csi\u{9B}31m del\u{7F}"), "csi\\u{9b}31m del\\u{7f}");
        assert_eq!(escape("esc\u{1b}[2J"), "esc\\u{1b}[2J");
        assert_eq!(escape("sep\u{2028}x"), "sep\\u{2028}x");
        assert_eq!(escape("naïve ✓ 日本"), "naïve ✓ 日本");
        let r = Redactor::new([("T", "line1\nline2-secret")]);
        assert_eq!(r.clean("x line2-secret\ny"), "x [redacted:T]\\ny");
    }
}
