//! What checks report: health and compatibility verdicts, as data.
//!
//! A failed check is a verdict (`Unhealthy`), not an error; errors are for checks that could
//! not run. The lifecycle decides what each verdict means for a stage.

use serde::Serialize;

/// The outcome of one health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// The pass condition holds.
    Healthy,
    /// The pass condition is violated.
    Unhealthy,
    /// The check could not decide (no data).
    Unknown,
}

/// What a health check found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// The verdict.
    pub status: HealthStatus,
    /// The measured value, when there was one.
    pub value: Option<f64>,
    /// The pass condition, e.g. `== 1`.
    pub threshold: Option<String>,
    /// Why, in a sentence.
    pub reason: String,
}

/// What a compat check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompatReport {
    /// True when compatible.
    pub compatible: bool,
    /// One sentence per rule evaluated.
    pub reasons: Vec<String>,
}
