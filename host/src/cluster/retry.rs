//! Bounded retries of idempotent requests on transient failures, within a budget of time that
//! also bounds the waits for answers.
//!
//! Only for requests that may safely be sent twice (GETs, server-side apply, a compare-and-swap
//! that re-reads). Never used for a POST whose repetition would differ from the first.
//!
//! [`Patience`] is what a request with its retries and a watch (see `watch.rs`) share: how long
//! an activity keeps trying once it fails, counted from the start of its first failed attempt,
//! attempts that hang included, and when it tells the outage.
//!
//! # Guarantees
//!
//! - [`retry`] returns within [`BUDGET`] of its start, whatever the server does: an attempt not
//!   done after [`READ_TIMEOUT`], or when the budget ends, is abandoned ([`NoAnswer`]) and
//!   retried if there is time left, and no retry starts that the back-off (or a server's
//!   `Retry-After`) would push past the budget.
//! - The outage an activity tells names the time left of its budget, so it ends by then at the
//!   latest (see [`Patience::left`]).

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use tokio::time::Instant;

use super::{READ_TIMEOUT, Server};

/// How long a request keeps trying in all, from its first attempt: long enough to ride out an
/// API server restart (ready about 5 s after start; 8–15 s measured under load) and one request
/// lost to a server that stopped answering ([`READ_TIMEOUT`]), short enough that a broken
/// cluster is reported promptly.
pub(super) const BUDGET: Duration = Duration::from_secs(20);
const BASE: Duration = Duration::from_millis(100);
const CAP: Duration = Duration::from_secs(2);
/// The longest server-requested delay (`Retry-After`) honoured; longer requests wait this long.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(10);

/// The consecutive failure at which an activity tells an outage (see [`Server::failing`]); a
/// failure that was a hang (see [`is_hang`]) tells it at once.
pub(super) const TOLD_AFTER: u32 = 2;

/// Runs `op`, a request to `server`, until it succeeds, fails permanently, or [`BUDGET`] is
/// spent, each attempt abandoned after [`READ_TIMEOUT`] (or when the budget ends); an outage it
/// rides out is told through `server`.
pub(super) async fn retry<T, F, Fut>(server: &Server, mut op: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut patience = Patience::new(BUDGET);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let began = Instant::now();
        let limit = patience.limit(began).min(READ_TIMEOUT);
        match patience.bound(limit, op()).await {
            Err(err) if is_transient(&err) => {
                let wait = delay(attempt, &err);
                if !patience.failed(began, wait) {
                    return Err(err);
                }
                if !patience.tell(server, &err) {
                    tracing::debug!(attempt, error = %err, "transient API error; retrying");
                }
                tokio::time::sleep(wait).await;
            }
            result => {
                // An answer, even a refusal, is the server back; a transport failure or an
                // overloaded server is not.
                let answered = match &result {
                    Ok(_) => true,
                    Err(err) => matches!(err, kube::Error::Api(_)) && !is_transient(err),
                };
                if answered {
                    server.answered();
                }
                return result;
            }
        }
    }
}

/// Consecutive failed attempts of one activity, ridden out for a budget of time that starts
/// with the first of them: attempts that hang count, and so do the waits between attempts.
#[derive(Debug)]
pub(super) struct Patience {
    budget: Duration,
    count: u32,
    /// When the first of the consecutive failed attempts began.
    since: Option<Instant>,
}

impl Patience {
    /// No failure yet; `budget` from the first.
    pub(super) fn new(budget: Duration) -> Self {
        Self {
            budget,
            count: 0,
            since: None,
        }
    }

    /// How long an attempt beginning at `now` may take: what is left of the budget, or all of it
    /// while nothing failed.
    pub(super) fn limit(&self, now: Instant) -> Duration {
        self.since.map_or(self.budget, |since| {
            (since + self.budget).saturating_duration_since(now)
        })
    }

