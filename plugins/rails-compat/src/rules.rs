//! The static and live rules over versions already fetched. Pure.

use tagship_plugin::compat::CompatReport;
use tagship_plugin::version::Version;

/// The header a GitLab container registry reports its version in.
pub const VERSION_HEADER: &str = "Gitlab-Container-Registry-Version";

/// How the live rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveMode {
    /// The live rule decides too, and an unreadable live version is an error.
    Require,
    /// The live rule only adds a reason.
    Report,
}

impl LiveMode {
    /// Parses `require` or `report`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "require" => Ok(Self::Require),
            "report" => Ok(Self::Report),
            other => Err(format!(
                "config `live_rule`: `{other}` is not `require` or `report`"
            )),
        }
    }
}

/// What the rules decide over.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// The app version, when known.
    pub app: Option<&'a str>,
    /// The target registry version.
    pub target: &'a str,
    /// The minimum registry version the app requires, as fetched (trimmed).
    pub minimum: &'a str,
    /// The live rule's mode and the live version (or why it could not be read), when enabled.
    pub live: Option<(LiveMode, Result<String, String>)>,
}

/// Applies the rules. `Err` when undecided: the minimum or a version is unreadable, or the
/// live version is unreadable and the live rule is required.
pub fn decide(inputs: &Inputs<'_>) -> Result<CompatReport, String> {
    let app = inputs
        .app
        .map_or_else(|| "the app".to_owned(), |v| format!("app {v}"));
    let minimum = parse(inputs.minimum)
        .map_err(|e| format!("static rule: the minimum registry version is unreadable: {e}"))?;
    let target = parse(inputs.target)
        .map_err(|e| format!("static rule: the target version is unreadable: {e}"))?;
    let static_ok = target >= minimum;
    let mut reasons = vec![format!(
        "static rule: {app} requires registry >= {}; target {} {}",
        inputs.minimum,
        inputs.target,
        if static_ok {
            "satisfies it"
        } else {
            "is older"
        }
    )];
    let mut compatible = static_ok;
    if let Some((mode, live)) = &inputs.live {
        let label = match mode {
            LiveMode::Require => "live rule",
            LiveMode::Report => "live rule (report only)",
        };
        match live {
            Ok(live) => {
                let live_ok = parse(live).map_err(|e| {
                    format!("{label}: the live registry version is unreadable: {e}")
                })? >= minimum;
                reasons.push(format!(
                    "{label}: live registry {live} {} {app}'s minimum {}",
                    if live_ok {
                        "satisfies"
                    } else {
                        "is older than"
                    },
                    inputs.minimum
                ));
                if *mode == LiveMode::Require {
                    compatible &= live_ok;
                }
            }
            Err(why) => {
                if *mode == LiveMode::Require {
                    return Err(format!(
                        "{label}: cannot read the live registry version: {why}"
                    ));
                }
                reasons.push(format!(
                    "{label}: cannot read the live registry version: {why}"
                ));
            }
        }
    }
    Ok(CompatReport {
        compatible,
        reasons,
    })
}

/// Parses a version, reading a `-gitlab` distribution suffix as no pre-release.
fn parse(text: &str) -> Result<Version, String> {
    let text = text.trim();
    Version::parse(text.strip_suffix("-gitlab").unwrap_or(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs<'a>(target: &'a str, minimum: &'a str) -> Inputs<'a> {
        Inputs {
            app: Some("v17.5.0"),
            target,
            minimum,
            live: None,
        }
    }

    #[test]
    fn an_older_target_is_incompatible_and_says_so() {
        let report = decide(&inputs("v3.0.0", "v3.1.0")).unwrap();
        assert!(!report.compatible);
        assert_eq!(
            report.reasons,
            ["static rule: app v17.5.0 requires registry >= v3.1.0; target v3.0.0 is older"]
        );
    }

    #[test]
    fn an_equal_or_newer_target_is_compatible() {
        for target in ["v3.1.0", "v3.2.0", "3.1.0"] {
            assert!(
                decide(&inputs(target, "v3.1.0")).unwrap().compatible,
                "{target}"
            );
        }
    }

    #[test]
    fn a_gitlab_suffix_is_not_a_prerelease() {
        assert!(
            decide(&inputs("v3.1.0", "v3.1.0-gitlab"))
                .unwrap()
                .compatible
        );
        assert!(
            decide(&inputs("v3.1.0-gitlab", "v3.1.0"))
                .unwrap()
                .compatible
        );
        assert!(
            !decide(&inputs("v3.1.0-rc1", "v3.1.0-gitlab"))
                .unwrap()
                .compatible
        );
    }

    #[test]
    fn an_unknown_app_version_reads_as_the_app() {
        let report = decide(&Inputs {
            app: None,
            ..inputs("v3.1.0", "v3.1.0")
        })
        .unwrap();
        assert_eq!(
            report.reasons[0],
            "static rule: the app requires registry >= v3.1.0; target v3.1.0 satisfies it"
        );
    }

    #[test]
    fn an_unreadable_minimum_is_undecided() {
        let error = decide(&inputs("v3.1.0", "<html>not found</html>")).unwrap_err();
        assert!(
            error.starts_with("static rule: the minimum registry version is unreadable"),
            "{error}"
        );
    }

    #[test]
    fn the_live_rule_in_report_mode_only_adds_a_reason() {
        let report = decide(&Inputs {
            live: Some((LiveMode::Report, Ok("v3.0.0-gitlab".into()))),
            ..inputs("v3.1.0", "v3.1.0")
        })
        .unwrap();
        assert!(report.compatible);
        assert_eq!(
            report.reasons[1],
            "live rule (report only): live registry v3.0.0-gitlab is older than app v17.5.0's minimum v3.1.0"
        );
    }

    #[test]
    fn the_live_rule_in_require_mode_decides_too() {
        let report = decide(&Inputs {
            live: Some((LiveMode::Require, Ok("v3.0.0".into()))),
            ..inputs("v3.1.0", "v3.1.0")
        })
        .unwrap();
        assert!(!report.compatible);
        let report = decide(&Inputs {
            live: Some((LiveMode::Require, Ok("v3.2.0".into()))),
            ..inputs("v3.1.0", "v3.1.0")
        })
        .unwrap();
        assert!(report.compatible);
        assert_eq!(
            report.reasons[1],
            "live rule: live registry v3.2.0 satisfies app v17.5.0's minimum v3.1.0"
        );
    }

    #[test]
    fn an_unreadable_live_version_is_an_error_only_when_required() {
        let unread = |mode| Inputs {
            live: Some((mode, Err("connection refused".into()))),
            ..inputs("v3.1.0", "v3.1.0")
        };
        assert!(
            decide(&unread(LiveMode::Require))
                .unwrap_err()
                .contains("connection refused")
        );
        let report = decide(&unread(LiveMode::Report)).unwrap();
        assert!(report.compatible);
        assert!(
            report.reasons[1].contains("cannot read the live registry version: connection refused")
        );
    }

    #[test]
    fn live_mode_parses_its_two_words() {
        assert_eq!(LiveMode::parse(" require "), Ok(LiveMode::Require));
        assert!(LiveMode::parse("maybe").is_err());
    }
}
