"""Phones on the clinic LAN: the HTTPS listener and its certificate, pairing codes, device
cookies, revocation of open streams, the Host allow-list and the failed-sign-in limit.

The LAN listener binds 127.0.0.2 (SKINAPP_LAN_HOST): no traffic leaves loopback. Clients
that must count as different phones bind their own source address (127.0.0.x).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import ssl
import stat
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509

from skinapp.cli import main
from skinapp.server import tls
from skinapp.server.auth_limits import FailedAuthLimiter, TooManyFailures
from skinapp.server.lan import read_lan_info
from skinapp.server.pairing import PairingStore
from skinapp.server.tokens import TokenStore
from skinapp.tasks.jobs import JobStore, NewJob
from tests.tasks.stackutil import server
from tests.utils.stack import LAN_HOST, lan_stack_on_loopback


# --- the certificate, without a stack -----------------------------------------------------
def test_certificate_is_made_once_with_a_private_key_and_the_lan_names(tmp_path: Path) -> None:
    made = tls.ensure_certificate(tmp_path, ["192.168.1.20", "clinic-ws.local"])
    assert stat.S_IMODE(made.key_path.stat().st_mode) == 0o600
    assert set(made.names) == {"192.168.1.20", "clinic-ws.local"}
    cert = x509.load_pem_x509_certificate(made.cert_path.read_bytes())
    assert tls.fingerprint_of(cert) == made.fingerprint and len(made.fingerprint) == 95
    again = tls.ensure_certificate(tmp_path, ["192.168.1.20"])
    assert again.fingerprint == made.fingerprint  # still good: not made again


def test_certificate_is_renewed_before_expiry_and_for_a_new_address(tmp_path: Path) -> None:
    first = tls.ensure_certificate(tmp_path, ["10.0.0.5"])
    late = first.not_after - tls.RENEW_BEFORE + dt.timedelta(days=1)
    renewed = tls.ensure_certificate(tmp_path, ["10.0.0.5"], now=late)
    assert renewed.fingerprint != first.fingerprint
    assert renewed.not_after > first.not_after
    moved = tls.ensure_certificate(tmp_path, ["10.0.0.9"])
    assert moved.fingerprint != renewed.fingerprint and "10.0.0.9" in moved.names


def test_failed_auth_limiter_refuses_the_eleventh_and_forgets_after_the_window() -> None:
    now = [100.0]
    limiter = FailedAuthLimiter(limit=10, window=60.0, clock=lambda: now[0])
    for _ in range(10):
        limiter.check("10.0.0.7")
        limiter.failed("10.0.0.7")
    with pytest.raises(TooManyFailures, match="wait 60 s"):
        limiter.check("10.0.0.7")
    limiter.check("10.0.0.8")  # another address is not affected
    now[0] += 60.5
    limiter.check("10.0.0.7")


# --- the LAN stack ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def lan_stack(tmp_path_factory: pytest.TempPathFactory, demo_models_dir: Path) -> Iterator[Any]:
    with lan_stack_on_loopback(tmp_path_factory.mktemp("lan-stack"), demo_models_dir) as running:
        yield running


def _lan_url(stack: Any) -> str:
    info = read_lan_info(stack.settings)
    assert info is not None and info.host == LAN_HOST
    return info.url


def _pinned_context(stack: Any) -> ssl.SSLContext:
    """Trust exactly this install's certificate (as a phone does after the person checked it)."""
    cert = tls.load_certificate(stack.settings.resolved_data_dir)
    assert cert is not None
    return ssl.create_default_context(cafile=str(cert.cert_path))


def _phone(stack: Any, source: str = "127.0.0.1") -> httpx.Client:
    transport = httpx.HTTPTransport(verify=_pinned_context(stack), local_address=source)
    return httpx.Client(base_url=_lan_url(stack), transport=transport, timeout=10)


def _admin(stack: Any) -> httpx.Client:
    return httpx.Client(
        base_url=stack.api_url,
        headers={"Authorization": f"Bearer {stack.admin_token}"},
        timeout=10,
    )


def _new_code(stack: Any, name: str = "Dr Lee's phone") -> dict[str, Any]:
    with _admin(stack) as admin:
        made = admin.post("/phone/pairings", json={"name": name})
    assert made.status_code == 201, made.text
    return made.json()  # type: ignore[no-any-return]