    /// `attempt`, abandoned after `limit` as a [`NoAnswer`] (transient, and a hang).
    pub(super) async fn bound<T>(
        &self,
        limit: Duration,
        attempt: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, kube::Error> {
        tokio::time::timeout(limit, attempt)
            .await
            .unwrap_or_else(|_| Err(kube::Error::Service(Box::new(NoAnswer(limit)))))
    }

    /// Counts a failed attempt that began at `began`: whether another one, after `wait`, still
    /// starts within the budget (if not, the activity gives up now).
    pub(super) fn failed(&mut self, began: Instant, wait: Duration) -> bool {
        self.count += 1;
        let since = *self.since.get_or_insert(began);
        Instant::now() + wait < since + self.budget
    }

    /// Tells `server`'s outage (see [`Server::failing`]) when the failure just counted, `err`,
    /// makes it one: the [`TOLD_AFTER`]-th in a row, or the first when it was a hang. Whether
    /// it did.
    pub(super) fn tell(&self, server: &Server, err: &kube::Error) -> bool {
        let Some(since) = self.since else {
            return false;
        };
        let now = self.count == TOLD_AFTER || (self.count == 1 && is_hang(err).is_some());
        now && server.failing(err, since, self.left())
    }

    /// The time left of the budget: by then the activity has given up, unless it succeeded.
    pub(super) fn left(&self) -> Duration {
        self.limit(Instant::now())
    }

    /// The consecutive failures so far.
    pub(super) fn count(&self) -> u32 {
        self.count
    }

    /// The activity worked: the next failure starts a new budget.
    pub(super) fn reset(&mut self) {
        self.count = 0;
        self.since = None;
    }
}

/// An attempt abandoned because the API server had not answered when its time was up.
#[derive(Debug, thiserror::Error)]
#[error("no answer within {} s", seconds(*.0))]
pub struct NoAnswer(pub Duration);

/// `duration` in whole seconds, rounded to the nearest (at least 1), as messages say it.
pub(super) fn seconds(duration: Duration) -> u64 {
    ((duration.as_millis() + 500) / 1000)
        .max(1)
        .try_into()
        .unwrap_or(u64::MAX)
}

/// How long the server was waited for when `err` is a hang: an attempt [`Patience::bound`]
/// abandoned, or a connection the client's timeouts ended ([`READ_TIMEOUT`]) because the
/// server sent nothing. `None` for any other failure.
pub(super) fn is_hang(err: &kube::Error) -> Option<Duration> {
    crate::terminal::causes(err).find_map(|cause| {
        if let Some(NoAnswer(limit)) = cause.downcast_ref::<NoAnswer>() {
            return Some(*limit);
        }
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
            .then_some(READ_TIMEOUT)
    })
}

/// Whether `err` is worth retrying: overload, server-side failures and broken connections.
pub(super) fn is_transient(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => matches!(status.code, 429 | 500 | 502 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

/// Whether `err` is the API server's 409 (a stale `resourceVersion`, or `AlreadyExists`).
pub(super) fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 409)
}

/// Whether `err` is the API server's 404.
pub(super) fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404)
}

/// The wait after the `attempt`-th failure `err`: [`backoff`], or longer when the server asked
/// for it (429 and some 5xx carry `retryAfterSeconds`, the `Retry-After` header's value), capped
/// at [`RETRY_AFTER_CAP`].
pub(super) fn delay(attempt: u32, err: &kube::Error) -> Duration {
    let asked = match err {
        kube::Error::Api(status) => status.details.as_ref().map_or(0, |d| d.retry_after_seconds),
        _ => 0,
    };
    backoff(attempt).max(Duration::from_secs(u64::from(asked)).min(RETRY_AFTER_CAP))
}

/// Exponential back-off for the `attempt`-th failure (1-based), capped, with up to 50% jitter.
pub(super) fn backoff(attempt: u32) -> Duration {
    let delay = unjittered(attempt);
    let jitter = u32::try_from(jitter_per_mille()).unwrap_or(0);
    delay + delay * jitter / 2000
}

/// [`backoff`] before its jitter.
fn unjittered(attempt: u32) -> Duration {
    BASE.saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(CAP)
}

