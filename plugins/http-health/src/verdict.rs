//! What a response must look like, and the report for one. Pure.

use tagship_plugin::health::HealthReport;
use tagship_plugin::http::Response;
use tagship_plugin::version;

/// A set of accepted status codes: `200`, `200,204`, `200-299`, `200-299,304`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet(Vec<(u16, u16)>);

impl StatusSet {
    /// Parses a comma list of codes and inclusive `LOW-HIGH` ranges.
    pub fn parse(text: &str) -> Result<Self, String> {
        let code = |s: &str| {
            s.trim()
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(|| format!("`{}` is not an HTTP status code", s.trim()))
        };
        let ranges = text
            .split(',')
            .map(|part| match part.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (code(lo)?, code(hi)?);
                    if lo > hi {
                        return Err(format!("`{}` is an empty range", part.trim()));
                    }
                    Ok((lo, hi))
                }
                None => code(part).map(|c| (c, c)),
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self(ranges))
    }

    /// True when `status` is in the set.
    #[must_use]
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|(lo, hi)| (*lo..=*hi).contains(&status))
    }
}

/// Everything a response is checked against.
#[derive(Debug, Clone)]
pub struct Expectation {
    /// Accepted statuses.
    pub statuses: StatusSet,
    /// The accepted statuses as configured, reported as the threshold.
    pub status_text: String,
    /// The header carrying the served version, when it is checked.
    pub version_header: Option<String>,
    /// A suffix removed from the header value before comparing (e.g. `-gitlab`).
    pub version_suffix: String,
    /// The target version.
    pub version: String,
}

impl Expectation {
    /// The report for `response`, which came from `url`.
    #[must_use]
    pub fn judge(&self, url: &str, response: &Response) -> HealthReport {
        let status = response.status;
        let report = |r: HealthReport| {
            r.with_value(f64::from(status))
                .with_threshold(self.status_text.clone())
        };
        if !self.statuses.contains(status) {
            let body = response.excerpt();
            let separator = if body.is_empty() { "" } else { ": " };
            return report(HealthReport::unhealthy(format!(
                "HTTP {status} from {url}, expected {}{separator}{body}",
                self.status_text
            )));
        }
        let Some(header) = &self.version_header else {
            return report(HealthReport::healthy(format!("HTTP {status} from {url}")));
        };
        let Some(served) = response.header(header) else {
            return report(HealthReport::unhealthy(format!(
                "HTTP {status} from {url} has no `{header}` header, so the served version is \
                 unknown (expected {})",
                self.version
            )));
        };
        let served = served.trim();
        let comparable = if self.version_suffix.is_empty() {
            served
        } else {
            served
                .strip_suffix(self.version_suffix.as_str())
                .unwrap_or(served)
        };
        if version::same_text(comparable, &self.version) {
            report(HealthReport::healthy(format!(
                "HTTP {status} from {url}, serving {served}"
            )))
        } else {
            report(HealthReport::unhealthy(format!(
                "serving {served}, expected {} (`{header}` from {url})",
                self.version
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tagship_plugin::health::HealthStatus;

    fn expectation(statuses: &str, header: Option<&str>, suffix: &str) -> Expectation {
        Expectation {
            statuses: StatusSet::parse(statuses).unwrap(),
            status_text: statuses.to_owned(),
            version_header: header.map(str::to_owned),
            version_suffix: suffix.to_owned(),
            version: "v3.1.0".to_owned(),
        }
    }

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn status_sets_accept_codes_and_ranges() {
        let set = StatusSet::parse("200-299, 304").unwrap();
        assert!(set.contains(200) && set.contains(299) && set.contains(304));
        assert!(!set.contains(300) && !set.contains(500));
        for bad in ["", "2xx", "299-200", "700", "200,"] {
            assert!(StatusSet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_expected_status_is_healthy_with_the_status_as_value() {
        let report = expectation("200", None, "").judge("http://r/", &response(200, &[], ""));
        assert_eq!(report.status, HealthStatus::Healthy);
        assert_eq!(report.value, Some(200.0));
        assert_eq!(report.threshold.as_deref(), Some("200"));
    }

    #[test]
    fn an_unexpected_status_is_unhealthy_with_a_body_excerpt() {
        let report =
            expectation("200-299", None, "").judge("http://r/", &response(503, &[], "down\n"));
        assert_eq!(report.status, HealthStatus::Unhealthy);
        assert_eq!(
            report.reason,
            "HTTP 503 from http://r/, expected 200-299: down"
        );
    }

    #[test]
    fn the_served_version_must_match_ignoring_a_leading_v() {
        let e = expectation("200,401", Some("Gitlab-Container-Registry-Version"), "");
        let ok = e.judge(
            "u",
            &response(401, &[("gitlab-container-registry-version", "3.1.0")], ""),
        );
        assert_eq!(ok.status, HealthStatus::Healthy);
        let old = e.judge(
            "u",
            &response(200, &[("gitlab-container-registry-version", "v3.0.0")], ""),
        );
        assert_eq!(old.status, HealthStatus::Unhealthy);
        assert!(
            old.reason.starts_with("serving v3.0.0, expected v3.1.0"),
            "{}",
            old.reason
        );
    }

    #[test]
    fn a_missing_version_header_is_unhealthy() {
        let e = expectation("200", Some("X-Version"), "");
        let report = e.judge("u", &response(200, &[], ""));
        assert_eq!(report.status, HealthStatus::Unhealthy);
        assert!(report.reason.contains("no `X-Version` header"));
    }

    #[test]
    fn a_configured_suffix_is_ignored() {
        let e = expectation("200", Some("X-Version"), "-gitlab");
        let report = e.judge("u", &response(200, &[("x-version", "v3.1.0-gitlab")], ""));
        assert_eq!(report.status, HealthStatus::Healthy);
        assert_eq!(report.reason, "HTTP 200 from u, serving v3.1.0-gitlab");
    }
}
