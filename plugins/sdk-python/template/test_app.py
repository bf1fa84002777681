"""Tests of app.py on plain CPython, the host faked (no component, no network):

    .venv/bin/pip install -r requirements-dev.txt && .venv/bin/pytest
"""

import pytest

import app
from tagship_plugin import Err, HealthStatus
from tagship_plugin.testing import FakeHost, context, http_error, respond

URL = "http://registry.test/health"


def run_check(responses, config=None):
    """Calls the check as the runner does: through the export, so errors are `Err` texts."""
    with FakeHost(config={"url": URL} if config is None else config, responses=responses) as host:
        report = app.Health().check(context(stage="gstg-cny"))
    return report, host


def test_200_is_healthy():
    report, host = run_check({URL: respond(200, "ok")})
    assert report.status == HealthStatus.HEALTHY
    assert report.reason == f"{URL} answered HTTP 200 on gstg-cny"
    assert report.value == 200
    assert report.threshold == "HTTP status == 200"
    assert [(r.method, r.url) for r in host.requests] == [("GET", URL)]


@pytest.mark.parametrize("status", [204, 301, 404, 500, 503])
def test_any_other_status_is_unhealthy(status):
    report, _ = run_check({URL: respond(status)})
    assert report.status == HealthStatus.UNHEALTHY
    assert f"answered HTTP {status} on gstg-cny, expected 200" in report.reason
    assert report.value == status


@pytest.mark.parametrize("kind", ["timeout", "connection"])
def test_a_service_that_does_not_answer_is_unhealthy(kind):
    report, _ = run_check({URL: http_error(kind, "connection refused")})
    assert report.status == HealthStatus.UNHEALTHY
    assert "is not serving on gstg-cny" in report.reason


def test_a_denied_host_is_the_checks_error():
    with pytest.raises(Err) as failure:
        run_check({URL: http_error("denied", "host `registry.test` is not granted")})
    assert failure.value.value.startswith(
        "HttpError: denied: host `registry.test` is not granted (at app.py:"
    )


def test_a_missing_url_is_an_error_naming_the_key():
    with pytest.raises(Err) as failure:
        run_check({}, config={})
    assert "ConfigError: missing config key `url`" in failure.value.value


def test_judge_is_pure():
    assert app.judge("http://x/", "gprd", 200).status == HealthStatus.HEALTHY
    assert app.judge("http://x/", "gprd", 502).status == HealthStatus.UNHEALTHY
