"""Exports of a result: the JSON as the API gave it, and a one-page PDF for the patient
record (image with overlay, findings, model card, disclaimer) via QTextDocument → QPdfWriter."""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import QMarginsF, QSizeF, QUrl
from PySide6.QtGui import QFont, QImage, QPageLayout, QPageSize, QPdfWriter, QTextDocument

from skinapp.gui import result_text as rt
from skinapp.gui.jobs_state import JobRecord
from skinapp.gui.qt_overlay import load_oriented, load_oriented_bytes, render_with_overlay

logger = logging.getLogger(__name__)

IMAGE_URL = QUrl("skinapp://report-image")
RISK_HTML_COLOURS = {"high": "#c62828", "medium": "#ef6c00", "low": "#2e7d32"}


def export_json(record: JobRecord, target: Path) -> None:
    body = {
        "job_id": record.job_id,
        "analysis": record.analysis,
        "status": record.status,
        "filenames": record.filenames,
        "result": record.result,
    }
    target.write_text(json.dumps(body, indent=2, ensure_ascii=False), encoding="utf-8")


def _rows(pairs: list[tuple[str, str]]) -> str:
    cells = "".join(
        f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(v)}</td></tr>" for k, v in pairs
    )
    return f"<table cellspacing='0' cellpadding='2'>{cells}</table>"


def _result_html(result: Mapping[str, Any]) -> str:
    level = str(result.get("risk_level") or "")
    colour = RISK_HTML_COLOURS.get(level, "#455a64")
    parts = [
        f"<p style='color:{colour}; font-size:14pt'><b>{html.escape(rt.risk_text(result))}</b></p>",
        f"<p>{html.escape(str(result.get('recommendation') or ''))}</p>",
        "<h3>Findings</h3>" + _rows(rt.findings(result) or [("Findings", "none reported")]),
    ]
    probs = rt.probabilities(result)[:6]
    if probs:
        parts.append(
            "<h3>Class probabilities</h3>" + _rows([(n, f"{p * 100:.1f} %") for n, p in probs])
        )
    warnings = rt.quality_warnings(result)
    if warnings:
        items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
        parts.append(f"<h3>Image quality</h3><ul>{items}</ul>")
    return "".join(parts)


def _batch_html(record: JobRecord, result: Mapping[str, Any]) -> str:
    parts = ["<h3>Batch summary</h3>" + _rows(rt.batch_summary(result))]
    rows = []
    for item in result.get("items") or []:
        index = int(item.get("index", 0))
        name = record.filenames[index] if index < len(record.filenames) else f"image {index + 1}"
        rows.append(rt.item_line(item, name))
    cells = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows[:30]
    )
    parts.append(
        "<h3>Images</h3><table cellpadding='2'><tr><th>File</th><th>Status</th>"
        f"<th>Risk</th><th>Finding</th></tr>{cells}</table>"
    )
    return "".join(parts)


def report_html(
    record: JobRecord,
    result: Mapping[str, Any],
    has_image: bool,
) -> str:
    demo = ""
    if result.get("demo"):
        demo = (
            "<p style='background:#b71c1c; color:white; font-size:15pt; padding:6px'>"
            f"<b>{html.escape(rt.DEMO_BANNER)}</b></p>"
        )
    image = f"<p><img src='{IMAGE_URL.toString()}' width='300'></p>" if has_image else ""
    body = _batch_html(record, result) if rt.is_batch(result) else _result_html(result)
    card_html = "<h3>Model</h3>" + _rows(rt.model_card(result))
    meta = _rows(
        [
            ("Files", ", ".join(record.filenames) or "—"),
            ("Analysis", record.analysis),
            ("Job", record.job_id),
            ("Processing time", rt.processing_time(result)),
            ("Report created", datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")),
        ]
    )
    disclaimer = f"<p style='font-size:8pt; color:#555'>{html.escape(rt.DISCLAIMER)}</p>"
    return f"<h2>Skin image analysis report</h2>{demo}{meta}{image}{body}{card_html}{disclaimer}"


def _report_image(
    record: JobRecord, result: Mapping[str, Any], fetched: bytes | None = None
) -> QImage:
    """The dropped file when there is one, else the image fetched from the API (a phone's)."""
    if rt.is_batch(result):
        return QImage()
    if record.local_paths and Path(record.local_paths[0]).exists():
        image = load_oriented(record.local_paths[0], 900)
    else:
        image = load_oriented_bytes(fetched, 900)
    return render_with_overlay(image, result.get("overlay")) if not image.isNull() else image


def export_pdf(record: JobRecord, target: Path, image_bytes: bytes | None = None) -> None:
    """One A4 page: the document is laid out to the page and its font shrunk until it fits.
    `image_bytes`: the image fetched from the API, for a job whose file is not on this disk."""
    result = record.result or {}
    image = _report_image(record, result, image_bytes)
    writer = QPdfWriter(str(target))
    writer.setTitle(f"skinapp report {record.job_id}")
    writer.setCreator("skinapp")
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
    writer.setPageMargins(QMarginsF(15, 15, 15, 15), QPageLayout.Unit.Millimeter)
    writer.setResolution(150)
    document = QTextDocument()
    if not image.isNull():
        document.addResource(QTextDocument.ResourceType.ImageResource, IMAGE_URL, image)
    document.setHtml(report_html(record, result, not image.isNull()))
    _fit_one_page(document, writer)
    document.print_(writer)


def _fit_one_page(document: QTextDocument, writer: QPdfWriter) -> None:
    # laid out on the writer itself, so points are points on paper, not on the screen
    document.documentLayout().setPaintDevice(writer)
    rect = writer.pageLayout().paintRectPixels(writer.resolution())
    document.setPageSize(QSizeF(rect.width(), rect.height()))
    size = 9.0
    while size > 5.0:
        font = QFont()
        font.setPointSizeF(size)
        document.setDefaultFont(font)
        if document.pageCount() <= 1:
            return
        size -= 0.5
