"""HTTP access with a token: what is protected, what stays open, and how the page keeps it.

Most tests drive the web app over a bare hub (``web_harness``); the TLS test
uses a real server, and the browser tests a real Chromium.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from camstream.server.transports import web
from camstream.server.transports.web import AUTH_FAILED_TEXT
from conftest import wait_state

if TYPE_CHECKING:
    from playwright.sync_api import Page, Request

TOKEN = "s3cret-Token_42"
PROTECTED = ("/stream.mjpg", "/snapshot.jpg", "/status")

Reply = tuple[int, dict[str, str], bytes]


def get(
    url: str,
    headers: dict[str, str] | None = None,
    *,
    context: ssl.SSLContext | None = None,
    timeout_s: float = 10,
) -> Reply:
    """(status, lower-cased headers, body), for error statuses too; not for streams."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, b""
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- the protected routes ------------------------------------------------------------


@pytest.mark.parametrize("path", PROTECTED)
def test_protected_routes_refuse_a_missing_or_wrong_token(web_harness: Any, path: str) -> None:
    harness = web_harness(token=TOKEN)
    harness.publish()
    attempts: list[tuple[str, dict[str, str]]] = [
        (path, {}),  # no token at all
        (path, bearer("wrong")),
        (path, bearer(TOKEN[:-1])),  # a prefix is not enough
        (path, bearer(TOKEN + "x")),
        (path, bearer("")),
        (path, {"Authorization": TOKEN}),  # no scheme
        (path, {"Authorization": f"Basic {TOKEN}"}),  # not our scheme
        (f"{path}?token=wrong", {}),
        (f"{path}?token=", {}),
        (f"{path}?token={TOKEN}", bearer("wrong")),  # a wrong header is not rescued
    ]
    for target, headers in attempts:
        status, reply_headers, body = get(harness.url + target, headers)
        assert status == 401, (target, headers)
        assert reply_headers["www-authenticate"] == 'Bearer realm="camstream"'
        assert reply_headers["content-type"].startswith("text/plain")
        assert body.decode().strip() == AUTH_FAILED_TEXT
        assert "no-store" in reply_headers["cache-control"]
    # What the refusal tells the user: that a token is needed and both ways to send
    # one, and nothing of the token itself.
    text = body.decode()
    assert "requires a token" in text and "Authorization: Bearer" in text and "?token=" in text
    assert TOKEN not in text and TOKEN[:4] not in text
    assert harness.viewer_count() == 0  # a refused stream never attached a viewer


def test_the_right_token_opens_every_route(web_harness: Any, open_mjpeg: Any) -> None:
    harness = web_harness(token=TOKEN)
    harness.status = {"capturing": True, "source": "fake", "viewers": []}
    frame = harness.publish()
    for query, headers in (("", bearer(TOKEN)), (f"?token={TOKEN}", {})):
        status, reply_headers, _ = get(f"{harness.url}/status{query}", headers)
        assert status == 200 and reply_headers["content-type"].startswith("application/json")
        with urllib.request.urlopen(
            urllib.request.Request(f"{harness.url}/snapshot.jpg{query}", headers=headers),
            timeout=10,
        ) as response:
            assert response.read() == frame.data
    # The scheme is case-insensitive (RFC 7235), and the query is percent-decoded.
    assert get(harness.url + "/status", {"Authorization": f"bearer  {TOKEN}"})[0] == 200
    assert get(harness.url + "/status?token=s3cret%2DToken%5F42")[0] == 200

    by_header = open_mjpeg(harness.port, request_headers=bearer(TOKEN))
    by_query = open_mjpeg(harness.port, f"/stream.mjpg?token={TOKEN}")
    assert by_header.status == by_query.status == 200
    harness.wait_viewers(2)
    sent = harness.publish()
    for reader in (by_header, by_query):
        headers, body = reader.read_part()
        if int(headers["x-frame-seq"]) == frame.seq:  # a new viewer may get the latest first
            headers, body = reader.read_part()
        assert body == sent.data


