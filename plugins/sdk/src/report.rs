//! Constructors for the reports plugins return.

use crate::bindings::tagship::plugin::types::{CompatReport, HealthReport, HealthStatus};

impl HealthReport {
    /// A report with `status` and `reason`, no value and no threshold.
    pub fn new(status: HealthStatus, reason: impl Into<String>) -> Self {
        Self {
            status,
            value: None,
            threshold: None,
            reason: reason.into(),
        }
    }

    /// A healthy report.
    pub fn healthy(reason: impl Into<String>) -> Self {
        Self::new(HealthStatus::Healthy, reason)
    }

    /// An unhealthy report.
    pub fn unhealthy(reason: impl Into<String>) -> Self {
        Self::new(HealthStatus::Unhealthy, reason)
    }

    /// An unknown report: the check ran but could not decide (e.g. no data).
    pub fn unknown(reason: impl Into<String>) -> Self {
        Self::new(HealthStatus::Unknown, reason)
    }

    /// The same report with the measured value set.
    #[must_use]
    pub fn with_value(mut self, value: f64) -> Self {
        self.value = Some(value);
        self
    }

    /// The same report with the pass condition set, as a human reads it (`== 1`, `0.99..`).
    #[must_use]
    pub fn with_threshold(mut self, threshold: impl Into<String>) -> Self {
        self.threshold = Some(threshold.into());
        self
    }
}

impl CompatReport {
    /// A report saying compatible, with one reason per rule evaluated.
    #[must_use]
    pub fn compatible(reasons: Vec<String>) -> Self {
        Self {
            compatible: true,
            reasons,
        }
    }

    /// A report saying incompatible, with one reason per rule evaluated.
    #[must_use]
    pub fn incompatible(reasons: Vec<String>) -> Self {
        Self {
            compatible: false,
            reasons,
        }
    }
}
