//! Output to the user. Data goes to stdout, everything else to stderr; nothing else in the
//! library prints.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "this module is the one place that prints"
)]

use std::io::Write as _;

/// Prints `value` as pretty JSON on stdout.
pub fn stdout_json(value: &impl serde::Serialize) {
    let text = serde_json::to_string_pretty(value)
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot serialize: {e}\"}}"));
    stdout_line(&text);
}

/// Prints one line (or block) of data on stdout. A closed pipe is not an error worth a panic.
pub fn stdout_line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
}

/// Prints one line (or block) of non-data text on stderr.
pub fn stderr_line(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
}
