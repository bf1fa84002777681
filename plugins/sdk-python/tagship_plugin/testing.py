"""Test helpers: a fake host and sample inputs, for pytest on plain CPython.

    from tagship_plugin.testing import FakeHost, context, respond, http_error

    def test_healthy_on_200():
        with FakeHost(config={"url": "http://svc/health"},
                      responses={"http://svc/health": respond(200, "ok")}) as host:
            report = app.check(context(stage="gprd"))
        assert report.status == HealthStatus.HEALTHY
        assert host.requests[0].method == "GET"

Not meant to be imported by `app.py` (it is not needed inside the component).
"""

import json
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from . import _host
from ._bindings import types
from .errors import HttpError


@dataclass
class FakeResponse:
    status: int = 200
    headers: List[Tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


@dataclass
class FakeRequest:
    method: str
    url: str
    headers: List[Tuple[str, str]]
    body: Optional[bytes]

    def header(self, name):
        """The first value of header `name` (case-insensitive), or None."""
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def json(self):
        """The body parsed as JSON."""
        return json.loads(self.body)


def respond(status=200, body=b"", headers=None, json_body=None):
    """A fake response. `body`: bytes or str; `json_body`: a value sent as JSON instead."""
    pairs = [(k.lower(), v) for k, v in (headers or {}).items()]
    if json_body is not None:
        body = json.dumps(json_body)
        pairs.append(("content-type", "application/json"))
    if isinstance(body, str):
        body = body.encode("utf-8")
    return FakeResponse(status, pairs, bytes(body))


def http_error(kind, detail="fake"):
    """A request that produced no response: `kind` is `denied`, `invalid-request`, `timeout`,
    `too-large` or `connection`."""
    return HttpError(kind, detail)


class FakeHost:
    """Stands in for the runner. `config` and `secrets`: dicts. `responses`: URL (or
    `(method, URL)`) -> `respond(...)`, an int status, an `http_error(...)`, or a function of the
    `FakeRequest` returning one of those. A URL not listed is `denied`, as an ungranted host is.

    Records `logs` as (level, message) and `requests` as `FakeRequest`s. Use as a context manager
    (`with FakeHost(...) as host:`), or `install()` / `uninstall()`.
    """

    def __init__(self, config=None, secrets=None, responses=None):
        self.config_values = dict(config or {})
        self.secrets = dict(secrets or {})
        self.responses = dict(responses or {})
        self.logs = []
        self.requests = []
        self._previous = None

    # --- the host interface (see tagship_plugin._host) ---

    def log(self, level, message):
        self.logs.append((level, message))

    def config(self, key):
        return self.config_values.get(key)

    def secret(self, name):
        return self.secrets.get(name)

    def fetch(self, method, url, headers, body):
        request = FakeRequest(method, url, list(headers), body)
        self.requests.append(request)
        answer = self.responses.get((method, url), self.responses.get(url))
        if callable(answer) and not isinstance(answer, BaseException):
            answer = answer(request)
        if answer is None:
            raise HttpError("denied", f"{method} {url}: no fake response for it", method, url)
        if isinstance(answer, HttpError):
            raise HttpError(answer.kind, answer.detail, method, url)
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, int):
            answer = FakeResponse(answer)
        return answer.status, list(answer.headers), bytes(answer.body)

    # --- installing ---

    def install(self):
        self._previous = _host.install(self)
        return self

    def uninstall(self):
        _host.install(self._previous)
        self._previous = None

    def __enter__(self):
        return self.install()

    def __exit__(self, *_exc):
        self.uninstall()
        return False

    def messages(self, level=None):
        """The logged messages (of `level` only, when given)."""
        return [m for lvl, m in self.logs if level is None or lvl == level]


def workload(**overrides):
    """A `WorkloadVersion` of the registry, fields overridable."""
    fields = dict(
        cluster="gstg",
        namespace="gitlab",
        workload="gitlab-registry",
        container="registry",
        image="registry.example.com/registry:v3.0.0-gitlab",
        version="v3.0.0",
    )
    fields.update(overrides)
    return types.WorkloadVersion(**fields)


def context(**overrides):
    """A `DeployContext` (registry v3.1.0 to gstg-cny), fields overridable."""
    fields = dict(
        component="registry",
        version="v3.1.0",
        previous_version="v3.0.0",
        stage="gstg-cny",
        environment="gstg",
        pipeline_url=None,
        workloads=[],
        app_version=None,
    )
    fields.update(overrides)
    return types.DeployContext(**fields)


def event(kind="test", message="a test event", **context_overrides):
    """An `Event`; `kind` an `EventKind` or its WIT name (`stage-failed`)."""
    if isinstance(kind, str):
        kind = types.EventKind[kind.upper().replace("-", "_")]
    return types.Event(
        kind=kind,
        deploy_id="deploy-1",
        timestamp="2026-01-01T00:00:00Z",
        context=context(**context_overrides),
        message=message,
    )
