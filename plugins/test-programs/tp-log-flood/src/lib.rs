//! Test guest `tp-log-flood`: a health check that logs 100000 lines, then passes.
//!
//! Contract: reads no config; logs `tp-log-flood line N` at info level for N in 0..100000, then
//! returns `Ok` healthy with reason `logged 100000 lines`. The host must rate-limit the lines
//! and still return the result.

use tagship_plugin::health::{DeployContext, Guest, HealthReport};

struct LogFlood;

const LINES: u32 = 100_000;

impl Guest for LogFlood {
    fn check(_ctx: DeployContext) -> Result<HealthReport, String> {
        for n in 0..LINES {
            tagship_plugin::info!("tp-log-flood line {n}");
        }
        Ok(HealthReport::healthy(format!("logged {LINES} lines")))
    }
}

tagship_plugin::export_health_check!(LogFlood);
