//! The process exit codes, the same meaning in every command (README.md, "Exit codes").
//!
//! Commands decide an [`Outcome`]; only `main` turns it into a process exit code.

use std::process::ExitCode;

/// What a command ended with, as the caller (CI, a script, a person) needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done: the deploy finished or stopped cleanly awaiting approval; a plugin's verdict passed.
    Done,
    /// Failed: the deploy failed (rolled back where due); a plugin's verdict failed; incompatible.
    Failed,
    /// Usage or configuration error, or a plugin that cannot be loaded; nothing was changed.
    Usage,
    /// Blocked before any change: a pre-check failed or could not decide; a verdict of unknown.
    Blocked,
    /// The deploy lock was not acquired in time.
    LockTimeout,
    /// Plugin error: trap, limit breached, or the plugin returned an error.
    PluginError,
    /// A rollback failed or was refused: a human must act.
    RollbackFailed,
    /// `tagship lock run`: the command run under the lock ended with this code.
    Command(u8),
}

impl Outcome {
    /// The numeric exit code of this outcome.
    pub fn code(self) -> u8 {
        match self {
            Outcome::Done => 0,
            Outcome::Failed => 1,
            Outcome::Usage => 2,
            Outcome::Blocked => 3,
            Outcome::LockTimeout => 4,
            Outcome::PluginError => 5,
            Outcome::RollbackFailed => 6,
            Outcome::Command(code) => code,
        }
    }
}

impl From<Outcome> for ExitCode {
    fn from(outcome: Outcome) -> Self {
        ExitCode::from(outcome.code())
    }
}

/// The exit-code table as printed at the end of `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  done: deploy finished, or stopped awaiting approval; verdict passed; compatible
  1  failed: deploy failed (rolled back where due); verdict failed; incompatible
  2  usage or configuration error, or a plugin that cannot be loaded; nothing changed
  3  blocked before any change: a pre-check failed or could not decide; verdict unknown
  4  the deploy lock was not acquired in time
  5  plugin error: trap, limit breached, or the plugin returned an error
  6  a rollback failed or was refused: a human must act";
