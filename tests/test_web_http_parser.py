"""The web process parses HTTP with gunicorn's C parser when it is installed, and reads our
clients' requests exactly as the Python parser does."""

import importlib.util
import os

import pytest
from gunicorn.config import Config
from gunicorn.http.errors import LimitRequestHeaders
from gunicorn.http.parser import RequestParser

import app.observability.gunicorn_conf as web_settings

NATIVE_INSTALLED = importlib.util.find_spec("gunicorn_h1c") is not None

SINGLE_EVENT = (
    b"POST /api/v1/events HTTP/1.1\r\nHost: eye.example\r\nContent-Type: application/json\r\n"
    b"X-API-Key: eye_0123456789_secret\r\nContent-Length: 23\r\n\r\n"
    b'{"category": "p\xc3\xa4ge"}  '
)
CHUNKED_BATCH = (
    b"POST /api/v1/events/batch?x=%20y HTTP/1.1\r\nHost: eye.example\r\nTransfer-Encoding: chunked\r\n"
    b"Content-Type: application/json\r\n\r\n"
    b"b\r\n{\"events\": \r\n4\r\n[]}\n\r\n0\r\n\r\n"
)
KEEP_ALIVE_PAIR = (
    b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
    b"GET /api/v1/events?limit=2 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer eye_x_y\r\n\r\n"
)


def settings(parser: str) -> Config:
    """gunicorn's settings as `gunicorn --config python:app.observability.gunicorn_conf` loads them."""
    config = Config()
    for name, value in vars(web_settings).items():
        if name in config.settings:
            config.set(name, value)
    config.set("http_parser", parser)
    return config


def read_all(parser: str, raw: bytes) -> list[tuple]:
    requests = []
    for request in RequestParser(settings(parser), iter([raw]), ("127.0.0.1", 50000)):
        requests.append((request.method, request.path, request.query, request.version, request.headers,
                         request.body.read()))
    return requests


def test_our_settings_let_gunicorn_choose_the_c_parser():
    if not NATIVE_INSTALLED:
        if os.environ.get("EYE_REQUIRE_SERVICES") == "1":
            pytest.fail("gunicorn_h1c is not installed: `make` could not build requirements-native.txt")
        pytest.skip("gunicorn_h1c not installed (no C compiler): the Python parser serves")
    request = next(RequestParser(settings(web_settings.http_parser), iter([SINGLE_EVENT]), ("127.0.0.1", 1)))
    assert request._use_fast  # gunicorn's own flag: no setting of ours rules the C parser out


@pytest.mark.skipif(not NATIVE_INSTALLED, reason="gunicorn_h1c not installed")
@pytest.mark.parametrize("raw", [SINGLE_EVENT, CHUNKED_BATCH, KEEP_ALIVE_PAIR], ids=["single", "chunked", "pair"])
def test_both_parsers_read_our_requests_the_same(raw):
    fast, python = read_all("fast", raw), read_all("python", raw)
    assert fast == python
    assert len(fast) == raw.count(b" HTTP/1.1\r\n")


@pytest.mark.skipif(not NATIVE_INSTALLED, reason="gunicorn_h1c not installed")
@pytest.mark.parametrize("parser", ["fast", "python"])
def test_both_parsers_refuse_a_header_block_over_the_limit(parser):
    flood = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(200)) + b"\r\n"
    with pytest.raises(LimitRequestHeaders):
        read_all(parser, flood)