def _pair(phone: httpx.Client, code: str) -> httpx.Response:
    origin = str(phone.base_url).rstrip("/")
    return phone.post("/phone/pair", json={"code": code}, headers={"Origin": origin})


def _peer_fingerprint(host: str, port: int) -> str:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # we pin the fingerprint ourselves below
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as conn,
    ):
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    return tls.fingerprint_of_der(der)


@pytest.mark.stack
def test_https_listener_serves_the_certificate_whose_fingerprint_the_cli_prints(
    lan_stack: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SKINAPP_DATA_DIR", str(lan_stack.settings.resolved_data_dir))
    monkeypatch.setenv("SKINAPP_RUNTIME_DIR", str(lan_stack.settings.resolved_runtime_dir))
    assert main(["token", "pair", "--name", "ward phone"]) == 0
    out = capsys.readouterr().out
    printed = re.search(r"fingerprint: ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})", out)
    assert printed, out
    port = int(_lan_url(lan_stack).rsplit(":", 1)[1])
    assert _peer_fingerprint(LAN_HOST, port) == printed[1]
    link = re.search(r"(https://127\.0\.0\.2:\d+)/phone#code=([A-Z0-9-]{9})&fp=([0-9A-F]{64})", out)
    assert link and link[3] == printed[1].replace(":", ""), out
    with _phone(lan_stack, "127.0.0.21") as phone:
        assert phone.get("/phone").status_code == 200  # hostname checked against the SAN
        assert _pair(phone, link[2]).status_code == 200  # the printed code works once
    # The LAN listener is HTTPS only: plain HTTP on its port gets no HTTP answer.
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://{LAN_HOST}:{port}/jobs/health", timeout=5).raise_for_status()


@pytest.mark.stack
def test_a_pairing_code_works_once_and_its_cookie_is_httponly_secure_strict(
    lan_stack: Any,
) -> None:
    code = _new_code(lan_stack)["code"]
    with _phone(lan_stack, "127.0.0.22") as phone:
        paired = _pair(phone, code)
        assert paired.status_code == 200, paired.text
        cookie = paired.headers["set-cookie"].lower()
        assert "httponly" in cookie and "secure" in cookie and "samesite=strict" in cookie
        assert paired.json()["name"] == "Dr Lee's phone"
        me = phone.get("/phone/me")  # the cookie alone authenticates
        assert me.status_code == 200 and me.json()["id"] == paired.json()["id"]
        assert phone.get("/jobs/list").json()["total"] == 0
    with _phone(lan_stack, "127.0.0.23") as second:
        again = _pair(second, code)
        assert again.status_code == 401 and "used or expired" in again.json()["detail"]
    with _admin(lan_stack) as admin:
        devices = admin.get("/phone/devices").json()["devices"]
    mine = [d for d in devices if d["id"] == paired.json()["id"]]
    assert mine and mine[0]["address"] == "127.0.0.22" and mine[0]["last_seen"] > 0


@pytest.mark.stack
def test_an_expired_pairing_code_is_refused(lan_stack: Any) -> None:
    client = server(lan_stack)
    code = PairingStore(client, TokenStore(client), ttl=1).create("slow phone").code
    time.sleep(1.6)
    with _phone(lan_stack, "127.0.0.24") as phone:
        late = _pair(phone, code)
    assert late.status_code == 401 and late.json()["code"] == "unauthorized"


@pytest.mark.stack
def test_a_cookie_write_from_another_origin_is_refused(lan_stack: Any) -> None:
    with _phone(lan_stack, "127.0.0.25") as phone:
        assert _pair(phone, _new_code(lan_stack)["code"]).status_code == 200
        forged = phone.delete("/jobs/cancel/nope", headers={"Origin": "https://evil.example"})
        assert forged.status_code == 403
        missing = phone.delete("/jobs/cancel/nope")  # no Origin at all
        assert missing.status_code == 403


@pytest.mark.stack
def test_revoking_a_device_ends_its_open_event_stream_within_2_s(lan_stack: Any) -> None:
    ended: list[float] = []
    with _phone(lan_stack, "127.0.0.26") as phone:
        device = _pair(phone, _new_code(lan_stack)["code"]).json()

        def follow() -> None:
            with phone.stream("GET", "/jobs/events", timeout=30) as stream:
                for _ in stream.iter_lines():
                    pass
            ended.append(time.monotonic())

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        time.sleep(1.5)  # the stream is open and quiet
        assert not ended
        with _admin(lan_stack) as admin:
            revoked_at = time.monotonic()
            assert admin.delete(f"/phone/devices/{device['id']}").status_code == 200
        reader.join(timeout=10)
        assert ended, "the stream is still open 10 s after the revoke"
        assert ended[0] - revoked_at < 2.0
        assert phone.get("/phone/me").status_code == 401


def _parked_job(stack: Any, owner: str) -> str:
    """A job of `owner` that stays PENDING: recorded, never sent to a worker."""
    job_id = str(uuid.uuid4())
    new = NewJob(job_id, owner, "binary-classify", "analysis", ["a.jpg"], [])
    JobStore(server(stack), 3600).create(new)
    return job_id


@pytest.mark.stack
def test_revoking_a_device_ends_its_open_long_poll_within_2_s(lan_stack: Any) -> None:
    with _phone(lan_stack, "127.0.0.27") as phone:
        device = _pair(phone, _new_code(lan_stack)["code"]).json()
        job = _parked_job(lan_stack, device["id"])
        answers: list[tuple[int, float]] = []

        def wait() -> None:
            got = phone.get(f"/jobs/result/{job}", params={"wait": "true", "timeout": 30})
            answers.append((got.status_code, time.monotonic()))

        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        time.sleep(1.5)  # the long-poll is waiting on the PENDING job
        assert not answers
        with _admin(lan_stack) as admin:
            revoked_at = time.monotonic()
            assert admin.delete(f"/phone/devices/{device['id']}").status_code == 200
        waiter.join(timeout=10)
    assert answers, "the long-poll is still open 10 s after the revoke"
    assert answers[0][0] == 401 and answers[0][1] - revoked_at < 2.0


@pytest.mark.stack
def test_a_foreign_host_header_is_refused_on_both_listeners(lan_stack: Any) -> None:
    with _phone(lan_stack, "127.0.0.28") as phone:
        lan = phone.get("/jobs/health", headers={"Host": "evil.example"})
        good = phone.get("/jobs/health")
    local = httpx.get(
        f"{lan_stack.api_url}/jobs/health", headers={"Host": "rebind.example:8000"}, timeout=10
    )
    for refused in (lan, local):
        assert refused.status_code == 421 and refused.json()["code"] == "bad_host"
    assert good.status_code == 200
    assert good.headers["x-content-type-options"] == "nosniff"
    assert lan.headers["x-content-type-options"] == "nosniff"
    assert all("@" not in w for w in good.json()["workers"])  # no host names, anonymous
    assert good.json()["workers_available"] >= 1


@pytest.mark.stack
def test_docs_are_served_on_loopback_only(lan_stack: Any) -> None:
    with _phone(lan_stack, "127.0.0.29") as phone:
        assert phone.get("/docs").status_code == 404
        assert phone.get("/redoc").status_code == 404
    local = httpx.get(f"{lan_stack.api_url}/docs", timeout=10)
    assert local.status_code == 200 and local.headers["x-content-type-options"] == "nosniff"


@pytest.mark.stack
def test_the_eleventh_failed_sign_in_from_one_address_gets_429(lan_stack: Any) -> None:
    bad = {"Authorization": "Bearer sk_not-a-token"}
    with _phone(lan_stack, "127.0.0.30") as guesser, _phone(lan_stack, "127.0.0.31") as other:
        answers = [guesser.get("/jobs/list", headers=bad).status_code for _ in range(10)]
        assert answers == [401] * 10
        eleventh = guesser.get("/jobs/list", headers=bad)
        assert eleventh.status_code == 429
        assert "too many failed sign-ins" in eleventh.json()["detail"]
        # Even a right token waits now, and a wrong pairing code is refused the same way.
        good = {"Authorization": f"Bearer {lan_stack.admin_token}"}
        assert guesser.get("/jobs/list", headers=good).status_code == 429
        assert _pair(guesser, "AAAA-AAAA").status_code == 429
        # Another address is not affected.
        assert other.get("/jobs/list", headers=good).status_code == 200


# --- a real browser ---------------------------------------------------------------------
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: Where the browser test leaves its screenshots: a temp dir, or docs/screenshots when
#: SKINAPP_SCREENSHOT_DIR says so (to refresh the README pictures), never the tree by default.
SCREENSHOTS = Path(os.environ.get("SKINAPP_SCREENSHOT_DIR") or tempfile.mkdtemp(prefix="shots-"))


@pytest.fixture
def browser(lan_stack: Any) -> Iterator[Any]:
    """Headless Chromium that trusts exactly this install's key (by its SPKI hash)."""
    if not CHROMEDRIVER.exists():
        pytest.skip("no system chromedriver (Debian packages chromium and chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    cert = tls.load_certificate(lan_stack.settings.resolved_data_dir)
    assert cert is not None
    options = webdriver.ChromeOptions()
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--no-proxy-server",
        "--window-size=360,900",
        f"--ignore-certificate-errors-spki-list={cert.spki_sha256}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _visible(driver: Any, element_id: str) -> bool:
    element = driver.find_element("id", element_id)
    return bool(element.is_displayed())


@pytest.mark.stack
def test_a_browser_pairs_by_link_uploads_a_photo_and_reads_the_result(
    browser: Any, lan_stack: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from tests.utils.images import lesion_jpeg

    made = _new_code(lan_stack, "browser phone")
    browser.get(made["url"])  # https://127.0.0.2:<port>/phone#code=...&fp=...
    wait = WebDriverWait(browser, 30)
    wait.until(lambda d: _visible(d, "pair-form"))
    assert browser.find_element("id", "fingerprint").text == made["fingerprint"]
    assert "#code" not in browser.current_url  # the code left the address bar
    SCREENSHOTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "phone-pairing.png"))
    browser.find_element("id", "pair").click()
    wait.until(lambda d: _visible(d, "form"))
    assert "browser phone" in browser.find_element("id", "pairing").text

    photo = tmp_path / "lesion.jpg"
    photo.write_bytes(lesion_jpeg(seed=7))
    browser.find_element("id", "photo").send_keys(str(photo))
    Select(browser.find_element("id", "analysis")).select_by_value("binary-classify")
    Select(browser.find_element("id", "location")).select_by_visible_text("arm")
    browser.find_element("id", "send").click()
    WebDriverWait(browser, 120).until(lambda d: _visible(d, "result"))
    label = browser.find_element("id", "label").text
    job_id = browser.find_element("id", "meta").text.rsplit("job ", 1)[1]
    with _admin(lan_stack) as admin:
        job = admin.get(f"/jobs/status/{job_id}").json()
    assert job["status"] == "SUCCESS"
    assert label == (job["result"].get("predicted_label") or "—")
    assert _visible(browser, "demo") == bool(job["result"].get("demo"))
    wait.until(lambda d: _visible(d, "jobs-card"))  # this device's last jobs
    browser.save_screenshot(str(SCREENSHOTS / "phone-result.png"))
    browser.set_window_size(1200, 900)
    browser.save_screenshot(str(SCREENSHOTS / "phone-result-desktop.png"))


def test_serve_lan_keeps_loopback_plain_and_adds_the_lan_listener() -> None:
    from skinapp.commands.stack_cmds import _register_serve, _serve_settings

    parser = __import__("argparse").ArgumentParser()
    _register_serve(parser.add_subparsers())
    settings = _serve_settings(parser.parse_args(["serve", "--lan", "--port", "0"]))
    assert settings.lan is True and settings.host == "127.0.0.1" and settings.port == 0
    assert _serve_settings(parser.parse_args(["serve"])).lan is False


def test_host_allow_list_takes_loopback_and_the_lan_names_only() -> None:
    from skinapp.server.edges import EdgeMiddleware, host_name

    assert host_name("Example.Local:8443") == "example.local"
    assert host_name("[::1]:8000") == "::1" and host_name("10.0.0.5") == "10.0.0.5"
    edge = EdgeMiddleware(lambda *a: None, lan_names=["192.168.1.20", "ws-3.local"])  # type: ignore[arg-type]
    for host in ("127.0.0.1:8000", "localhost", "[::1]:1", "192.168.1.20:8443", "WS-3.local"):
        assert edge.host_allowed(host, lan=True), host
    for host in ("evil.example", "192.168.1.21:8443", "127.0.0.1.evil.example", ""):
        assert not edge.host_allowed(host, lan=True), host
    assert edge.host_allowed(None, lan=False) and not edge.host_allowed(None, lan=True)