class _Secret(str):
    """A token that refuses early-exit comparisons.

    ``==`` on str or bytes stops at the first differing byte, so its duration tells
    an attacker how much of a guess was right. A check that uses it on this token
    (or on its encoded bytes) raises instead of answering.
    """

    def __eq__(self, other: object) -> bool:
        raise AssertionError("the token was compared with ==, which exits early")

    __ne__ = __eq__  # type: ignore[assignment]
    __hash__ = str.__hash__

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return _SecretBytes(str.encode(self, encoding, errors))


class _SecretBytes(bytes):
    def __eq__(self, other: object) -> bool:
        raise AssertionError("the token's bytes were compared with ==, which exits early")

    __ne__ = __eq__  # type: ignore[assignment]
    __hash__ = bytes.__hash__


def test_the_token_is_never_compared_with_an_early_exit() -> None:
    # A timing measurement cannot show this: over HTTP, or even around the check
    # itself, the parsing and copying cost far more than the comparison (a 4 MB
    # token: 5 ms of overhead, 0.3 ms of memcmp). So the token refuses ``==``.
    from aiohttp.test_utils import make_mocked_request

    secret = _Secret("pässwort")  # non-ASCII: compared as UTF-8 bytes

    def check(headers: dict[str, str], path: str = "/status") -> bool:
        return web.token_ok(make_mocked_request("GET", path, headers=headers), secret)

    assert check(bearer("pässwort"))
    assert check({}, "/status?token=p%C3%A4sswort")
    for wrong in ("nope", "pässworT", "pässwort2", "p"):
        assert not check(bearer(wrong))
        assert not check({}, f"/status?token={wrong}")


def test_a_non_ascii_token_works_over_http(web_harness: Any) -> None:
    harness = web_harness(token="pässwort")
    assert get(harness.url + "/status?token=nope")[0] == 401
    assert get(harness.url + "/status?token=p%C3%A4sswort")[0] == 200


def test_healthz_stays_open_and_tells_no_secrets(web_harness: Any) -> None:
    harness = web_harness(token=TOKEN)
    harness.status = {
        "capturing": True,
        "signal_lost": False,
        "source": "file /home/alice/private/cam.mp4",
        "viewers": [{"address": "10.1.2.3:5555"}],
    }
    harness.publish()
    status, _, _ = get(harness.url + "/healthz")
    assert status == 200
    with urllib.request.urlopen(harness.url + "/healthz", timeout=10) as response:
        body = json.loads(response.read())
    # Only "up": not whether anyone watches, nor how old the newest frame is.
    assert body == {"ok": True, "state": "up"}

    harness.end("cannot read /home/alice/private/cam.mp4: permission denied")
    status, _, raw = get(harness.url + "/healthz")
    assert status == 503
    assert json.loads(raw) == {"ok": False, "state": "down"}
    assert b"alice" not in raw and b"10.1.2.3" not in raw


def test_the_page_and_its_assets_stay_open(web_harness: Any) -> None:
    harness = web_harness(token=TOKEN)
    with urllib.request.urlopen(harness.url + "/", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Referrer-Policy"] == "no-referrer"
        page = response.read()
    assert b'<meta name="referrer" content="no-referrer">' in page
    assert b'id="auth"' in page and b'type="password"' in page
    for path in ("/app.js", "/app.css"):
        assert get(harness.url + path)[0] == 200


def test_without_a_configured_token_nothing_is_asked(web_harness: Any) -> None:
    harness = web_harness()
    harness.publish()
    for path in ("/status", "/snapshot.jpg"):
        assert get(harness.url + path)[0] == 200
        assert get(harness.url + path, bearer("anything"))[0] == 200


# -- HTTPS -------------------------------------------------------------------------------


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1: ``(cert_path, key_path)``."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    command = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    command += ["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
    command += ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        command,
        check=True,
        capture_output=True,
        timeout=30,
    )
    return str(cert), str(key)


def test_https_stream_needs_the_token_and_keeps_flowing(
    running_server: Any, certificate: tuple[str, str]
) -> None:
    """Over TLS the MJPEG handler's flow control must not stall (it once did after two parts)."""
    cert, key = certificate
    server = running_server(
        "test", fps=20, width=320, height=240, token=TOKEN, tls_cert=cert, tls_key=key
    )
    assert server.http_url.startswith("https://")
    context = ssl.create_default_context(cafile=cert)
    assert get(server.http_url + "stream.mjpg", context=context)[0] == 401
    request = urllib.request.Request(server.http_url + "stream.mjpg", headers=bearer(TOKEN))
    parts, started = 0, time.monotonic()
    with urllib.request.urlopen(request, timeout=5, context=context) as response:
        while parts < 15:
            chunk = response.read1(65536)
            assert chunk, "the stream ended"
            parts += chunk.count(b"\r\nX-Frame-Seq: ")
    assert time.monotonic() - started < 5


