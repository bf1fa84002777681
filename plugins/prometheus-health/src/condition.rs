//! The pass condition of a query result: a comparison (`== 1`, `>= 0.99`, `< 5`, `!= 0`) or an
//! inclusive range with either end optional (`0.99..`, `..0.05`, `0.9..1.1`). Pure.

use std::fmt;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `>=`
    Ge,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `<`
    Lt,
}

/// When a value passes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Condition {
    /// `value OP limit`.
    Compare {
        /// The operator.
        op: Op,
        /// The right-hand side.
        limit: f64,
    },
    /// `min <= value <= max`; a missing end is unbounded.
    Range {
        /// Lower bound, inclusive.
        min: Option<f64>,
        /// Upper bound, inclusive.
        max: Option<f64>,
    },
}

impl Condition {
    /// Parses a pass condition; a bare number means `== number`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bad = |why: String| {
            format!(
                "pass condition `{text}` is not understood ({why}); use e.g. `== 1`, `>= 0.99`, \
                 `0.99..`, `..0.05` or `0.9..1.1`"
            )
        };
        for (prefix, op) in [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            (">=", Op::Ge),
            ("<=", Op::Le),
            (">", Op::Gt),
            ("<", Op::Lt),
        ] {
            if let Some(rest) = text.strip_prefix(prefix) {
                let limit = number(rest).map_err(bad)?;
                return Ok(Self::Compare { op, limit });
            }
        }
        if let Some((min, max)) = text.split_once("..") {
            let end = |s: &str| -> Result<Option<f64>, String> {
                if s.trim().is_empty() {
                    Ok(None)
                } else {
                    number(s).map(Some)
                }
            };
            let (min, max) = (end(min).map_err(bad)?, end(max).map_err(bad)?);
            return match (min, max) {
                (None, None) => Err(bad("a range needs at least one end".into())),
                (Some(lo), Some(hi)) if lo > hi => {
                    Err(bad(format!("the range is empty: {lo} > {hi}")))
                }
                _ => Ok(Self::Range { min, max }),
            };
        }
        let limit = number(text).map_err(bad)?;
        Ok(Self::Compare { op: Op::Eq, limit })
    }

    /// True when `value` satisfies the condition. NaN satisfies nothing.
    #[must_use]
    pub fn passes(&self, value: f64) -> bool {
        if value.is_nan() {
            return false;
        }
        match *self {
            Self::Compare { op, limit } => match op {
                // Exact on purpose: `== 1` is meant for `up`-style 0/1 results.
                #[allow(clippy::float_cmp, reason = "the condition asks for exact equality")]
                Op::Eq => value == limit,
                #[allow(clippy::float_cmp, reason = "the condition asks for exact inequality")]
                Op::Ne => value != limit,
                Op::Ge => value >= limit,
                Op::Le => value <= limit,
                Op::Gt => value > limit,
                Op::Lt => value < limit,
            },
            Self::Range { min, max } => {
                min.is_none_or(|lo| value >= lo) && max.is_none_or(|hi| value <= hi)
            }
        }
    }

    /// How far inside the passing region `value` is: the larger, the safer. A failing value's
    /// margin is minus its distance to the passing region (or 0 at an excluded boundary), so
    /// the smallest margin is the worst value.
    #[must_use]
    pub fn margin(&self, value: f64) -> f64 {
        match *self {
            Self::Compare { op, limit } => match op {
                Op::Eq => -(value - limit).abs(),
                Op::Ne => (value - limit).abs(),
                Op::Ge | Op::Gt => value - limit,
                Op::Le | Op::Lt => limit - value,
            },
            Self::Range { min, max } => {
                let above_min = min.map_or(f64::INFINITY, |lo| value - lo);
                let below_max = max.map_or(f64::INFINITY, |hi| hi - value);
                above_min.min(below_max)
            }
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Compare { op, limit } => {
                let op = match op {
                    Op::Eq => "==",
                    Op::Ne => "!=",
                    Op::Ge => ">=",
                    Op::Le => "<=",
                    Op::Gt => ">",
                    Op::Lt => "<",
                };
                write!(f, "{op} {limit}")
            }
            Self::Range { min, max } => {
                if let Some(lo) = min {
                    write!(f, "{lo}")?;
                }
                f.write_str("..")?;
                if let Some(hi) = max {
                    write!(f, "{hi}")?;
                }
                Ok(())
            }
        }
    }
}

fn number(text: &str) -> Result<f64, String> {
    let text = text.trim();
    match text.parse::<f64>() {
        Ok(value) if !value.is_nan() => Ok(value),
        _ => Err(format!("`{text}` is not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(text: &str) -> Condition {
        Condition::parse(text).unwrap()
    }

    #[test]
    fn comparisons_parse_with_or_without_spaces() {
        assert_eq!(
            c("== 1"),
            Condition::Compare {
                op: Op::Eq,
                limit: 1.0
            }
        );
        assert_eq!(
            c(">=0.99"),
            Condition::Compare {
                op: Op::Ge,
                limit: 0.99
            }
        );
        assert_eq!(
            c(" < 5 "),
            Condition::Compare {
                op: Op::Lt,
                limit: 5.0
            }
        );
        assert_eq!(
            c("!= 0"),
            Condition::Compare {
                op: Op::Ne,
                limit: 0.0
            }
        );
        assert_eq!(
            c("1"),
            Condition::Compare {
                op: Op::Eq,
                limit: 1.0
            }
        );
    }

    #[test]
    fn ranges_parse_with_either_end_optional() {
        assert_eq!(
            c("0.99.."),
            Condition::Range {
                min: Some(0.99),
                max: None
            }
        );
        assert_eq!(
            c("..0.05"),
            Condition::Range {
                min: None,
                max: Some(0.05)
            }
        );
        assert_eq!(
            c("0.9..1.1"),
            Condition::Range {
                min: Some(0.9),
                max: Some(1.1)
            }
        );
    }

    #[test]
    fn nonsense_is_rejected_with_examples() {
        for bad in ["", "..", "== x", "1..0", "~ 1", "== NaN"] {
            let error = Condition::parse(bad).unwrap_err();
            assert!(error.contains("use e.g. `== 1`"), "{bad}: {error}");
        }
    }

    #[test]
    fn range_ends_are_inclusive() {
        let range = c("0.99..1");
        assert!(range.passes(0.99));
        assert!(range.passes(1.0));
        assert!(!range.passes(0.989));
        assert!(!range.passes(1.01));
    }

    #[test]
    fn strict_comparisons_exclude_the_limit() {
        assert!(!c("> 1").passes(1.0));
        assert!(c(">= 1").passes(1.0));
        assert!(c("< 1").passes(0.5));
    }

    #[test]
    fn nan_passes_nothing() {
        for cond in ["== 1", "!= 1", "0..", "..1", "> -1"] {
            assert!(!c(cond).passes(f64::NAN), "{cond}");
        }
    }

    #[test]
    fn the_margin_ranks_further_violations_lower() {
        let at_least = c("0.99..");
        assert!(at_least.margin(0.5) < at_least.margin(0.9));
        assert!(at_least.margin(0.9) < 0.0);
        assert!(at_least.margin(1.0) > 0.0);
        let equal = c("== 1");
        assert!(equal.margin(0.0) < 0.0);
        assert!((equal.margin(1.0)).abs() < f64::EPSILON);
    }

    #[test]
    fn display_reads_like_the_input() {
        assert_eq!(c("==1").to_string(), "== 1");
        assert_eq!(c("0.99..").to_string(), "0.99..");
        assert_eq!(c("..0.05").to_string(), "..0.05");
    }
}
