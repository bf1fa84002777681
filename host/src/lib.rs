//! tagship: a self-service deployment runner.
//!
//! The library holds everything the `tagship` binary does; `main.rs` only parses arguments and
//! maps the outcome to an exit code. Data flows one way: [`cli`] → [`plugins`] (and, as they land,
//! configuration, lifecycle, cluster and report modules). Adapters never call back into the CLI.

// Terminal output has three doors: terminal.rs (every line and all data), progress.rs's live line
// (indicatif) and tracing's subscriber (cli.rs). The print macros are denied everywhere else;
// tests/architecture.rs keeps the doors where they are.
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod cli;
pub mod cluster;
pub mod config;
pub mod context;
pub mod exit;
pub mod gitlab;
pub mod holder;
pub mod journal;
pub mod lifecycle;
pub mod plugins;
pub mod progress;
pub mod registry;
pub mod terminal;
pub mod verdict;
pub mod version;
pub mod wiring;
