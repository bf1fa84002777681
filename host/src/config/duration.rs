//! Durations as users write them: `500ms`, `30s`, `2m`, `1h`, `1h30m`.
//!
//! Pure. Also usable as a clap `value_parser` for flags such as `--ttl` and `--wait`.

use std::fmt;
use std::time::Duration;

/// Why a duration could not be read. [`DurationError::hint`] suggests a fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing was written.
    #[error("the duration is empty")]
    Empty,
    /// A bare number such as `30`.
    #[error("duration `{text}` has no unit")]
    NoUnit {
        /// The text as given.
        text: String,
    },
    /// A fraction such as `1.5h`.
    #[error("duration `{text}` has a fraction; durations are whole numbers of units")]
    Fraction {
        /// The text as given.
        text: String,
    },
    /// An unknown unit such as `5sec` or `1d`.
    #[error("duration `{text}` has the unknown unit `{unit}`")]
    UnknownUnit {
        /// The text as given.
        text: String,
        /// The unit that was not understood.
        unit: String,
    },
    /// Units out of order or repeated, such as `30m1h` or `1m1m`.
    #[error("duration `{text}` must list its units from largest to smallest, each once")]
    UnitOrder {
        /// The text as given.
        text: String,
    },
    /// Anything else that is not a number followed by a unit.
    #[error("`{text}` is not a duration")]
    Malformed {
        /// The text as given.
        text: String,
    },
    /// More than this program can count.
    #[error("duration `{text}` is too long")]
    Overflow {
        /// The text as given.
        text: String,
    },
}

impl DurationError {
    /// How to write it instead.
    pub fn hint(&self) -> String {
        match self {
            DurationError::NoUnit { text } => format!("write `{text}s`"),
            DurationError::Fraction { .. } => {
                "combine units instead, e.g. `1h30m` or `1500ms`".to_owned()
            }
            _ => "write a number and a unit (`ms`, `s`, `m`, `h`), e.g. `500ms`, `30s`, `2m`, `1h30m`"
                .to_owned(),
        }
    }
}

const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

/// Parses `500ms`, `30s`, `2m`, `1h`, or a combination from largest to smallest unit
/// (`1h30m`, `2m30s`). Bare numbers, fractions and other units are refused.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let owned = || text.to_owned();
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DurationError::NoUnit { text: owned() });
    }
    if text.contains('.') {
        return Err(DurationError::Fraction { text: owned() });
    }
    let mut rest = text;
    let mut total: u64 = 0;
    // Index into UNITS of the last unit seen: later units must be strictly smaller.
    let mut last_unit: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(DurationError::Malformed { text: owned() });
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| DurationError::Overflow { text: owned() })?;
        rest = &rest[digits..];
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..letters];
        rest = &rest[letters..];
        let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(if unit.is_empty() {
                DurationError::Malformed { text: owned() }
            } else {
                DurationError::UnknownUnit {
                    text: owned(),
                    unit: unit.to_owned(),
                }
            });
        };
        if last_unit.is_some_and(|last| index <= last) {
            return Err(DurationError::UnitOrder { text: owned() });
        }
        last_unit = Some(index);
        total = number
            .checked_mul(UNITS[index].1)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| DurationError::Overflow { text: owned() })?;
    }
    Ok(Duration::from_millis(total))
}

/// Writes a duration the way [`parse_duration`] reads it: `1h30m`, `2m`, `500ms`, `0s`.
/// Sub-millisecond parts are dropped.
pub fn format_duration(duration: Duration) -> String {
    DurationText(duration).to_string()
}

/// Displays a duration the way [`parse_duration`] reads it.
struct DurationText(Duration);

impl fmt::Display for DurationText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX);
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in UNITS {
            if ms >= size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_numbers_with_units_largest_first() {
        let cases = [
            ("500ms", 500),
            ("30s", 30_000),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("1h30m", 5_400_000),
            ("2m30s", 150_000),
            ("1h0m5s250ms", 3_605_250),
            ("0s", 0),
            ("90s", 90_000),
        ];
        for (text, ms) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
    }

    #[test]
    fn bad_durations_are_refused_with_a_hint() {
        let cases = [
            ("", "the duration is empty", "write a number"),
            ("30", "duration `30` has no unit", "write `30s`"),
            ("1.5h", "duration `1.5h` has a fraction", "`1h30m`"),
            (
                "5sec",
                "duration `5sec` has the unknown unit `sec`",
                "`ms`, `s`",
            ),
            ("1d", "duration `1d` has the unknown unit `d`", "`1h30m`"),
            (
                "30m1h",
                "duration `30m1h` must list its units",
                "write a number",
            ),
            (
                "1m1m",
                "duration `1m1m` must list its units",
                "write a number",
            ),
            ("m", "`m` is not a duration", "write a number"),
            ("-5s", "`-5s` is not a duration", "write a number"),
            ("5 s", "`5 s` is not a duration", "write a number"),
            (
                "30S",
                "duration `30S` has the unknown unit `S`",
                "write a number",
            ),
            (
                "99999999999999999999s",
                "duration `99999999999999999999s` is too long",
                "write a number",
            ),
        ];
        for (text, message, hint) in cases {
            let err = parse_duration(text).unwrap_err();
            assert!(err.to_string().starts_with(message), "{text}: {err}");
            assert!(err.hint().contains(hint), "{text}: {}", err.hint());
        }
    }

    #[test]
    fn formatted_durations_read_back_the_same() {
        let cases = [
            (0, "0s"),
            (500, "500ms"),
            (15_000, "15s"),
            (120_000, "2m"),
            (5_400_000, "1h30m"),
            (3_605_250, "1h5s250ms"),
        ];
        for (ms, text) in cases {
            let duration = Duration::from_millis(ms);
            assert_eq!(format_duration(duration), text);
            assert_eq!(parse_duration(text), Ok(duration));
        }
    }
}
