//! Bounded retries of idempotent requests on transient failures.
//!
//! Only for requests that may safely be sent twice (GETs, server-side apply, a compare-and-swap
//! that re-reads). Never used for a POST whose repetition would differ from the first.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use super::Server;

/// How many times a request is sent at most. With [`backoff`] the retries span about 7 to 11
/// seconds: long enough to ride out an API server restart (ready about 5 s after start), short
/// enough that a broken cluster is reported promptly.
pub(super) const ATTEMPTS: u32 = 8;
const BASE: Duration = Duration::from_millis(100);
const CAP: Duration = Duration::from_secs(2);
/// The longest server-requested delay (`Retry-After`) honoured; longer requests wait this long.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(10);

/// Runs `op`, a request to `server`, until it succeeds, fails permanently, or [`ATTEMPTS`] are
/// used up; an outage it rides out is told through `server`.
pub(super) async fn retry<T, F, Fut>(server: &Server, mut op: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 0;
    let began = Instant::now();
    loop {
        attempt += 1;
        match op().await {
            Err(err) if attempt < ATTEMPTS && is_transient(&err) => {
                if attempt == TOLD_AFTER {
                    server.failing(&err, began, longest_wait_after(attempt));
                } else {
                    tracing::debug!(attempt, error = %err, "transient API error; retrying");
                }
                tokio::time::sleep(delay(attempt, &err)).await;
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

/// The consecutive failure at which an activity tells an outage (see [`Server::failing`]).
pub(super) const TOLD_AFTER: u32 = 2;

/// The longest [`backoff`] can wait in all after the `attempt`-th failure (jitter included).
fn longest_wait_after(attempt: u32) -> Duration {
    (attempt..ATTEMPTS).map(|a| unjittered(a) * 3 / 2).sum()
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
    fn the_longest_wait_bounds_every_backoff() {
        for _ in 0..100 {
            let waited: Duration = (TOLD_AFTER..ATTEMPTS).map(backoff).sum();
            assert!(waited <= longest_wait_after(TOLD_AFTER), "{waited:?}");
        }
        assert!(longest_wait_after(TOLD_AFTER) <= Duration::from_secs(11));
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

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_bounded_number_of_attempts() {
        let mut calls = 0;
        let result: Result<(), _> = retry(&Server::new("local-1".into()), || {
            calls += 1;
            async { Err(status_error(503)) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls, ATTEMPTS);
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_is_told_from_the_second_failure_and_ends_with_an_answer() {
        let server = Server::new("local-1".into());
        let told = |server: &Server| server.outage.lock().expect("lock").is_some();
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
}
