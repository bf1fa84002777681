//! Sandbox limits of one plugin, and the resource limiter that enforces its memory limit.

use std::time::Duration;

/// The limits one plugin call runs under.
///
/// Defaults (see [`Limits::default`]): 64 MiB linear memory, 5 s of guest CPU, 30 s wall clock
/// per call (covers time spent waiting on HTTP), 1 MiB result, 4 MiB per HTTP response body,
/// 10 s per HTTP request (5 s to connect), 5 redirects, 200 log lines at once then 20 per second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Maximum linear memory of the plugin, in bytes.
    pub memory_bytes: usize,
    /// Guest CPU time per call, enforced by epoch interruption.
    pub cpu: Duration,
    /// Wall-clock time per call, including time spent in host I/O.
    pub wall: Duration,
    /// Maximum size of a call's result (report texts or error message), in bytes.
    pub result_bytes: usize,
    /// Maximum size of one HTTP response body, in bytes.
    pub http_response_bytes: usize,
    /// Time for one HTTP request, connect to last byte.
    pub http_timeout: Duration,
    /// Time to connect for one HTTP request.
    pub http_connect_timeout: Duration,
    /// Redirects followed per request (each re-checked against the grants).
    pub http_redirects: u8,
    /// Log lines a plugin may write at once before rate-limiting starts.
    pub log_burst: u32,
    /// Log lines per second after the burst.
    pub log_per_second: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            cpu: Duration::from_secs(5),
            wall: Duration::from_secs(30),
            result_bytes: 1 << 20,
            http_response_bytes: 4 << 20,
            http_timeout: Duration::from_secs(10),
            http_connect_timeout: Duration::from_secs(5),
            http_redirects: 5,
            log_burst: 200,
            log_per_second: 20,
        }
    }
}

/// The largest memory limit an operator may give a plugin; the engine's pooling allocator
/// reserves slots of this size.
pub const MAX_MEMORY_BYTES: usize = 1 << 30;

/// Enforces [`Limits::memory_bytes`] and remembers a breach so the call can report it by name.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    limit: usize,
    /// The size the plugin asked for when it was refused.
    pub(crate) refused: Option<usize>,
}

impl MemoryLimiter {
    pub(crate) fn new(limit: usize) -> Self {
        MemoryLimiter {
            limit,
            refused: None,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.refused = Some(desired);
            // Trap rather than let `memory.grow` return -1: a Rust guest aborts on allocation
            // failure anyway, and a trap names the limit.
            wasmtime::bail!(
                "memory limit of {} bytes exceeded (asked for {desired})",
                self.limit
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; 100k entries is far beyond any honest plugin.
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        16
    }
}

/// A token bucket for log lines.
#[derive(Debug)]
pub(crate) struct LogBudget {
    tokens: f64,
    burst: f64,
    per_second: f64,
    last: std::time::Instant,
    /// Lines dropped since the last report.
    pub(crate) dropped: u64,
}

impl LogBudget {
    pub(crate) fn new(limits: &Limits) -> Self {
        LogBudget {
            tokens: f64::from(limits.log_burst),
            burst: f64::from(limits.log_burst),
            per_second: f64::from(limits.log_per_second),
            last: std::time::Instant::now(),
            dropped: 0,
        }
    }

    /// Takes one token; false (and counts a drop) when the budget is spent.
    pub(crate) fn take(&mut self, now: std::time::Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.dropped += 1;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn the_log_budget_allows_a_burst_then_refills_over_time() {
        let limits = Limits {
            log_burst: 3,
            log_per_second: 2,
            ..Limits::default()
        };
        let mut budget = LogBudget::new(&limits);
        let t0 = Instant::now();
        assert!(budget.take(t0) && budget.take(t0) && budget.take(t0));
        assert!(!budget.take(t0));
        assert_eq!(budget.dropped, 1);
        assert!(budget.take(t0 + Duration::from_millis(600)));
        assert!(!budget.take(t0 + Duration::from_millis(600)));
    }

    #[test]
    fn memory_growth_past_the_limit_is_refused_and_remembered() {
        use wasmtime::ResourceLimiter;
        let mut limiter = MemoryLimiter::new(1 << 20);
        assert!(limiter.memory_growing(0, 1 << 20, None).unwrap());
        assert!(limiter.memory_growing(1 << 20, 2 << 20, None).is_err());
        assert_eq!(limiter.refused, Some(2 << 20));
    }
}