# -- the page in a browser ----------------------------------------------------------


def record_requests(page: Page) -> list[Request]:
    requests: list[Request] = []

    # A def, not requests.append: Playwright cannot wrap a builtin method.
    def record(request: Request) -> None:
        requests.append(request)

    page.on("request", record)
    return requests


@pytest.mark.browser
def test_page_takes_the_token_from_the_fragment_and_never_puts_it_in_a_url(
    web_harness: Any, page: Page
) -> None:
    harness = web_harness(auto_fps=10, token=TOKEN)
    harness.status = {"capturing": True, "signal_lost": False, "viewer_count": 1}
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    requests = record_requests(page)
    page.goto(f"{harness.url}/#token={TOKEN}")
    wait_state(page, "live")
    # /status was fetched with the token too (it shows the viewer count).
    page.wait_for_function("() => document.getElementById('viewers').textContent === '1'")
    href = page.evaluate("() => location.href")
    assert href == f"{harness.url}/", "the fragment is still in the address bar"
    assert page.evaluate("() => sessionStorage.getItem('camstream.token')") == TOKEN
    assert page.evaluate("() => localStorage.length") == 0
    assert page.context.cookies() == []

    # A reload finds the token in sessionStorage.
    page.reload()
    wait_state(page, "live")

    urls = [request.url for request in requests]
    assert any(url.endswith("/stream.mjpg") for url in urls), urls
    # The <img> fallback (?token=) is for browsers without streaming fetch: not this one.
    assert [url for url in urls if TOKEN in url] == []
    # The headers actually sent (``Request.headers`` shows an empty provisional one).
    assert [r.url for r in requests if r.all_headers().get("referer")] == []
    streams = [r for r in requests if r.url.endswith("/stream.mjpg")]
    assert all(r.all_headers().get("authorization") == f"Bearer {TOKEN}" for r in streams)
    assert problems == []


@pytest.mark.browser
def test_page_takes_the_token_from_the_query_that_the_401_page_names(
    web_harness: Any, page: Page
) -> None:
    harness = web_harness(auto_fps=10, token=TOKEN)
    page.goto(f"{harness.url}/?view=1&token={TOKEN}")
    wait_state(page, "live")
    # The token leaves the address bar; other query fields stay.
    assert page.evaluate("() => location.href") == f"{harness.url}/?view=1"
    assert page.evaluate("() => sessionStorage.getItem('camstream.token')") == TOKEN


@pytest.mark.browser
def test_page_without_the_token_asks_for_it(web_harness: Any, page: Page) -> None:
    harness = web_harness(auto_fps=10, token=TOKEN)
    requests = record_requests(page)
    page.goto(harness.url + "/")
    wait_state(page, "auth")
    assert page.is_visible("#auth")
    assert page.text_content("#auth-error") == ""
    assert page.evaluate("() => document.activeElement.id") == "token"

    page.fill("#token", "not-it")
    page.press("#token", "Enter")
    page.wait_for_function("() => document.getElementById('auth-error').textContent !== ''")
    assert page.text_content("#auth-error") == "wrong token"
    assert page.evaluate("() => sessionStorage.getItem('camstream.token')") is None

    page.fill("#token", TOKEN)
    page.click("#auth button[type=submit]")
    wait_state(page, "live")
    assert not page.is_visible("#auth")
    assert [r.url for r in requests if TOKEN in r.url or "not-it" in r.url] == []


@pytest.mark.browser
def test_page_with_a_wrong_fragment_token_says_so(web_harness: Any, page: Page) -> None:
    harness = web_harness(token=TOKEN)
    page.goto(f"{harness.url}/#token=guess")
    wait_state(page, "auth")
    assert page.text_content("#auth-error") == "wrong token"
    assert page.evaluate("() => location.href") == f"{harness.url}/"
