//! Test guest `tp-deep-recursion`: a health check that recurses without bound.
//!
//! Contract: reads no config and never returns normally; the stack overflows (wasm call stack
//! exhausted, or the shadow stack runs out of linear memory) and the host must report a failed
//! check.

use std::hint::black_box;

use tagship_plugin::health::{DeployContext, Guest, HealthReport};

struct DeepRecursion;

// Not a tail call: the result of the recursive call is used after it returns, and `black_box`
// hides the frame's buffer, so the optimizer can neither turn it into a loop nor drop it.
#[inline(never)]
fn descend(depth: u64) -> u64 {
    // Never true in practice (the stack is gone long before), but it gives the function a way
    // out, so the compiler cannot treat the recursion as unconditional.
    if depth == u64::MAX {
        return 0;
    }
    let frame = black_box([depth; 32]);
    let below = descend(black_box(depth + 1));
    below.wrapping_add(frame[usize::try_from(depth % 32).unwrap_or(0)])
}

impl Guest for DeepRecursion {
    fn check(_ctx: DeployContext) -> Result<HealthReport, String> {
        let depth = descend(0);
        Ok(HealthReport::healthy(format!("returned {depth}")))
    }
}

tagship_plugin::export_health_check!(DeepRecursion);
