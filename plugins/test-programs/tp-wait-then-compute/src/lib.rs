//! Test guest `tp-wait-then-compute`: waits, then computes, to check that the wall limit stops
//! a guest wherever it is and that waiting is not counted as CPU time.
//!
//! Contract: config `url` (optional): `GET` it first (a slow granted server is the wait);
//! `sleep_ms` (default 0): then `std::thread::sleep` that long (a WASI `poll` on a clock);
//! `compute_ms` (default 0): then spin on the monotonic clock that long. `Ok` healthy, reason
//! `waited and computed`, `value` the milliseconds spent in all.

use std::time::{Duration, Instant};

use tagship_plugin::health::{DeployContext, Guest, HealthReport};
use tagship_plugin::http::Request;

struct WaitThenCompute;

fn millis(key: &str) -> u64 {
    tagship_plugin::config(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl Guest for WaitThenCompute {
    fn check(_ctx: DeployContext) -> Result<HealthReport, String> {
        let start = Instant::now();
        if let Some(url) = tagship_plugin::config("url") {
            Request::get(url).send().map_err(|e| e.describe())?;
        }
        std::thread::sleep(Duration::from_millis(millis("sleep_ms")));
        let compute = Instant::now();
        let mut spins = 0u64;
        while compute.elapsed() < Duration::from_millis(millis("compute_ms")) {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
        #[allow(clippy::cast_precision_loss, reason = "milliseconds of a test")]
        let spent = start.elapsed().as_millis() as f64;
        Ok(HealthReport::healthy("waited and computed").with_value(spent))
    }
}

tagship_plugin::export_health_check!(WaitThenCompute);
