//! Output to the terminal: every line and all data tagship prints. Data goes to stdout,
//! everything else to stderr. (The reports a run writes to files are `journal`'s.)

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "this module is the one place that prints"
)]

use std::fmt::Write as _;
use std::io::Write as _;

/// Prints `value` as pretty JSON on stdout ([`json`]).
pub fn stdout_json(value: &impl serde::Serialize) {
    stdout_line(&json(value));
}

/// `value` as pretty JSON that is safe on a terminal: besides what JSON must escape (C0
/// controls, quotes, backslashes), DEL, the C1 controls (U+009B is an 8-bit CSI), the line
/// separators and the bidi formatting characters are written as `\uXXXX`. They can only stand
/// inside strings, where the escape means the same character.
pub fn json(value: &impl serde::Serialize) -> String {
    let text = serde_json::to_string_pretty(value)
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot serialize: {e}\"}}"));
    // serde_json escapes C0 controls in strings; the ones left are its own line breaks.
    let unsafe_char = |c: char| crate::plugins::is_unsafe_char(c) && c > '\u{1f}';
    if !text.chars().any(unsafe_char) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            // Every such character is in the Basic Multilingual Plane: one \u escape each.
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// Prints one line (or block) of data on stdout. A closed pipe is not an error worth a panic.
pub fn stdout_line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
}

/// Prints one line (or block) of non-data text on stderr, in one write: stderr is unbuffered,
/// and `writeln!` would make the text and its newline two system calls.
pub fn stderr_line(text: &str) {
    let mut line = String::with_capacity(text.len() + 1);
    line.push_str(text);
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// `error` and its causes on one line ("cannot load kubeconfig: file not found"), leaving out a
/// cause whose text the line already holds: many errors repeat their source's text in their own.
pub fn one_line(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    for cause in error.source().into_iter().flat_map(causes) {
        let told = cause.to_string();
        if !text.contains(&told) {
            text.push_str(": ");
            text.push_str(&told);
        }
    }
    text
}

/// `error`, then its source, then that one's, and so on.
pub fn causes<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error), |e| e.source())
}

#[cfg(test)]
mod json_tests {
    #[test]
    fn json_escapes_del_c1_and_bidi_characters_and_stays_valid() {
        let value = serde_json::json!({"reason": "a\u{7f}b\u{9b}31m\u{202e}c\nd"});
        let text = super::json(&value);
        assert!(!text.contains(['\u{7f}', '\u{9b}', '\u{202e}']), "{text:?}");
        assert!(text.contains("\\u007f") && text.contains("\\u009b") && text.contains("\\u202e"));
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value, "the same value, escaped");
        assert!(text.contains('\n'), "pretty-printed lines stay lines");
    }
}
