"""The phone page and pairing: a static page with no token in it, device tokens that see
only their own jobs, and `skinapp token pair` printing a link whose token works."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from skinapp.cli import main
from skinapp.client import Client
from skinapp.commands.pairing import pairing_url, pairing_warnings, terminal_qr
from skinapp.server.tokens import TokenStore
from tests.tasks.stackutil import server
from tests.utils.images import lesion_jpeg


def _lan() -> str:
    return "192.168.1.20"


def test_pairing_url_names_the_lan_address_when_bound_to_every_interface() -> None:
    url = pairing_url("http://127.0.0.1:8000", "0.0.0.0", "sk_a-b_c", _lan)
    assert url == "http://192.168.1.20:8000/phone#token=sk_a-b_c"
    assert pairing_warnings("0.0.0.0") == [] and pairing_warnings("::") == []


def test_pairing_url_keeps_a_specific_address_and_brackets_ipv6() -> None:
    assert (
        pairing_url("http://10.0.0.5:81", "10.0.0.5", "t", _lan)
        == "http://10.0.0.5:81/phone#token=t"
    )
    assert pairing_url("http://[::1]:81", "::1", "t", _lan) == "http://[::1]:81/phone#token=t"
    assert pairing_warnings("10.0.0.5") == []


def test_loopback_binding_warns_that_phones_cannot_reach_it() -> None:
    url = pairing_url("http://127.0.0.1:8000", "127.0.0.1", "t", _lan)
    assert url == "http://127.0.0.1:8000/phone#token=t"
    assert "skinapp serve --lan" in "\n".join(pairing_warnings("127.0.0.1"))
    assert pairing_warnings("localhost")


def test_terminal_qr_is_square_blocks() -> None:
    pytest.importorskip("qrcode")
    lines = (terminal_qr("http://192.168.1.20:8000/phone#token=sk_x") or "").splitlines()
    assert len(lines) > 10 and len({len(line) for line in lines}) == 1
    assert set("".join(lines)) <= set(" \u2580\u2584\u2588")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.stack
def test_phone_page_is_served_without_a_token_and_holds_none(stack: Any) -> None:
    page = httpx.get(f"{stack.api_url}/phone", timeout=10)
    script = httpx.get(f"{stack.api_url}/phone/phone.js", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for body in (page.text, script.text):
        assert stack.admin_token not in body and not re.search(r"sk_[\w-]{20}", body)
        assert "://" not in body  # no CDN, no external URL of any kind
    assert 'capture="environment"' in page.text and 'accept="image/*"' in page.text
    for analysis in ("binary-classify", "full-classify", "dermoscopy", "burn-classify"):
        assert f'value="{analysis}"' in page.text
    assert (
        "/jobs/submit/" in script.text and "Bearer" in script.text and "localStorage" in script.text
    )


@pytest.mark.stack
def test_a_paired_device_reads_its_own_job_but_not_an_admins(stack: Any, client: Client) -> None:
    token, _ = TokenStore(server(stack)).create("Dr Lee's phone", "device")
    admin_job = client.submit("binary-classify", ("desk.jpg", lesion_jpeg(seed=11)))
    # What the page sends: multipart `file` and `body_location`, the token as Bearer.
    submitted = httpx.post(
        f"{stack.api_url}/jobs/submit/binary-classify",
        files={"file": ("photo.jpg", lesion_jpeg(seed=12), "image/jpeg")},
        data={"body_location": "arm"},
        headers=_bearer(token),
        timeout=30,
    )
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]
    done = httpx.get(
        f"{stack.api_url}/jobs/result/{job_id}",
        params={"wait": "true", "timeout": "120"},
        headers=_bearer(token),
        timeout=130,
    )
    assert done.status_code == 200 and done.json()["status"] == "SUCCESS", done.text
    result = done.json()["result"]
    assert {"predicted_label", "confidence", "risk_level", "recommendation", "demo"} <= set(result)
    assert result["context"]["body_location"] == "arm"
    theirs = httpx.get(
        f"{stack.api_url}/jobs/status/{admin_job['job_id']}", headers=_bearer(token), timeout=10
    )
    assert theirs.status_code == 403 and theirs.json()["code"]


@pytest.mark.stack
def test_token_pair_prints_a_link_whose_fragment_code_pairs_once(
    stack: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Issue 12: the link carries a short-lived, single-use pairing code, not the token.
    monkeypatch.setenv("SKINAPP_DATA_DIR", str(stack.settings.resolved_data_dir))
    monkeypatch.setenv("SKINAPP_RUNTIME_DIR", str(stack.settings.resolved_runtime_dir))
    assert main(["token", "pair", "--name", "Dr Lee's phone"]) == 0
    out, err = capsys.readouterr()
    found = re.search(r"(http://\S+)/phone#code=([A-Z0-9-]+)", out)
    assert found, out
    base, code = found[1], unquote(found[2])
    assert base == stack.api_url  # the test stack binds loopback ...
    assert "skinapp serve --lan" in err  # ... so the command warns phones cannot reach it
    assert f"type the code: {code}" in out
    with httpx.Client(base_url=base, timeout=10) as phone:
        paired = phone.post("/phone/pair", json={"code": code})
        assert paired.status_code == 200, paired.text
        token = phone.cookies["skinapp_device"]
        assert phone.post("/phone/pair", json={"code": code}).status_code == 401  # once only
    record = TokenStore(server(stack)).verify(token)
    assert record and record["role"] == "device" and record["name"] == "Dr Lee's phone"
    mine = httpx.get(f"{base}/jobs/list", headers=_bearer(token), timeout=10)
    assert mine.status_code == 200 and mine.json()["total"] == 0
    assert httpx.get(f"{base}/phone", timeout=10).status_code == 200
