"""The Phones panel under pytest-qt, against a real stack with its LAN listener on
127.0.0.2: LAN toggle, a QR code that decodes to the pairing link, a phone that pairs with
the shown code and is listed, and revoke."""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from skinapp.client import Client
from skinapp.gui.phones_state import PhonesState, qr_matrix
from skinapp.gui.qt_async import AsyncRunner
from skinapp.gui.qt_phones_panel import QtPhonesPanel
from skinapp.server import tls
from tests.utils.stack import LAN_HOST, lan_stack_on_loopback


def test_qr_matrix_is_square_with_a_quiet_zone() -> None:
    rows = qr_matrix("https://127.0.0.2:8443/phone#code=ABCD-EFGH")
    assert len(rows) >= 25 and all(len(r) == len(rows) for r in rows)
    assert not any(rows[0]) and not any(r[0] for r in rows)  # quiet zone
    assert rows[4][4] and rows[4][10]  # the finder pattern's corners are dark


@pytest.fixture(scope="module")
def lan_stack(tmp_path_factory: pytest.TempPathFactory, demo_models_dir: Path) -> Iterator[Any]:
    with lan_stack_on_loopback(tmp_path_factory.mktemp("phones-stack"), demo_models_dir) as running:
        yield running


@pytest.fixture
def panel(qtbot: Any, lan_stack: Any) -> Iterator[QtPhonesPanel]:
    runner = AsyncRunner()
    widget = QtPhonesPanel(PhonesState(), runner)
    qtbot.addWidget(widget)
    client = Client(lan_stack.api_url, lan_stack.admin_token, timeout=10)
    widget.set_client(client)
    yield widget
    runner.close()
    client.close()


def _phone(stack: Any) -> httpx.Client:
    cert = tls.load_certificate(stack.settings.resolved_data_dir)
    assert cert is not None
    context = ssl.create_default_context(cafile=str(cert.cert_path))
    return httpx.Client(base_url=f"https://{LAN_HOST}", verify=context, timeout=10)


@pytest.mark.stack
def test_lan_toggle_emits_and_a_saved_choice_does_not(qtbot: Any, panel: QtPhonesPanel) -> None:
    panel.set_lan_allowed(True)
    assert panel.allow.isChecked()
    with qtbot.waitSignal(panel.lan_toggled, timeout=2000) as blocker:
        panel.allow.click()
    assert blocker.args == [False]


@pytest.mark.stack
def test_the_panel_shows_a_code_a_phone_pairs_with_and_revokes_it(
    qtbot: Any, panel: QtPhonesPanel, lan_stack: Any, tmp_path: Path
) -> None:
    qtbot.waitUntil(lambda: panel.state.lan_url is not None, timeout=10_000)
    assert panel.state.lan_url.startswith(f"https://{LAN_HOST}:")  # type: ignore[union-attr]
    assert f"https://{LAN_HOST}:" in panel.address.text()
    cert = tls.load_certificate(lan_stack.settings.resolved_data_dir)
    assert cert is not None and cert.fingerprint in panel.fingerprint.text()

    panel.new_code.click()
    qtbot.waitUntil(lambda: panel.state.pairing is not None, timeout=10_000)
    pairing = panel.state.pairing
    assert pairing is not None and panel.code.text() == pairing.code
    assert panel.qr.matrix == qr_matrix(pairing.url)  # the QR holds the pairing link
    assert pairing.url.startswith(panel.state.lan_url + "/phone#code=" + pairing.code)  # type: ignore[operator]
    assert pairing.url.endswith("&fp=" + cert.fingerprint.replace(":", ""))

    port = panel.state.lan_url.rsplit(":", 1)[1]  # type: ignore[union-attr]
    with _phone(lan_stack) as phone:
        origin = f"https://{LAN_HOST}:{port}"
        paired = phone.post(
            f"{origin}/phone/pair", json={"code": pairing.code}, headers={"Origin": origin}
        )
        assert paired.status_code == 200, paired.text
        device_id = paired.json()["id"]
        panel.refresh()
        qtbot.waitUntil(lambda: any(d.id == device_id for d in panel.state.devices), timeout=10_000)
        row = next(i for i, d in enumerate(panel.state.devices) if d.id == device_id)
        model = panel.devices_model
        assert model.data(model.index(row, 0)) == "phone"
        assert model.data(model.index(row, 3)) == "127.0.0.1"

        panel.resize(720, 640)
        screenshots = Path(os.environ.get("SKINAPP_SCREENSHOT_DIR") or tmp_path)
        assert panel.grab().save(str(screenshots / "phones-panel.png"))
        panel.table.selectRow(row)
        panel.revoke.click()
        qtbot.waitUntil(lambda: all(d.id != device_id for d in panel.state.devices), timeout=10_000)
        assert phone.get(f"{origin}/phone/me").status_code == 401  # really revoked
