//! Test guest `tp-memory-bomb`: a health check that allocates 1 MiB chunks, touching and keeping
//! every one, until the allocation fails.
//!
//! Contract: reads no config and never returns normally; the host's memory limit (64 MiB by
//! default) must stop it (a failed `memory.grow` traps or aborts) and report a failed check.

use std::hint::black_box;

use tagship_plugin::health::{DeployContext, Guest, HealthReport};

struct MemoryBomb;

const CHUNK: usize = 1 << 20;

impl Guest for MemoryBomb {
    fn check(_ctx: DeployContext) -> Result<HealthReport, String> {
        let mut kept: Vec<Vec<u8>> = Vec::new();
        loop {
            // Non-zero fill so every page is written, not just reserved.
            kept.push(vec![0xA5; CHUNK]);
            black_box(&kept);
            if kept.len() == usize::MAX {
                break;
            }
        }
        Ok(HealthReport::healthy(format!(
            "allocated {} MiB",
            black_box(kept.len())
        )))
    }
}

tagship_plugin::export_health_check!(MemoryBomb);