/// A random number in `0..1000`, from the standard library's randomly keyed hasher.
fn jitter_per_mille() -> u64 {
    RandomState::new().build_hasher().finish() % 1000
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn status_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(Status::failure("x", "y").with_code(code)))
    }

    fn timed_out() -> kube::Error {
        kube::Error::Service(Box::new(std::io::Error::from(std::io::ErrorKind::TimedOut)))
    }

    #[test]
    fn server_failures_and_throttling_are_transient_but_client_errors_are_not() {
        for code in [429, 500, 502, 503, 504] {
            assert!(is_transient(&status_error(code)), "{code}");
        }
        for code in [400, 403, 404, 409, 422] {
            assert!(!is_transient(&status_error(code)), "{code}");
        }
    }

    #[test]
    fn a_hang_is_an_abandoned_attempt_or_a_timed_out_connection_and_nothing_else() {
        let abandoned = kube::Error::Service(Box::new(NoAnswer(Duration::from_secs(7))));
        let table = [
            (
                "an attempt abandoned",
                abandoned,
                Some(Duration::from_secs(7)),
            ),
            ("a read or connect timeout", timed_out(), Some(READ_TIMEOUT)),
            (
                "a refused connection",
                kube::Error::Service(Box::new(std::io::Error::from(
                    std::io::ErrorKind::ConnectionRefused,
                ))),
                None,
            ),
            ("a 503", status_error(503), None),
        ];
        for (what, err, hang) in table {
            assert_eq!(is_hang(&err), hang, "{what}");
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) >= BASE && backoff(1) <= BASE * 3 / 2);
        assert!(backoff(3) >= BASE * 4);
        assert!(backoff(30) <= CAP * 3 / 2);
    }

    fn throttled(seconds: u32) -> kube::Error {
        let status: Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "code": 429, "reason": "TooManyRequests", "message": "slow down",
            "details": { "retryAfterSeconds": seconds },
        }))
        .expect("a status");
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn a_server_requested_delay_is_honoured_up_to_its_cap() {
        assert!(delay(1, &throttled(3)) >= Duration::from_secs(3));
        assert_eq!(delay(1, &throttled(3600)), RETRY_AFTER_CAP);
        assert!(delay(1, &status_error(503)) <= BASE * 3 / 2);
    }

    /// How a server fails every attempt, for [`every_way_of_failing_ends_by_the_time_told`].
    #[derive(Clone, Copy, Debug)]
    enum Failing {
        /// Answers 503 at once.
        Unavailable,
        /// Accepts the request and never answers.
        Hung,
        /// The connection times out after [`READ_TIMEOUT`] (the client's own timeout).
        TimesOut,
        /// Answers 429 asking for a 10 s wait.
        Throttles,
        /// Hangs on odd attempts, answers 503 on even ones.
        ByTurns,
    }

    async fn attempt(failing: Failing, n: u32) -> Result<(), kube::Error> {
        match failing {
            Failing::Hung => std::future::pending().await,
            Failing::TimesOut => {
                tokio::time::sleep(READ_TIMEOUT).await;
                Err(timed_out())
            }
            Failing::Throttles => Err(throttled(10)),
            Failing::ByTurns if n % 2 == 1 => std::future::pending().await,
            Failing::Unavailable | Failing::ByTurns => Err(status_error(503)),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn every_way_of_failing_ends_by_the_time_told() {
        // (how the server fails, whether the outage is told: a second 10 s wait would end
        // past the budget, so a throttled request gives up at its second failure, untold)
        let table = [
            (Failing::Unavailable, true),
            (Failing::Hung, true),
            (Failing::TimesOut, true),
            (Failing::Throttles, false),
            (Failing::ByTurns, true),
        ];
        for (failing, tells) in table {
            let server = Server::new("local-1".into());
            let started = Instant::now();
            let mut n = 0;
            let result = retry(&server, || {
                n += 1;
                attempt(failing, n)
            })
            .await;
            let ended = Instant::now();
            assert!(result.is_err(), "{failing:?}");
            assert!(n >= 2, "{failing:?}: retried ({n} attempts)");
            assert!(
                ended - started <= BUDGET,
                "{failing:?}: {:?}",
                ended - started
            );
            let Some(told) = server.told() else {
                assert!(!tells, "{failing:?}: the outage is told");
                continue;
            };
            assert!(tells, "{failing:?}: told {told:?}");
            assert!(
                ended <= told.gives_up && told.gives_up - ended <= CAP * 3 / 2,
                "{failing:?}: told to give up at {:?}, gave up at {:?}",
                told.gives_up - started,
                ended - started
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hang_is_told_at_once_and_a_quick_failure_from_the_second() {
        let table = [
            (Failing::TimesOut, READ_TIMEOUT),
            (Failing::Unavailable, Duration::ZERO),
        ];
        for (failing, told_after) in table {
            let server = Server::new("local-1".into());
            let started = Instant::now();
            let _ = retry(&server, || attempt(failing, 1)).await;
            let told = server.told().expect("told");
            let at = told.gives_up - told.left - started;
            assert!(
                at >= told_after && at <= told_after + CAP,
                "{failing:?}: told at {at:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_is_told_from_the_second_failure_and_ends_with_an_answer() {
        let server = Server::new("local-1".into());
        let told = |server: &Server| server.told().is_some();
        // One failure, then an answer: a blip, not told.
        let mut calls = 0;
        let result = retry(&server, || {
            calls += 1;
            let first = calls == 1;
            async move {
                if first {
                    Err(status_error(503))
                } else {
                    Ok(())
                }
            }
        })
        .await;
        assert!(result.is_ok() && !told(&server));
        // Failures to the end: told, and still an outage when the retries give up.
        let result: Result<(), _> = retry(&server, || async { Err(status_error(503)) }).await;
        assert!(result.is_err() && told(&server));
        // Another request is answered, even with a refusal: the outage is over.
        let result: Result<(), _> = retry(&server, || async { Err(status_error(404)) }).await;
        assert!(result.is_err() && !told(&server));
    }

    #[tokio::test(start_paused = true)]
    async fn does_not_retry_a_permanent_error() {
        let mut calls = 0;
        let result: Result<(), _> = retry(&Server::new("local-1".into()), || {
            calls += 1;
            async { Err(status_error(422)) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls, 1);
    }

    #[test]
    fn seconds_are_said_rounded_and_never_zero() {
        let table = [(0, 1), (400, 1), (9_600, 10), (10_400, 10), (19_500, 20)];
        for (millis, said) in table {
            assert_eq!(seconds(Duration::from_millis(millis)), said, "{millis} ms");
        }
    }
}
