"""Outbound HTTP through the host: only to hosts the operator granted; redirects are followed and
re-checked by the host; bodies are capped by the plugin's response size limit.

    response = get(url, headers={"Accept": "application/json"})
    if response.ok:
        data = response.json()

A request that produced no response raises `HttpError` (`str()`: `denied: ...`, `timeout: ...`);
any HTTP status is a response (use `response.ok` or `response.raise_for_status()`).
"""

import json

from . import _host
from .errors import HttpStatusError, ResponseError

EXCERPT_CHARS = 200


class Headers:
    """Response headers: look-ups ignore case; repeated headers keep every value."""

    def __init__(self, pairs=()):
        self._pairs = [(str(name), str(value)) for name, value in pairs]

    def get(self, name, default=None):
        """The first value of header `name`, or `default`."""
        wanted = name.lower()
        for key, value in self._pairs:
            if key.lower() == wanted:
                return value
        return default

    def get_all(self, name):
        """Every value of header `name`, in order."""
        wanted = name.lower()
        return [value for key, value in self._pairs if key.lower() == wanted]

    def items(self):
        """The (name, value) pairs as received (names in lowercase)."""
        return list(self._pairs)

    def keys(self):
        return [key for key, _ in self._pairs]

    def __getitem__(self, name):
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name):
        return self.get(name) is not None

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        return len(self._pairs)

    def __eq__(self, other):
        if isinstance(other, Headers):
            return self._pairs == other._pairs
        if isinstance(other, dict):
            return {k.lower(): v for k, v in self._pairs} == {
                k.lower(): v for k, v in other.items()
            }
        return NotImplemented

    def __repr__(self):
        return f"Headers({self._pairs!r})"


class Response:
    """An HTTP response: `status` (int), `headers` (`Headers`), `body` (bytes)."""

    def __init__(self, status, headers=(), body=b"", method=None, url=None):
        self.status = int(status)
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = bytes(body)
        self.method = method
        self.url = url

    @property
    def ok(self):
        """True for a 2xx status."""
        return 200 <= self.status < 300

    def header(self, name, default=None):
        """The first value of header `name` (case-insensitive), or `default`."""
        return self.headers.get(name, default)

    def text(self):
        """The body decoded as UTF-8; `ResponseError` when it is not."""
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ResponseError(f"response body is not UTF-8 text: {e}") from None

    def json(self):
        """The body parsed as JSON; `ResponseError` (with a body excerpt) when it is not."""
        try:
            return json.loads(self.body)
        except ValueError as e:  # json.JSONDecodeError, UnicodeDecodeError
            raise ResponseError(f"response body is not JSON ({e}): {self.excerpt()}") from None

    def excerpt(self, max_chars=EXCERPT_CHARS):
        """The start of the body as one line of text, for messages (`…` when cut)."""
        return excerpt(self.body, max_chars)

    def raise_for_status(self):
        """Returns the response for a 2xx status; else raises `HttpStatusError`, e.g.
        `HTTP 503: upstream down` (status and body excerpt, never the URL)."""
        if self.ok:
            return self
        text = self.excerpt()
        message = f"HTTP {self.status}: {text}" if text else f"HTTP {self.status}"
        raise HttpStatusError(message, self)

    def __repr__(self):
        return f"<Response [{self.status}]>"


def excerpt(body, max_chars=EXCERPT_CHARS):
    """At most `max_chars` characters of `body` as one line (lossy UTF-8, whitespace collapsed)."""
    if isinstance(body, (bytes, bytearray)):
        body = bytes(body[: max_chars * 4]).decode("utf-8", errors="replace")
    line = " ".join(str(body).split())
    return line if len(line) <= max_chars else line[:max_chars] + "…"


def _header_pairs(headers):
    if headers is None:
        return []
    if isinstance(headers, (dict, Headers)):
        headers = headers.items()
    return [(str(name), str(value)) for name, value in headers]


def request(method, url, headers=None, body=None):
    """Sends one request (`GET`, `POST`, `PUT`, `PATCH`, `DELETE` or `HEAD`) and returns its
    `Response`. `headers`: a dict or (name, value) pairs; `body`: bytes or str (UTF-8)."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    elif body is not None:
        body = bytes(body)
    status, response_headers, response_body = _host.current().fetch(
        method, url, _header_pairs(headers), body
    )
    return Response(status, response_headers, response_body, method=method, url=url)


def get(url, headers=None):
    """`GET url`."""
    return request("GET", url, headers)


def post_json(url, value, headers=None):
    """`POST url` with `value` as a JSON body and `Content-Type: application/json` (unless
    `headers` sets one)."""
    pairs = _header_pairs(headers)
    if not any(name.lower() == "content-type" for name, _ in pairs):
        pairs.append(("Content-Type", "application/json"))
    body = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return request("POST", url, pairs, body)
