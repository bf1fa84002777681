//! The running environment (its `env` file's variables), `kubectl` against it, and unique names.

use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};

use tagship_tests::fixtures::kubectl::{Kubectl, stdout_if_success};

/// A variable of the environment's `env` file; panics saying how to get it when unset.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "run tests/cluster/up and export the variables of its env file \
             (`set -a; . <state dir>/env; set +a`): {name} is unset"
        )
    })
}

/// The contexts of the running environment (`TAGSHIP_CONTEXTS`), first is current.
pub fn contexts() -> Vec<String> {
    env("TAGSHIP_CONTEXTS")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// `kubectl` against the environment's kubeconfig, in its current context (`local-1`).
pub fn kubectl(args: &[&str]) -> Output {
    Kubectl::new(env("TAGSHIP_KUBECONFIG"))
        .output(args)
        .expect("run kubectl")
}

/// `kubectl` in kubeconfig context `context` (`local-1`, `local-2`, …).
pub fn kubectl_in(context: &str, args: &[&str]) -> Output {
    Kubectl::new(env("TAGSHIP_KUBECONFIG"))
        .context(context)
        .output(args)
        .expect("run kubectl")
}

/// [`kubectl`] that must succeed; its stdout.
pub fn kubectl_ok(args: &[&str]) -> String {
    expect_ok(args, &kubectl(args))
}

/// [`kubectl_in`] that must succeed; its stdout.
pub fn kubectl_ok_in(context: &str, args: &[&str]) -> String {
    expect_ok(args, &kubectl_in(context, args))
}

fn expect_ok(args: &[&str], out: &Output) -> String {
    stdout_if_success(out).unwrap_or_else(|stderr| panic!("kubectl {args:?}: {stderr}"))
}

/// A name no other test (or earlier run) uses: `prefix` plus a process- and call-unique number.
/// Keep `prefix` short, lowercase alphanumeric: namespaces derived from it must stay valid.
///
/// Not `tagship_tests::harness::unique_word` (six random characters): host's tests name their
/// namespaces `PREFIX-STAGE` and want the prefix short and all digits after the test's word.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    let n = std::process::id()
        .wrapping_mul(7919)
        .wrapping_add(nanos / 1000)
        .wrapping_add(
            COUNTER
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(104_729),
        )
        % 1_000_000;
    format!("{prefix}{n}")
}
