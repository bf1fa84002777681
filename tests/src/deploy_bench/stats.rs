//! Statistics of the measurements: spreads (median, extremes, nearest-rank percentiles) and
//! the unit conversions the tables use.

use std::time::{Duration, Instant};

use super::process::Usage;

/// Median, minimum and maximum, and the 10th/90th percentiles (nearest rank).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The median (mean of the middle two for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// 10th percentile, nearest rank.
    pub p10: f64,
    /// 90th percentile, nearest rank.
    pub p90: f64,
    /// How many values.
    pub n: usize,
}

impl Spread {
    /// The spread of `values`; `None` when empty.
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            f64::midpoint(v[n / 2 - 1], v[n / 2])
        };
        let rank = |p: f64| {
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss,
                reason = "a rank of a short list"
            )]
            let r = ((p * n as f64).ceil() as usize).clamp(1, n);
            v[r - 1]
        };
        Some(Self {
            median,
            min: v[0],
            max: v[n - 1],
            p10: rank(0.1),
            p90: rank(0.9),
            n,
        })
    }

    /// `median [min–max]`, or with p10/p90 as well when there are ten values or more, each
    /// formatted by `f`.
    pub fn show(&self, f: impl Fn(f64) -> String) -> String {
        if self.n >= 10 {
            format!(
                "{} (p10 {}, p90 {}; min {}, max {})",
                f(self.median),
                f(self.p10),
                f(self.p90),
                f(self.min),
                f(self.max)
            )
        } else {
            format!("{} [{}–{}]", f(self.median), f(self.min), f(self.max))
        }
    }
}

pub(super) fn median(values: &[f64]) -> f64 {
    Spread::of(values).map_or(f64::NAN, |s| s.median)
}
pub(super) fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
#[allow(clippy::cast_precision_loss, reason = "KiB of a process fit an f64")]
pub(crate) fn megabytes(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1_000_000.0
}
/// `a - b` in milliseconds, negative when `a` came first.
pub(super) fn signed_ms(a: Instant, b: Instant) -> f64 {
    if a >= b {
        millis(a - b)
    } else {
        -millis(b - a)
    }
}

pub(super) fn walls(u: &[Usage]) -> Vec<f64> {
    u.iter().map(|u| millis(u.wall)).collect()
}
pub(super) fn cpus(u: &[Usage]) -> Vec<f64> {
    u.iter().map(|u| millis(u.cpu)).collect()
}
pub(super) fn rss(u: &[Usage]) -> Vec<f64> {
    u.iter().map(|u| megabytes(u.rss_kib)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spread_has_the_median_of_an_even_count_between_the_middle_two() {
        let s = Spread::of(&[4.0, 1.0, 3.0, 2.0]).expect("values");
        assert!((s.median - 2.5).abs() < 1e-9);
        assert!((s.min - 1.0).abs() < 1e-9 && (s.max - 4.0).abs() < 1e-9);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        let s = Spread::of(&v).expect("values");
        assert!((s.p10 - 1.0).abs() < 1e-9 && (s.p90 - 9.0).abs() < 1e-9);
    }
}
