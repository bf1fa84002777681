//! A generic reader of one spanned TOML table: typed getters whose errors point at the key or
//! value in the file (line and column) and name the table as a person wrote it, and the check
//! that every key is known (with the closest known key as a hint).

use std::borrow::Cow;
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::duration::parse_duration;
use super::error::Problem;
use super::names::{NameRule, closest, quoted_list};

pub(super) type Span = Range<usize>;
pub(super) type Value<'i> = Spanned<DeValue<'i>>;
pub(super) type Key<'i> = Spanned<Cow<'i, str>>;

/// A string and where it was written.
pub(crate) type Text = Spanned<String>;

/// One table of the document and how messages name it.
pub(super) struct Section<'a, 'i> {
    pub(super) text: &'a str,
    pub(super) table: &'a DeTable<'i>,
    /// The table's header or inline value; where "missing key" errors point.
    pub(super) span: Span,
    /// `[lock]`, ``[[stage]] `gstg` ``; empty at the top level.
    pub(super) place: String,
}

impl<'a, 'i> Section<'a, 'i> {
    /// The entries in the order they were written.
    pub(super) fn entries(&self) -> Vec<(&'a Key<'i>, &'a Value<'i>)> {
        let mut entries = self.table.iter().collect::<Vec<_>>();
        entries.sort_by_key(|(key, _)| key.span().start);
        entries
    }

    pub(super) fn get(&self, key: &str) -> Option<&'a Value<'i>> {
        self.table.get(key)
    }

    /// `` `key` in [place] ``.
    pub(super) fn what(&self, key: &str) -> String {
        if self.place.is_empty() {
            format!("`{key}`")
        } else {
            format!("`{key}` in {}", self.place)
        }
    }

    pub(super) fn check_keys(&self, allowed: &[&str]) -> Result<(), Problem> {
        for (key, _) in self.entries() {
            let name = key.get_ref().as_ref();
            if allowed.contains(&name) {
                continue;
            }
            let message = if self.place.is_empty() {
                format!("unknown top-level key `{name}`")
            } else {
                format!("unknown key `{name}` in {}", self.place)
            };
            let hint = match closest(name, allowed.iter().copied()) {
                Some(suggestion) => format!("did you mean `{suggestion}`?"),
                None => format!(
                    "the keys allowed here are {}",
                    quoted_list(allowed.iter().copied())
                ),
            };
            return Err(Problem::new(key.span(), message).hint(hint));
        }
        Ok(())
    }

    pub(super) fn missing(&self, key: &str, example: &str) -> Problem {
        let owner = if self.place.is_empty() {
            "the configuration"
        } else {
            &self.place
        };
        Problem::new(self.span.clone(), format!("{owner} is missing `{key}`"))
            .hint(format!("add `{key} = {example}`"))
    }

    pub(super) fn wrong_type(&self, key: &str, value: &Value<'_>, expected: &str) -> Problem {
        Problem::new(
            value.span(),
            format!(
                "{} must be {expected}, not {}",
                self.what(key),
                article(value.get_ref().type_str())
            ),
        )
    }

    /// "quote it" for a scalar written where a string belongs.
    pub(super) fn quote_hint(&self, key: &str, value: &Value<'_>) -> Option<String> {
        match value.get_ref() {
            DeValue::Integer(_)
            | DeValue::Float(_)
            | DeValue::Boolean(_)
            | DeValue::Datetime(_) => {
                let raw = &self.text[value.span()];
                Some(format!("quote it: `{key} = \"{raw}\"`"))
            }
            _ => None,
        }
    }

