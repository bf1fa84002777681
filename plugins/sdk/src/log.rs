//! Log lines into the runner's log, tagged with the plugin's name by the host.
//!
//! The host rate-limits lines and redacts the values of granted secrets. Use the functions, or
//! the `format!`-style macros [`info!`](crate::info), [`warn!`](crate::warn),
//! [`error!`](crate::error), [`debug!`](crate::debug) and [`trace!`](crate::trace).

use crate::bindings::tagship::plugin::host::{self, Level};

/// Logs `message` at trace level.
pub fn trace(message: &str) {
    host::log(Level::Trace, message);
}

/// Logs `message` at debug level.
pub fn debug(message: &str) {
    host::log(Level::Debug, message);
}

/// Logs `message` at info level.
pub fn info(message: &str) {
    host::log(Level::Info, message);
}

/// Logs `message` at warn level.
pub fn warn(message: &str) {
    host::log(Level::Warn, message);
}

/// Logs `message` at error level.
pub fn error(message: &str) {
    host::log(Level::Error, message);
}

/// Logs a `format!`-style message at trace level.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)*) => { $crate::log::trace(&::std::format!($($arg)*)) };
}

/// Logs a `format!`-style message at debug level.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::debug(&::std::format!($($arg)*)) };
}

/// Logs a `format!`-style message at info level.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::info(&::std::format!($($arg)*)) };
}

/// Logs a `format!`-style message at warn level.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::warn(&::std::format!($($arg)*)) };
}

/// Logs a `format!`-style message at error level.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::error(&::std::format!($($arg)*)) };
}
