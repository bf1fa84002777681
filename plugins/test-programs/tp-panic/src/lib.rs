//! Test guest `tp-panic`: a health check that panics.
//!
//! Contract: reads no config; panics with the message `tp-panic: deliberate panic`. Plugins build
//! with `panic = "abort"`, so the instance traps; the host must report a failed check.

use tagship_plugin::health::{DeployContext, Guest, HealthReport};

struct Panic;

impl Guest for Panic {
    fn check(_ctx: DeployContext) -> Result<HealthReport, String> {
        panic!("tp-panic: deliberate panic");
    }
}

tagship_plugin::export_health_check!(Panic);
