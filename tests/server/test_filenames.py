"""Uploaded file names become plain base names before anything stores or shows them."""

from __future__ import annotations

import pytest

from skinapp.client import Client
from skinapp.server.uploads import MAX_FILENAME_CHARS, safe_filename
from tests.utils.images import lesion_jpeg


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("mole.jpg", "mole.jpg"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\dr lee\\Pictures\\arm.jpg", "arm.jpg"),
        ("back\r\nInjected: yes.jpg", "backInjected: yes.jpg"),
        ("photo\u202egpj.exe", "photogpj.exe"),  # no right-to-left override
        ("<b style='color:red'>MELANOMA - HIGH RISK</b>.jpg", "b>.jpg"),
        ("  \x00\x07 ", "upload"),
        ("dir/", "upload"),
    ],
)
def test_a_name_is_reduced_to_a_printable_base_name(raw: str, kept: str) -> None:
    assert safe_filename(raw) == kept


def test_a_long_name_is_cut_to_255_characters() -> None:
    name = "é" * 300 + ".jpg"
    assert safe_filename(name) == "é" * MAX_FILENAME_CHARS


@pytest.mark.stack
def test_the_stored_job_carries_the_reduced_name(client: Client) -> None:
    # (a client library percent-encodes control characters itself; the unit test covers them)
    raw = "ward 3/" + "x" * 300 + "<i>lesion<i>.jpg"
    job = client.submit("binary-classify", (raw, lesion_jpeg(seed=77)))
    assert client.status(job["job_id"])["filenames"] == ["x" * MAX_FILENAME_CHARS]
    job = client.submit("binary-classify", ("ward 3/<i>lesion<i>.jpg", lesion_jpeg(seed=78)))
    assert client.status(job["job_id"])["filenames"] == ["<i>lesion<i>.jpg"]
