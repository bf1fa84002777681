import pytest

import tagship_plugin as tp
from tagship_plugin import _host
from tagship_plugin.testing import FakeHost, http_error, respond


def test_without_a_host_the_error_says_how_to_fake_one():
    with pytest.raises(RuntimeError, match="FakeHost"):
        tp.config("url")


def test_config_and_secrets():
    with FakeHost(config={"url": "http://x/", "blank": "  "}, secrets={"TOKEN": "s3cr3t", "EMPTY": ""}):
        assert tp.config("url") == "http://x/"
        assert tp.config("nope") is None
        assert tp.config_or("blank", "dflt") == "dflt"
        assert tp.require_config("url") == "http://x/"
        with pytest.raises(tp.ConfigError) as missing:
            tp.require_config("blank")
        assert str(missing.value) == "missing config key `blank`: set it under [plugins.NAME.config]"
        assert tp.secret("TOKEN") == "s3cr3t"
        assert tp.secret("EMPTY") is None
        with pytest.raises(tp.ConfigError, match="--secret GITLAB_TOKEN"):
            tp.require_secret("GITLAB_TOKEN")


def test_log_helpers_reach_the_host_with_their_level():
    with FakeHost() as host:
        tp.log.info("GET %s answered %d", "http://x/", 200)
        tp.warn("careful")
        tp.error("broken", "extra")  # not a %-format: appended
        tp.log.debug("100% sure")
    assert host.logs == [
        ("info", "GET http://x/ answered 200"),
        ("warn", "careful"),
        ("error", "broken extra"),
        ("debug", "100% sure"),
    ]


def test_get_returns_status_headers_body_text_and_json():
    with FakeHost(responses={"http://x/": respond(200, '{"status": "ok"}', headers={"X-Version": "v3"})}) as host:
        response = tp.get("http://x/", headers={"Accept": "application/json"})
    assert response.status == 200 and response.ok
    assert response.headers["x-version"] == "v3"
    assert response.headers.get("X-VERSION") == "v3"
    assert response.header("missing") is None
    assert response.body == b'{"status": "ok"}'
    assert response.text() == '{"status": "ok"}'
    assert response.json() == {"status": "ok"}
    assert response.raise_for_status() is response
    assert host.requests[0].headers == [("Accept", "application/json")]
    assert host.requests[0].body is None


def test_post_json_sends_json_with_its_content_type():
    with FakeHost(responses={("POST", "http://x/hook"): 204}) as host:
        response = tp.post_json("http://x/hook", {"text": "déployé"}, headers=[("X-Id", "1")])
    assert response.status == 204
    sent = host.requests[0]
    assert sent.method == "POST"
    assert sent.header("content-type") == "application/json"
    assert sent.header("x-id") == "1"
    assert sent.json() == {"text": "déployé"}


def test_a_non_2xx_answer_is_a_response_and_raise_for_status_names_status_and_body():
    with FakeHost(responses={"http://x/": respond(503, "  upstream\n down ")}):
        response = tp.get("http://x/")
    assert not response.ok
    with pytest.raises(tp.HttpStatusError) as failure:
        response.raise_for_status()
    assert str(failure.value) == "HTTP 503: upstream down"
    assert failure.value.status == 503


def test_bodies_that_are_not_text_or_json_raise_clear_errors():
    response = tp.Response(200, [], b"\xff\xfe<html>")
    with pytest.raises(tp.ResponseError, match="not UTF-8 text"):
        response.text()
    with pytest.raises(tp.ResponseError, match="not JSON"):
        tp.Response(200, [], b"<html>oops</html>").json()


def test_excerpts_are_one_line_and_marked_when_cut():
    assert tp.Response(200, [], b"a" * 300).excerpt(10) == "a" * 10 + "…"


def test_host_errors_become_http_errors_with_a_one_line_description():
    with FakeHost(responses={"http://slow/": http_error("timeout", "no answer within 10 s")}):
        with pytest.raises(tp.HttpError) as failure:
            tp.get("http://slow/")
    assert str(failure.value) == "timeout: no answer within 10 s"
    assert (failure.value.kind, failure.value.method, failure.value.url) == ("timeout", "GET", "http://slow/")
    with FakeHost():
        with pytest.raises(tp.HttpError, match="^denied: GET http://elsewhere/"):
            tp.get("http://elsewhere/")


@pytest.mark.parametrize(
    "case, kind, text",
    [
        ("HttpError_Denied", "denied", "denied: nope"),
        ("HttpError_InvalidRequest", "invalid-request", "invalid request: nope"),
        ("HttpError_Timeout", "timeout", "timeout: nope"),
        ("HttpError_TooLarge", "too-large", "response too large: nope"),
        ("HttpError_Connection", "connection", "connection failed: nope"),
    ],
)
def test_each_wit_http_error_case_maps_to_a_kind(case, kind, text):
    wit_value = type(case, (), {"__init__": lambda self, v: setattr(self, "value", v)})("nope")
    error = _host.http_error_from_wit(wit_value, "GET", "http://x/")
    assert (error.kind, str(error)) == (kind, text)