    pub(super) fn table(
        &self,
        key: &str,
        place: String,
    ) -> Result<Option<Section<'a, 'i>>, Problem> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        match value.get_ref() {
            DeValue::Table(table) => Ok(Some(Section {
                text: self.text,
                table,
                span: value.span(),
                place,
            })),
            _ => Err(self.wrong_type(key, value, "a table").hint(format!(
                "write `{place}` on its own line, followed by its keys"
            ))),
        }
    }

    pub(super) fn string(&self, key: &str) -> Result<Option<Text>, Problem> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        match value.get_ref() {
            DeValue::String(s) => Ok(Some(Spanned::new(value.span(), s.to_string()))),
            _ => Err(self
                .wrong_type(key, value, "a string")
                .maybe_hint(self.quote_hint(key, value))),
        }
    }

    pub(super) fn boolean(&self, key: &str) -> Result<Option<bool>, Problem> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        match value.get_ref() {
            DeValue::Boolean(b) => Ok(Some(*b)),
            DeValue::String(s) if matches!(s.as_ref(), "true" | "false") => Err(self
                .wrong_type(key, value, "true or false")
                .hint(format!("remove the quotes: `{key} = {s}`"))),
            _ => Err(self
                .wrong_type(key, value, "true or false")
                .hint(format!("write `{key} = true` or `{key} = false`"))),
        }
    }

    pub(super) fn required_string(&self, key: &str, example: &str) -> Result<Text, Problem> {
        self.string(key)?.ok_or_else(|| self.missing(key, example))
    }

    /// A string following `rule`.
    pub(super) fn name(&self, key: &str, rule: NameRule) -> Result<Option<Text>, Problem> {
        let Some(name) = self.string(key)? else {
            return Ok(None);
        };
        if rule.allows(name.get_ref()) {
            Ok(Some(name))
        } else {
            Err(invalid_name(&name, &self.what(key), rule))
        }
    }

    pub(super) fn required_name(
        &self,
        key: &str,
        rule: NameRule,
        example: &str,
    ) -> Result<Text, Problem> {
        self.name(key, rule)?
            .ok_or_else(|| self.missing(key, example))
    }

    /// A non-empty path string.
    pub(super) fn path(&self, key: &str) -> Result<Option<Text>, Problem> {
        let Some(path) = self.string(key)? else {
            return Ok(None);
        };
        if path.get_ref().trim().is_empty() {
            return Err(
                Problem::new(path.span(), format!("{} is empty", self.what(key))).hint(format!(
                    "give a file path, or remove `{key}` to use the default"
                )),
            );
        }
        Ok(Some(path))
    }

    /// One of `choices`, with a suggestion for a typo.
    pub(super) fn choice(
        &self,
        key: &str,
        choices: &[&'static str],
    ) -> Result<Option<&'static str>, Problem> {
        let choices_hint = || format!("use one of {}", quoted_list(choices.iter().copied()));
        let Some(value) = self.string(key).map_err(|p| p.hint(choices_hint()))? else {
            return Ok(None);
        };
        if let Some(choice) = choices.iter().find(|c| **c == value.get_ref()) {
            return Ok(Some(choice));
        }
        let hint = match closest(value.get_ref(), choices.iter().copied()) {
            Some(suggestion) => format!("did you mean `{suggestion}`?"),
            None => choices_hint(),
        };
        Err(Problem::new(
            value.span(),
            format!(
                "{} must be one of {}, not `{}`",
                self.what(key),
                quoted_list(choices.iter().copied()),
                value.get_ref()
            ),
        )
        .hint(hint))
    }

    pub(super) fn string_list(&self, key: &str) -> Result<Option<Vec<Text>>, Problem> {
        Ok(self.spanned_string_list(key)?.map(Spanned::into_inner))
    }

    pub(super) fn required_string_list(
        &self,
        key: &str,
        example: &str,
    ) -> Result<Spanned<Vec<Text>>, Problem> {
        self.spanned_string_list(key)?
            .ok_or_else(|| self.missing(key, example))
    }

    pub(super) fn spanned_string_list(
        &self,
        key: &str,
    ) -> Result<Option<Spanned<Vec<Text>>>, Problem> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let DeValue::Array(items) = value.get_ref() else {
            let hint = match value.get_ref() {
                // A command written as one string is a list of its words, not one program.
                DeValue::String(s) if key == "command" && s.contains(' ') => Some(format!(
                    "write each argument as its own string: `{key} = [{}]`",
                    s.split_whitespace()
                        .map(|w| format!("\"{w}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                DeValue::String(s) => Some(format!("write a list: `{key} = [\"{s}\"]`")),
                _ => None,
            };
            return Err(self
                .wrong_type(key, value, "a list of strings")
                .maybe_hint(hint));
        };
        let items = items
            .iter()
            .map(|item| match item.get_ref() {
                DeValue::String(s) => Ok(Spanned::new(item.span(), s.to_string())),
                other => {
                    let problem = Problem::new(
                        item.span(),
                        format!(
                            "items of {} must be strings, not {}",
                            self.what(key),
                            article(other.type_str())
                        ),
                    );
                    Err(match other {
                        DeValue::Integer(_) | DeValue::Float(_) | DeValue::Boolean(_) => {
                            problem.hint(format!("quote it: `\"{}\"`", &self.text[item.span()]))
                        }
                        _ => problem.hint(format!("write `{key} = [\"a\", \"b\"]`")),
                    })
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Spanned::new(value.span(), items)))
    }

    /// A string or a list of strings; the span is the whole value's.
    pub(super) fn string_or_list(&self, key: &str) -> Result<Option<(Span, Vec<Text>)>, Problem> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        if let DeValue::String(s) = value.get_ref() {
            return Ok(Some((
                value.span(),
                vec![Spanned::new(value.span(), s.to_string())],
            )));
        }
        let list = self
            .spanned_string_list(key)
            .map_err(|p| Problem {
                message: p.message.replace(
                    "must be a list of strings",
                    "must be a string or a list of strings",
                ),
                ..p
            })?
            .unwrap_or_else(|| Spanned::new(value.span(), Vec::new()));
        Ok(Some((list.span(), list.into_inner())))
    }

    /// Every value a string; keys in the order written.
    pub(super) fn string_map(&self) -> Result<Vec<(Text, Text)>, Problem> {
        self.entries()
            .into_iter()
            .map(|(key, value)| {
                let name = key.get_ref().as_ref();
                match value.get_ref() {
                    DeValue::String(s) => Ok((
                        Spanned::new(key.span(), name.to_owned()),
                        Spanned::new(value.span(), s.to_string()),
                    )),
                    DeValue::Table(_) | DeValue::Array(_) => Err(self
                        .wrong_type(name, value, "a string")
                        .hint("settings are flat `key = \"value\"` strings")),
                    _ => Err(self
                        .wrong_type(name, value, "a string")
                        .maybe_hint(self.quote_hint(name, value))),
                }
            })
            .collect()
    }

    pub(super) fn duration(&self, key: &str) -> Result<Option<Spanned<Duration>>, Problem> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        match value.get_ref() {
            DeValue::String(s) => parse_duration(s)
                .map(|d| Some(Spanned::new(value.span(), d)))
                .map_err(|e| {
                    Problem::new(value.span(), format!("{}: {e}", self.what(key))).hint(e.hint())
                }),
            DeValue::Integer(n) => Err(Problem::new(
                value.span(),
                format!(
                    "{} must be a duration with a unit, not a bare number",
                    self.what(key)
                ),
            )
            .hint(format!("write `{key} = \"{}s\"`", n.as_str()))),
            _ => Err(self
                .wrong_type(key, value, "a duration like `30s`")
                .hint(format!("write `{key} = \"30s\"`"))),
        }
    }

    pub(super) fn positive_duration_spanned(
        &self,
        key: &str,
    ) -> Result<Option<Spanned<Duration>>, Problem> {
        match self.duration(key)? {
            Some(d) if d.get_ref().is_zero() => Err(Problem::new(
                d.span(),
                format!("{} must be longer than `0s`", self.what(key)),
            )
            .hint(format!("remove `{key}` to use the default"))),
            other => Ok(other),
        }
    }

    pub(super) fn positive_duration(&self, key: &str) -> Result<Option<Duration>, Problem> {
        Ok(self
            .positive_duration_spanned(key)?
            .map(Spanned::into_inner))
    }

    /// A whole number within `min..=max`.
    pub(super) fn count(
        &self,
        key: &str,
        min: u32,
        max: u32,
    ) -> Result<Option<Spanned<u32>>, Problem> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let number = match value.get_ref() {
            DeValue::Integer(n) => i64::from_str_radix(n.as_str(), n.radix()).ok(),
            DeValue::String(s) => {
                return Err(self
                    .wrong_type(key, value, "a whole number")
                    .hint(format!("remove the quotes: `{key} = {s}`")));
            }
            _ => {
                return Err(self
                    .wrong_type(key, value, "a whole number")
                    .hint(format!("write a whole number from {min} to {max}")));
            }
        };
        match number.and_then(|n| u32::try_from(n).ok()) {
            Some(n) if (min..=max).contains(&n) => Ok(Some(Spanned::new(value.span(), n))),
            _ => Err(Problem::new(
                value.span(),
                format!(
                    "{} must be from {min} to {max}, not {}",
                    self.what(key),
                    &self.text[value.span()]
                ),
            )
            .hint(format!("write a whole number from {min} to {max}"))),
        }
    }
}

/// `a string`, `an integer`.
pub(super) fn article(type_name: &str) -> String {
    let article = if type_name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    let type_name = if type_name == "array" {
        "list"
    } else {
        type_name
    };
    let article = if type_name == "list" { "a" } else { article };
    format!("{article} {type_name}")
}

/// `what` (already naming the value) is not a valid name under `rule`.
pub(super) fn invalid_name(name: &Text, what: &str, rule: NameRule) -> Problem {
    let value = name.get_ref();
    let message = if value.is_empty() {
        format!("{what} is empty")
    } else if what.contains(&format!("`{value}`")) {
        format!("{what} is not a valid name")
    } else {
        format!("{what} is not a valid name: `{value}`")
    };
    let fixed = match rule {
        NameRule::Secret => value.to_ascii_uppercase().replace(['-', '.', ' '], "_"),
        NameRule::EnvVar => value.replace(['-', '.', ' '], "_"),
        _ => value.to_ascii_lowercase().replace(['_', ' '], "-"),
    };
    let hint = if !value.is_empty() && fixed != *value && rule.allows(&fixed) {
        format!("use {}, e.g. `{fixed}`", rule.explain())
    } else {
        format!("use {}", rule.explain())
    };
    Problem::new(name.span(), message).hint(hint)
}
