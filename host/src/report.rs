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
