//! The one error type of configuration loading, and the private `Problem` the reader and the
//! validator raise before the file's path and line numbers are attached.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Why `tagship.toml` could not be used. Only the first problem found is reported.
///
/// [`ConfigError::Invalid`] displays as `FILE:LINE:COLUMN: MESSAGE`, followed by a line
/// `hint: HINT` when a fix is known:
///
/// ```text
/// tagship.toml:12:5: unknown key `namspace` in [[stage]] `gstg`
/// hint: did you mean `namespace`?
/// ```
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (the message names the path; a missing file gets a hint).
    #[error("{error}{hint}", error = .0, hint = HintLine(read_hint(.0)))]
    Read(std::io::Error),
    /// The file is not TOML, or not a valid tagship configuration.
    #[error("{}:{line}:{column}: {message}{}", path.display(), HintLine(hint.as_deref()))]
    Invalid {
        /// The configuration file, as given.
        path: PathBuf,
        /// 1-based line of the offending key or value.
        line: usize,
        /// 1-based column (in characters) of the offending key or value.
        column: usize,
        /// What is wrong, naming keys and values in backticks.
        message: String,
        /// How to fix it, when that is known.
        hint: Option<String>,
    },
}

impl ConfigError {
    /// The hint, if the error has one.
    pub fn hint(&self) -> Option<&str> {
        match self {
            ConfigError::Read(e) => read_hint(e),
            ConfigError::Invalid { hint, .. } => hint.as_deref(),
        }
    }

    /// `(line, column)`, both 1-based, of an invalid configuration.
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            ConfigError::Read(_) => None,
            ConfigError::Invalid { line, column, .. } => Some((*line, *column)),
        }
    }

    /// The message without position or hint.
    pub fn message(&self) -> String {
        match self {
            ConfigError::Read(e) => e.to_string(),
            ConfigError::Invalid { message, .. } => message.clone(),
        }
    }
}

/// What to do about a configuration file that cannot be read.
fn read_hint(error: &std::io::Error) -> Option<&'static str> {
    match error.kind() {
        std::io::ErrorKind::NotFound => Some(
            "pass the configuration with `--config PATH` (or `TAGSHIP_CONFIG`); the default is `tagship.toml` in the current directory",
        ),
        std::io::ErrorKind::PermissionDenied => {
            Some("make the file readable by the user tagship runs as")
        }
        std::io::ErrorKind::IsADirectory => Some("`--config` takes the file, not its directory"),
        _ => None,
    }
}

struct HintLine<'a>(Option<&'a str>);

impl fmt::Display for HintLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(hint) => write!(f, "\nhint: {hint}"),
            None => Ok(()),
        }
    }
}

/// A problem found in the document, located by byte span; becomes a [`ConfigError`] once the
/// path and text are at hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) span: Range<usize>,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

impl Problem {
    pub(crate) fn new(span: Range<usize>, message: impl Into<String>) -> Self {
        Problem {
            span,
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub(crate) fn maybe_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    pub(crate) fn locate(self, text: &str, path: &Path) -> ConfigError {
        let (line, column) = line_column(text, self.span.start);
        ConfigError::Invalid {
            path: path.to_owned(),
            line,
            column,
            message: self.message,
            hint: self.hint,
        }
    }
}

/// 1-based line and column (in characters) of a byte offset; offsets past the end or inside a
/// character are clamped to the nearest character boundary before them.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_one_based_lines_and_character_columns() {
        let text = "a = 1\nbé = \"x\"\n";
        let cases = [
            (0, (1, 1)),
            (4, (1, 5)),
            (6, (2, 1)),
            (9, (2, 3)),
            (8, (2, 2)),
            (100, (3, 1)),
        ];
        for (offset, expected) in cases {
            assert_eq!(line_column(text, offset), expected, "offset {offset}");
        }
    }

    #[test]
    fn invalid_configurations_display_position_message_and_hint() {
        let err = Problem::new(6..7, "unknown key `b`")
            .hint("did you mean `a`?")
            .locate("a = 1\nb = 2\n", Path::new("tagship.toml"));
        assert_eq!(
            err.to_string(),
            "tagship.toml:2:1: unknown key `b`\nhint: did you mean `a`?"
        );
        assert_eq!(err.hint(), Some("did you mean `a`?"));
        assert_eq!(err.position(), Some((2, 1)));
        let err = Problem::new(0..1, "no hint").locate("a", Path::new("t.toml"));
        assert_eq!(err.to_string(), "t.toml:1:1: no hint");
    }
}
