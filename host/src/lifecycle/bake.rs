//! The bake: counting check rounds against the failure budget. Pure.
//!
//! Semantics follow Argo Rollouts' analysis: the bake fails when failed rounds exceed
//! `failure_limit`, or when check errors in a row exceed `consecutive_error_limit`; `unknown`
//! counts as the stage's policy says.

use super::plan::{BakePlan, UnknownPolicy};
use super::ports::{CheckOutcome, CheckResult};

/// The bake's running count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Rounds in which every check passed.
    pub passed: u32,
    /// Rounds in which a check failed (or was unknown under `fail`).
    pub failed: u32,
    /// Check errors in a row, reset by any round without one.
    pub consecutive_errors: u32,
    /// Rounds that counted as neither (unknown under `wait`).
    pub inconclusive: u32,
}

/// What one round of checks means for the bake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Round {
    /// Keep baking.
    Continue,
    /// The failure budget is spent; roll back.
    Fail(String),
}

/// Counts one round of results into `tally` and says whether the bake may go on.
#[must_use]
pub fn assess(plan: &BakePlan, tally: &mut Tally, results: &[CheckResult]) -> Round {
    let mut failed = Vec::new();
    let mut errored = Vec::new();
    let mut unknown = false;
    for r in results {
        match &r.outcome {
            CheckOutcome::Pass => {}
            CheckOutcome::Fail(why) => failed.push(format!("{}: {why}", r.subject())),
            CheckOutcome::Unknown(why) => match plan.unknown {
                UnknownPolicy::Fail => {
                    failed.push(format!("{} could not decide: {why}", r.subject()));
                }
                UnknownPolicy::Pass => {}
                UnknownPolicy::Wait => unknown = true,
            },
            CheckOutcome::Errored(why) => {
                errored.push(format!("{} could not run: {why}", r.subject()));
            }
        }
    }
    if errored.is_empty() {
        tally.consecutive_errors = 0;
    } else {
        tally.consecutive_errors += 1;
        if tally.consecutive_errors > plan.consecutive_error_limit {
            return Round::Fail(format!(
                "{} check errors in a row (limit {}): {}",
                tally.consecutive_errors,
                plan.consecutive_error_limit,
                errored.join("; ")
            ));
        }
    }
    if !failed.is_empty() {
        tally.failed += 1;
        if tally.failed > plan.failure_limit {
            return Round::Fail(format!(
                "{} failed round(s) (limit {}): {}",
                tally.failed,
                plan.failure_limit,
                failed.join("; ")
            ));
        }
    } else if unknown {
        tally.inconclusive += 1;
    } else if errored.is_empty() {
        tally.passed += 1;
    }
    Round::Continue
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn bake(failure_limit: u32, consecutive_error_limit: u32, unknown: UnknownPolicy) -> BakePlan {
        BakePlan {
            checks: vec!["health".into()],
            duration: Duration::from_mins(1),
            interval: Duration::from_secs(10),
            initial_delay: Duration::ZERO,
            failure_limit,
            consecutive_error_limit,
            unknown,
        }
    }

    fn round(outcome: CheckOutcome) -> Vec<CheckResult> {
        vec![CheckResult {
            check: "health".into(),
            cluster: None,
            outcome,
        }]
    }

    fn run(plan: &BakePlan, outcomes: Vec<CheckOutcome>) -> (Round, Tally) {
        let mut tally = Tally::default();
        let mut last = Round::Continue;
        for o in outcomes {
            last = assess(plan, &mut tally, &round(o));
            if last != Round::Continue {
                break;
            }
        }
        (last, tally)
    }

    use CheckOutcome::{Errored, Fail, Pass, Unknown};

    #[test]
    fn the_bake_fails_only_when_failures_exceed_the_limit() {
        let (r, t) = run(
            &bake(0, 4, UnknownPolicy::Fail),
            vec![Pass, Pass, Fail("0".into())],
        );
        assert!(
            matches!(r, Round::Fail(ref why) if why.contains("1 failed round(s) (limit 0)")),
            "{r:?}"
        );
        assert_eq!(t.passed, 2);
        let (r, t) = run(
            &bake(1, 4, UnknownPolicy::Fail),
            vec![Fail("0".into()), Pass, Pass],
        );
        assert_eq!(r, Round::Continue);
        assert_eq!((t.failed, t.passed), (1, 2));
    }

    #[test]
    fn errors_in_a_row_beyond_the_limit_fail_and_a_clean_round_resets_them() {
        let e = || Errored("trap".into());
        let (r, _) = run(
            &bake(0, 2, UnknownPolicy::Fail),
            vec![e(), e(), Pass, e(), e()],
        );
        assert_eq!(r, Round::Continue);
        let (r, _) = run(&bake(0, 2, UnknownPolicy::Fail), vec![e(), e(), e()]);
        assert!(
            matches!(r, Round::Fail(ref why) if why.contains("3 check errors in a row")),
            "{r:?}"
        );
    }

    #[test]
    fn unknown_counts_as_the_policy_says() {
        let u = || Unknown("empty result".into());
        assert!(matches!(
            run(&bake(0, 4, UnknownPolicy::Fail), vec![u()]).0,
            Round::Fail(_)
        ));
        let (r, t) = run(&bake(0, 4, UnknownPolicy::Pass), vec![u(), u()]);
        assert_eq!((r, t.passed), (Round::Continue, 2));
        let (r, t) = run(&bake(0, 4, UnknownPolicy::Wait), vec![u(), u()]);
        assert_eq!((r, t.passed, t.inconclusive), (Round::Continue, 0, 2));
    }
}
