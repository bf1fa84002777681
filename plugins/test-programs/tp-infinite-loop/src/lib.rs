//! Test guest `tp-infinite-loop`: a health check that spins forever without calling the host.
//!
//! Contract: reads no config and never returns; the host must stop it with its CPU deadline
//! (epoch interruption) and report a failed check.

use std::hint::black_box;

use tagship_plugin::health::{DeployContext, Guest, HealthReport};

struct InfiniteLoop;

impl Guest for InfiniteLoop {
    fn check(_ctx: DeployContext) -> Result<HealthReport, String> {
        let mut counter: u64 = 0;
        // `black_box` keeps the optimizer from proving anything about the loop.
        loop {
            counter = black_box(counter.wrapping_add(1));
        }
    }
}

tagship_plugin::export_health_check!(InfiniteLoop);
