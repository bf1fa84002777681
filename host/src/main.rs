//! The `tagship` binary: parse arguments, run the command, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = tagship::cli::Cli::parse();
    tagship::cli::init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return tagship::exit::Outcome::Usage.into();
        }
    };
    let outcome = runtime.block_on(tagship::cli::run(cli));
    outcome.into()
}
