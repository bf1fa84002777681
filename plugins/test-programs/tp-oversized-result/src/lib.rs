//! Test guest `tp-oversized-result`: a health check whose reason is 4 MiB long.
//!
//! Contract: reads no config; returns `Ok` healthy with a reason of exactly 4 MiB of `x`
//! (4 * 1024 * 1024 bytes), over the host's 1 MiB result limit: the host must reject it.

use tagship_plugin::health::{DeployContext, Guest, HealthReport};

struct OversizedResult;

impl Guest for OversizedResult {
    fn check(_ctx: DeployContext) -> Result<HealthReport, String> {
        Ok(HealthReport::healthy("x".repeat(4 << 20)))
    }
}

tagship_plugin::export_health_check!(OversizedResult);
