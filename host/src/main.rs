//! The `tagship` binary: parse arguments, run the command, map the outcome to an exit code.

#![warn(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = tagship::cli::Cli::parse();
    tagship::cli::init_logging(&cli);
    // One thread: tagship's work is one task, so worker threads only moved kube's and hyper's
    // connection tasks away from it, and every response then crossed threads (a futex wake and
    // a context switch per event of a rollout watch, per plugin HTTP call).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tagship::terminal::stderr_line(&format!("error: cannot start the async runtime: {e}"));
            return tagship::exit::Outcome::Usage.into();
        }
    };
    let outcome = runtime.block_on(tagship::cli::run(cli));
    outcome.into()
}
