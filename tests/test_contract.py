"""The shared contract: states, risk order, analysis options and the one image-admission check.

Hostile files come from `tests/utils/hostile.py`; each is refused with the same words by the
API's check (`check_upload`) and by the workers' decode (`decode_image`).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from skinapp.contract import (
    RISK_LEVELS,
    RISK_RANK,
    RUNNING,
    STATES,
    TERMINAL,
    AnalysisOptions,
    public_contract,
    risk_rank,
)
from skinapp.contract import images as admission
from skinapp.contract.options import form_schema
from skinapp.errors import InvalidImage, InvalidRequest
from skinapp.models.imaging import decode_image
from skinapp.models.options import parse_options
from tests.models import factories
from tests.utils import hostile
from tests.utils.images import bomb_png, encode, lesion_jpeg, png_bytes, truncated_jpeg
from tests.utils.imports import modules_after

REPO = Path(__file__).resolve().parents[1]
LIMIT = 120_000_000


# --- states and risk order -------------------------------------------------------------
def test_states_are_the_seeds_and_every_layer_uses_the_same_objects() -> None:
    from skinapp import client
    from skinapp.gui import jobs_state
    from skinapp.tasks import jobs

    assert STATES == ("PENDING", "STARTED", "PROGRESS", "RETRY", "SUCCESS", "FAILURE", "REVOKED")
    assert sorted(TERMINAL) == ["FAILURE", "REVOKED", "SUCCESS"]
    assert sorted(RUNNING) == ["PROGRESS", "STARTED"]
    assert jobs.STATES is STATES and jobs.TERMINAL is TERMINAL and jobs.RUNNING is RUNNING
    assert client.TERMINAL_STATES is TERMINAL and jobs_state.TERMINAL is TERMINAL
    assert public_contract() == {
        "states": list(STATES),
        "terminal": ["SUCCESS", "FAILURE", "REVOKED"],
        "running": ["STARTED", "PROGRESS"],
        "risk_levels": ["low", "medium", "high"],
    }


def test_the_risk_order_is_one_order_in_every_layer() -> None:
    from skinapp.gui import jobs_state
    from skinapp.headless.records import SUCCESS, Record, sort_key
    from skinapp.models import risk

    assert RISK_LEVELS == ("low", "medium", "high")
    assert [risk_rank(level) for level in (None, "low", "medium", "high", "bogus")] == [
        0,
        1,
        2,
        3,
        0,
    ]
    assert risk.RISK_ORDER is RISK_RANK and jobs_state.RISK_ORDER is RISK_RANK
    assert risk.highest_risk(["low", None, "high", "medium"]) == "high"
    assert risk.highest_risk([None, "low"]) == "low"
    rows = [
        Record(path=f"{level}.jpg", sha256="", analysis="x", status=SUCCESS, risk_level=level)
        for level in ("low", None, "high", "medium")
    ]
    # Reports list the most urgent first, unassessed last: the same order, read backwards.
    assert [r.risk_level for r in sorted(rows, key=sort_key)] == ["high", "medium", "low", None]


# --- analysis options -------------------------------------------------------------------
BAD_FIELDS = [
    (
        {"body_location": "arm; DROP TABLE"},
        "body_location must be up to 64 letters, spaces or hyphens, not 'arm; DROP TABLE'",
    ),
    ({"enable_multimodal": "maybe"}, "enable_multimodal must be true or false, not 'maybe'"),
    ({"pixel_spacing_mm": "0"}, "pixel_spacing_mm must be a number above 0, not '0'"),
    ({"microns_per_pixel": "nan"}, "microns_per_pixel must be a number above 0, not 'nan'"),
    ({"microns_per_pixel": "wide"}, "microns_per_pixel must be a number, not 'wide'"),
    ({"age": "121"}, "age must be between 0 and 120, not 121"),
    ({"age": "ten"}, "age must be a whole number of years, not 'ten'"),
    ({"age": True}, "age must be a whole number of years, not True"),
    ({"age": 4.5}, "age must be a whole number of years, not 4.5"),
    ({"sex": "other"}, "sex must be one of male, female, unknown, not 'other'"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_FIELDS)
def test_bad_options_get_the_same_words_at_the_api_and_in_the_models(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidRequest) as at_api:
        AnalysisOptions.from_fields(fields)
    with pytest.raises(InvalidRequest) as in_models:
        parse_options(fields)
    assert str(at_api.value) == str(in_models.value) == message


def test_form_text_and_typed_values_mean_the_same() -> None:
    from_form = AnalysisOptions.from_fields(
        {"age": " 42 ", "enable_multimodal": "on", "sex": "MALE", "pixel_spacing_mm": "0.05"}
    )
    typed = AnalysisOptions.from_fields(
        {"age": 42, "enable_multimodal": True, "sex": "male", "pixel_spacing_mm": 0.05}
    )
    assert from_form == typed
    assert from_form.given() == {
        "age": 42,
        "enable_multimodal": True,
        "sex": "male",
        "pixel_spacing_mm": 0.05,
    }
    opts = parse_options({"body_location": "  left   arm ", "note": "kept in context"})
    assert opts.body_location == "left arm" and opts.enable_multimodal is False
    assert opts.context == {"body_location": "  left   arm ", "note": "kept in context"}


def test_the_upload_form_in_openapi_is_the_options_schema() -> None:
    from skinapp.server.forms import UPLOAD_DOC

    schema = UPLOAD_DOC["requestBody"]["content"]["multipart/form-data"]["schema"]
    props = schema["properties"]
    assert set(props) == {"file", "files", *AnalysisOptions.model_fields}
    assert {name: props[name] for name in AnalysisOptions.model_fields} == form_schema()
    assert props["age"]["type"] == "integer" and props["age"]["maximum"] == 120
    assert props["sex"]["enum"] == ["male", "female", "unknown"]
    assert props["body_location"]["maxLength"] == 64
    assert props["pixel_spacing_mm"]["exclusiveMinimum"] == 0
    assert props["enable_multimodal"] == {
        "type": "boolean",
        "default": False,
        "description": AnalysisOptions.model_fields["enable_multimodal"].description,
    }
    assert "null" not in json.dumps(props)  # a form field is left out, never null


# --- the image-admission check ----------------------------------------------------------
def _refusal(data: bytes) -> tuple[str, str]:
    """The words of the API's check and of the worker's decode for the same bytes."""
    with pytest.raises(InvalidImage) as at_api:
        admission.check_upload(data, LIMIT)
    with pytest.raises(InvalidImage) as in_worker:
        decode_image(data, LIMIT)
    return str(at_api.value), str(in_worker.value)


HOSTILE = {
    "eps-named-jpg": (hostile.EPS, admission.UNREADABLE),
    "tga": (hostile.encoded("TGA"), admission.UNREADABLE),
    "pcx": (hostile.encoded("PCX"), admission.UNREADABLE),
    "sgi": (hostile.encoded("SGI"), admission.UNREADABLE),
    "im": (hostile.encoded("IM"), admission.UNREADABLE),
    "gif": (hostile.encoded("GIF"), admission.UNREADABLE),
    "ppm": (hostile.encoded("PPM"), admission.UNREADABLE),
    "zero-bytes": (b"", admission.EMPTY),
    "truncated-jpeg": (truncated_jpeg(), admission.DAMAGED),
    "truncated-png": (hostile.truncated(png_bytes((200, 200))), admission.DAMAGED),
    "8x8-png": (
        png_bytes((8, 8)),
        "The image is only 8x8 pixels; at least 16 px per side is needed.",
    ),
    "16-bit-10954-png": (
        hostile.sixteen_bit_grey_png(),
        "The image is 10954x10954 pixels in mode I;16: 229 MB once decoded, over the limit of "
        "192 MB. Send it at a lower resolution or as an 8-bit photo.",
    ),
    "30000-png": (
        hostile.huge_png(),
        "The image declares more pixels than can be opened safely, over the limit of "
        "120,000,000 pixels (possible decompression bomb).",
    ),
    # Damaged structure (issue 14): refused from the header walk, no pixel decoded.
    "jpeg-cut-before-eoi": (hostile.jpeg_cut_before_eoi(), admission.DAMAGED),
    "jpeg-without-quant-tables": (hostile.jpeg_without_quant_tables(), admission.DAMAGED),
    "jpeg-hierarchical": (hostile.jpeg_with_sof_marker(0xC5), admission.DAMAGED),
    "jpeg-sof-65535x65535": (
        hostile.jpeg_with_frame_size(65535, 65535),
        "The image declares more pixels than can be opened safely, over the limit of "
        "120,000,000 pixels (possible decompression bomb).",
    ),
    "jpeg-sof-20000x5000": (
        hostile.jpeg_with_frame_size(20000, 5000),
        "The image is 20000x5000 pixels in mode RGB: 286 MB once decoded, over the limit of "
        "192 MB. Send it at a lower resolution or as an 8-bit photo.",
    ),
    "jpeg-sof-8x8": (
        hostile.jpeg_with_frame_size(8, 8),
        "The image is only 8x8 pixels; at least 16 px per side is needed.",
    ),
    "png-bad-crc": (hostile.png_with_bad_crc(), admission.DAMAGED),
    "png-cut-in-idat": (hostile.png_cut_in_idat(), admission.DAMAGED),
    "png-without-iend": (hostile.png_without_iend(), admission.DAMAGED),
    # what Pillow's header parser would walk in Python, step by step: the walk refuses them
    "jpeg-1025-empty-segments": (hostile.jpeg_with_empty_segments(1025), admission.DAMAGED),
    "jpeg-250k-empty-segments": (hostile.jpeg_with_empty_segments(250_000), admission.DAMAGED),
    "jpeg-1mb-fill-bytes": (hostile.jpeg_with_fill_bytes(2**20), admission.DAMAGED),
    "png-4097-empty-chunks": (hostile.png_with_empty_text_chunks(4097), admission.DAMAGED),
    "png-80k-empty-chunks": (hostile.png_with_empty_text_chunks(80_000), admission.DAMAGED),
    "jpeg-24mb-junk": (
        hostile.jpeg_with_junk(24),
        "The file has 24.0 MB of data after the end of the picture that is not part of it. "
        "Save or export the photo again and send that file.",
    ),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_each_hostile_file_is_refused_with_the_same_words_at_api_and_worker(name: str) -> None:
    data, message = HOSTILE[name]
    assert _refusal(data) == (message, message)


@pytest.mark.parametrize("fmt", ["EPS", "TGA", "PCX", "SGI", "IM", "GIF", "PPM"])
def test_formats_off_the_list_are_ones_pillow_would_otherwise_open(fmt: str) -> None:
    # Without the allow-list Pillow takes each of them (EPS would go on to run Ghostscript).
    data = hostile.EPS if fmt == "EPS" else hostile.encoded(fmt)
    assert Image.open(io.BytesIO(data)).format == fmt


def test_the_eps_plugin_is_never_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import EpsImagePlugin

    opened: list[str] = []
    real_open = EpsImagePlugin.EpsImageFile._open

    def spy(self: EpsImagePlugin.EpsImageFile) -> None:
        opened.append("eps")
        real_open(self)

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", spy)
    with pytest.raises(InvalidImage):
        admission.check_upload(hostile.EPS, LIMIT)
    with pytest.raises(InvalidImage):
        decode_image(hostile.EPS, LIMIT)
    assert opened == []
    Image.open(io.BytesIO(hostile.EPS)).close()  # the spy sees an open without the list
    assert opened == ["eps"]


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [
        ("JPEG", "RGB"),
        ("PNG", "RGBA"),
        ("TIFF", "CMYK"),
        ("WEBP", "RGB"),
        ("BMP", "RGB"),
    ],
)
def test_the_formats_a_clinic_uses_are_admitted_and_decode(fmt: str, mode: str) -> None:
    data = hostile.encoded(fmt, (320, 240), mode)
    info = admission.check_upload(data, LIMIT)
    assert info.format == fmt and info.size == (320, 240)
    decoded = decode_image(data, LIMIT)
    assert decoded.image.mode == "RGB" and decoded.size == (320, 240)


def test_an_iphone_heic_is_admitted_and_decodes() -> None:
    data = hostile.heic()
    info = admission.check_upload(data, LIMIT)
    assert (info.format, info.size) == ("HEIF", (64, 48))
    arr = decode_image(data, LIMIT).to_array()
    assert arr.shape == (48, 64, 3)
    assert abs(int(arr[24, 32, 0]) - 90) < 12 and abs(int(arr[2, 2, 0]) - 224) < 12
    with pytest.raises(InvalidImage, match="damaged or truncated"):
        admission.check_upload(hostile.truncated(data, 0.6), LIMIT)


def test_what_phones_append_to_a_jpeg_is_admitted() -> None:
    for data in (hostile.mpo(512), hostile.motion_photo(2 * 2**20), lesion_jpeg() + b"\0" * 4096):
        assert admission.check_upload(data, LIMIT).size == (320, 240)
        assert decode_image(data, LIMIT).size == (320, 240)
    assert len(hostile.mpo(512)) > 100_000  # the secondary image is far above the slack
    with pytest.raises(InvalidImage, match="after the end of the picture"):
        admission.check_upload(hostile.mpo(64) + bytes(1 << 20), LIMIT)
    with pytest.raises(InvalidImage, match="after the end of the picture"):
        admission.check_upload(png_bytes((64, 64)) + bytes(1 << 20), LIMIT)


def test_the_end_of_a_jpeg_is_found_in_every_encoding() -> None:
    from skinapp.contract import containers
    from tests.utils.images import lesion_image

    def jpeg(**options: Any) -> bytes:
        buf = io.BytesIO()
        lesion_image().save(buf, "JPEG", **options)
        return buf.getvalue()

    plain = jpeg()
    app0_end = 4 + int.from_bytes(plain[4:6], "big")
    variants = {
        "baseline": plain,
        "progressive": jpeg(progressive=True),
        "restart markers": jpeg(restart_marker_rows=1),
        "stray bytes": plain[:app0_end] + b"\0\0\0" + plain[app0_end:],  # libjpeg skips them
    }
    for name, data in variants.items():
        assert containers.jpeg_primary_end(data) == len(data), name
        assert containers.jpeg_primary_end(data + b"tail") == len(data), name
        assert admission.check_upload(data, LIMIT).size == (320, 240), name
    assert containers.jpeg_primary_end(plain[:-2]) is None  # no EOI: cut off
    assert containers.jpeg_primary_end(b"\x89PNG") is None


def test_limits_are_arguments_and_one_min_side() -> None:
    from skinapp.models import imaging

    assert not hasattr(imaging, "MIN_SIDE") or imaging.MIN_SIDE is admission.MIN_SIDE
    side = admission.MIN_SIDE
    assert admission.check_upload(png_bytes((side, side)), LIMIT).size == (side, side)
    with pytest.raises(InvalidImage, match="at least 16 px"):
        admission.check_upload(png_bytes((side, side - 1)), LIMIT)
    rgb = png_bytes((100, 100))  # 30,000 decoded bytes
    assert admission.check_upload(rgb, LIMIT, max_decoded_bytes=30_000).decoded_bytes == 30_000
    with pytest.raises(InvalidImage, match="once decoded"):
        admission.check_upload(rgb, LIMIT, max_decoded_bytes=29_999)
    with pytest.raises(InvalidImage, match="over the limit of 9,999 pixels"):
        admission.check_upload(rgb, 9999)
    with pytest.raises(InvalidImage, match="decompression bomb"):
        admission.check_upload(bomb_png(), LIMIT)


def test_decoded_bytes_count_bands_and_sample_size() -> None:
    cases = {
        ("L", 8): 1,
        ("RGB", 8): 3,
        ("RGBA", 8): 4,
        ("I;16", 16): 2,
        ("CMYK", 8): 4,
    }
    for (mode, _), per_pixel in cases.items():
        img = Image.new(mode, (50, 40))
        assert admission.decoded_bytes(img) == 50 * 40 * per_pixel, mode


def test_the_api_check_decodes_no_pixel_of_a_jpeg_or_png(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import ImageFile

    decoded_at: list[tuple[str, tuple[int, int]]] = []
    real_load = ImageFile.ImageFile.load

    def spy(self: ImageFile.ImageFile) -> Any:
        decoded_at.append((str(self.format), self.size))
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    camera = factories.big_jpeg((4000, 3000))
    png = hostile.encoded("PNG", (640, 480))
    assert admission.check_upload(camera, LIMIT).size == (4000, 3000)
    assert admission.check_upload(hostile.mpo(512), LIMIT).size == (320, 240)
    assert admission.check_upload(png, LIMIT).size == (640, 480)
    assert decoded_at == []  # the structure walk proved them; only the workers decode
    assert admission.check_upload(hostile.encoded("TIFF", (64, 64)), LIMIT).size == (64, 64)
    assert {kind for kind, _ in decoded_at} == {"TIFF"}  # a TIFF still gets its decode


def test_the_header_walk_reads_what_pillow_reads() -> None:
    from skinapp.contract import headers
    from tests.utils.images import lesion_image

    for options in ({}, {"progressive": True}, {"restart_marker_rows": 1}, {"subsampling": 0}):
        buf = io.BytesIO()
        lesion_image((333, 222)).convert("L" if options == {} else "RGB").save(
            buf, "JPEG", **options
        )
        frame = headers.jpeg_frame(buf.getvalue())
        assert (frame.width, frame.height, frame.end) == (333, 222, len(buf.getvalue())), options
    for mode in ("1", "L", "P", "RGB", "RGBA", "I;16"):
        data = hostile.encoded("PNG", (40, 30), mode)
        assert headers.png_frame(data) == headers.Frame(40, 30, len(data)), mode
    with pytest.raises(headers.Unsound, match="no EOI"):
        headers.jpeg_frame(hostile.jpeg_cut_before_eoi())
    with pytest.raises(headers.Unsound, match="bad CRC"):
        headers.png_frame(hostile.png_with_bad_crc())
    with pytest.raises(headers.Unsound, match="never defined"):
        headers.jpeg_frame(hostile.jpeg_without_quant_tables())


# --- no float64 copy of a 16-bit image ----------------------------------------------------
_PROBE = """
import resource, sys
from tests.utils.hostile import zero_png
from skinapp.models.imaging import decode_image
side, full = int(sys.argv[1]), sys.argv[2] == "full"
data = zero_png(side, side, bit_depth=16)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
decoded = decode_image(data, 120_000_000, full_resolution=full)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) * 1024, decoded.image.size[0], decoded.image.mode)
"""


@pytest.mark.parametrize("full", [False, True], ids=["working", "full-resolution"])
def test_a_16_bit_png_costs_its_own_size_not_a_float64_copy(full: bool) -> None:
    side = 6000
    source = side * side * 2  # the decoded 16-bit image: 68.7 MiB
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(side), "full" if full else "work"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
        check=True,
    )
    grown, width, mode = out.stdout.split()
    assert mode == "RGB" and int(width) == (side if full else 512)
    # Measured: +80 MiB (working) and +243 MiB (full: source, 8-bit grey and RGB at Pillow's
    # 4 bytes a pixel). The float64 conversion it replaces took +893 MiB for this image.
    bound = source * 1.5 if not full else source * 4
    assert int(grown) < bound, f"peak grew {int(grown) / 2**20:.0f} MiB, bound {bound / 2**20:.0f}"


def test_the_contract_imports_no_framework() -> None:
    modules = modules_after("skinapp.contract", "skinapp.contract.images")
    banned = ("torch", "celery", "fastapi", "PySide6", "redis", "httpx")
    ours = ("skinapp.tasks", "skinapp.server", "skinapp.models", "skinapp.gui", "skinapp.stack")
    loaded = sorted(m for m in modules if m.split(".")[0] in banned or m.startswith(ours))
    assert loaded == []


def test_the_leading_bytes_of_each_admitted_format_name_its_type_and_suffix() -> None:
    from skinapp.contract.signatures import sniff

    picture = Image.new("RGB", (32, 32), (180, 120, 100))
    expected = {
        "JPEG": ("image/jpeg", ".jpg"),
        "PNG": ("image/png", ".png"),
        "TIFF": ("image/tiff", ".tif"),
        "WEBP": ("image/webp", ".webp"),
        "BMP": ("image/bmp", ".bmp"),
    }
    for fmt, (media, suffix) in expected.items():
        sig = sniff(encode(picture, fmt))
        assert sig is not None and (sig.media_type, sig.suffix) == (media, suffix), fmt
    heic = (Path(__file__).parent / "utils" / "lesion_64x48.heic").read_bytes()
    sig = sniff(heic)
    assert sig is not None and sig.media_type in {"image/heic", "image/heif"}
    assert sniff(b"GIF89a" + bytes(20)) is None and sniff(b"") is None


def test_a_walk_refuses_before_pillow_parses_and_real_oddities_stay_admitted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pillow's JPEG and PNG header parsers are Python loops: a file with a million steps
    for them is refused by the walk first, Pillow not asked at all. Files within the bounds
    (some fill bytes, a thousand segments, four thousand small chunks) are admitted."""
    from skinapp.contract import headers

    within = [
        hostile.jpeg_with_empty_segments(headers.MAX_JPEG_SEGMENTS - 10),
        hostile.jpeg_with_fill_bytes(headers.MAX_SKIPPED_BEFORE_SCAN - 1),
        hostile.png_with_empty_text_chunks(headers.MAX_PNG_SMALL_CHUNKS - 10),
    ]
    for data in within:
        assert admission.check_upload(data, LIMIT).size == Image.open(io.BytesIO(data)).size
    opened: list[int] = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(1) or real_open(*a, **k))
    for name in ("jpeg-250k-empty-segments", "jpeg-1mb-fill-bytes", "png-80k-empty-chunks"):
        with pytest.raises(InvalidImage, match="damaged"):
            admission.check_upload(HOSTILE[name][0], LIMIT)
    assert opened == []
