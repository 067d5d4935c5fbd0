"""One job's result: image with overlay, probabilities, risk and recommendation, quality
warnings, model card with a DEMO banner that cannot be missed, exports. A batch shows its
summary first, then each image."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import QRectF, QSettings, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QPainter,
    QPaintEvent,
    QStandardItem,
    QStandardItemModel,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from skinapp.gui import result_text as rt
from skinapp.gui.image_fetch import ImageFetcher
from skinapp.gui.jobs_state import JobRecord, JobStore
from skinapp.gui.qt_overlay import QtOverlayImage, load_oriented, load_oriented_bytes
from skinapp.gui.qt_report import export_json, export_pdf

logger = logging.getLogger(__name__)

RISK_BACKGROUNDS = {"high": "#c62828", "medium": "#ef6c00", "low": "#2e7d32"}


class QtProbabilityChart(QWidget):
    """Horizontal bars, highest first; palette colours so dark mode reads well."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bars: list[tuple[str, float]] = []

    def set_bars(self, bars: list[tuple[str, float]]) -> None:
        self.bars = bars[:8]
        self.setFixedHeight(22 * len(self.bars) + 4 if self.bars else 0)
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        metrics = painter.fontMetrics()
        label_w = min(
            max((metrics.horizontalAdvance(n) for n, _p in self.bars), default=0) + 8,
            self.width() * 2 // 5,
        )
        bar_w = self.width() - label_w - 60
        highlight = self.palette().highlight().color()
        for i, (name, p) in enumerate(self.bars):
            y = 2 + i * 22
            painter.setPen(self.palette().text().color())
            painter.drawText(
                QRectF(0, y, label_w - 6, 20),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                metrics.elidedText(name, Qt.TextElideMode.ElideMiddle, label_w - 6),
            )
            painter.fillRect(
                QRectF(label_w, y + 3, max(1.0, bar_w * p), 14),
                highlight if i == 0 else QColor(highlight).lighter(150),
            )
            painter.drawText(
                QRectF(label_w + bar_w + 4, y, 56, 20),
                Qt.AlignmentFlag.AlignVCenter,
                f"{p * 100:.1f} %",
            )


def _label(parent: QWidget, *, wrap: bool = True, selectable: bool = True) -> QLabel:
    label = QLabel(parent)
    # User-supplied text (file names, body sites) is shown as written, never as markup.
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(wrap)
    if selectable:
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class QtSingleResult(QWidget):
    """The body of one image's result (also used for each image of a batch)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.image = QtOverlayImage(self)
        self.risk = _label(self)
        self.risk.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.recommendation = _label(self)
        self.chart = QtProbabilityChart(self)
        self.findings = QFormLayout()
        self.warnings = _label(self)
        self.warnings.setStyleSheet("color: #ef6c00;")
        self.timing = _label(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.image, 3)
        layout.addWidget(self.risk)
        layout.addWidget(self.recommendation)
        layout.addWidget(self.chart)
        layout.addLayout(self.findings)
        layout.addWidget(self.warnings)
        layout.addWidget(self.timing)

    def show_result(self, result: Mapping[str, Any], image_path: Path | None) -> None:
        self.image.set_image(load_oriented(image_path), result.get("overlay"))
        level = str(result.get("risk_level") or "")
        background = RISK_BACKGROUNDS.get(level, "palette(mid)")
        self.risk.setText(rt.risk_text(result))
        self.risk.setStyleSheet(
            f"background: {background}; color: white; font-weight: bold; padding: 6px; border-radius: 4px;"
        )
        self.recommendation.setText(str(result.get("recommendation") or ""))
        self.chart.set_bars(rt.probabilities(result))
        _fill_form(self.findings, rt.findings(result), self)
        warnings = rt.quality_warnings(result)
        self.warnings.setText("\n".join(f"⚠ {w}" for w in warnings))
        self.warnings.setVisible(bool(warnings))
        self.timing.setText(f"Processing time: {rt.processing_time(result)}")


def _fill_form(form: QFormLayout, rows: list[tuple[str, str]], parent: QWidget) -> None:
    while form.rowCount():
        form.removeRow(0)
    for key, value in rows:
        label = _label(parent)
        label.setText(value)
        form.addRow(f"{key}:", label)


class QtResultView(QWidget):
    """Shows the current job; follows the store so a job that finishes fills in by itself."""

    notify = Signal(str, str)

    def __init__(
        self,
        store: JobStore,
        settings: QSettings,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self._settings = settings
        self.job_id: str | None = None
        self._shown_key: tuple[str, str, bool, str | None] | None = None
        self.images: ImageFetcher | None = None  # images not on this disk, from the API
        self._wanted: tuple[str, int] | None = None  # the fetched image the view waits for
        self._build()
        store.changed.connect(self._on_changed)
        self.show_job(None)

    def _build(self) -> None:
        self.title = _label(self)
        self.title.setStyleSheet("font-size: 14pt; font-weight: bold;")
        self.demo_banner = QLabel(rt.DEMO_BANNER, self)
        self.demo_banner.setObjectName("demoBanner")
        self.demo_banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.demo_banner.setWordWrap(True)
        self.demo_banner.setStyleSheet(
            "#demoBanner { background: #b71c1c; color: white; font-size: 15pt; font-weight: bold;"
            " padding: 10px; border: 3px solid #ffeb3b; border-radius: 4px; }"
        )
        self.state = _label(self)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 100)
        self.single = QtSingleResult(self)
        self.batch_summary = QFormLayout()
        self.items_model = QStandardItemModel(0, 4, self)
        self.items_model.setHorizontalHeaderLabels(["File", "Status", "Risk", "Finding"])
        self.items = self._build_items_table()
        self.model_card = QFormLayout()
        self._build_layout()

    def _build_items_table(self) -> QTableView:
        table = QTableView(self)
        table.setModel(self.items_model)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.verticalHeader().hide()
        table.horizontalHeader().setStretchLastSection(True)
        table.setMaximumHeight(160)
        table.selectionModel().currentRowChanged.connect(
            lambda cur, _prev: self._show_item(cur.row())
        )
        return table

    def _build_layout(self) -> None:
        inner = QWidget(self)
        layout = QVBoxLayout(inner)
        layout.addWidget(self.title)
        layout.addWidget(self.demo_banner)
        layout.addWidget(self.state)
        layout.addWidget(self.progress)
        layout.addLayout(self.batch_summary)
        layout.addWidget(self.items)
        layout.addWidget(self.single, 1)
        card_box = QLabel("<b>Model card</b>", inner)
        layout.addWidget(card_box)
        layout.addLayout(self.model_card)
        layout.addStretch(0)  # keeps a short view (no result yet) at the top
        layout.addLayout(self._build_buttons())
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(inner)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        self._content = [self.single, card_box, self.items]

    def _build_buttons(self) -> QHBoxLayout:
        self.json_button = QPushButton("Export &JSON…", self)
        self.json_button.clicked.connect(self.export_json_dialog)
        self.pdf_button = QPushButton("Export &PDF report…", self)
        self.pdf_button.clicked.connect(self.export_pdf_dialog)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.json_button)
        row.addWidget(self.pdf_button)
        return row

    # --- showing ----------------------------------------------------------------------
    @property
    def record(self) -> JobRecord | None:
        return self.store.get(self.job_id) if self.job_id else None

    def show_job(self, job_id: str | None) -> None:
        self.job_id = job_id
        self._shown_key = None
        self._refresh()

    def _on_changed(self, row: int) -> None:
        if self.job_id and self.store.row(row).job_id == self.job_id:
            self._refresh()

    def _refresh(self) -> None:
        record = self.record
        key = (
            (record.job_id, record.status, record.result is not None, record.result_error)
            if record
            else None
        )
        if key is not None and key == self._shown_key:
            self._show_progress(record)
            return  # progress ticks must not reload the image
        self._shown_key = key
        self._render(record)

    def _render(self, record: JobRecord | None) -> None:
        result = record.result if record else None
        self.title.setText(record.display_name if record else "No job selected")
        self._show_progress(record)
        self.demo_banner.setVisible(bool(record and record.demo))
        for widget in self._content:
            widget.setVisible(result is not None)
        self.json_button.setEnabled(result is not None)
        self.pdf_button.setEnabled(result is not None)
        # the result's own `model` block: what the card says travels with the result
        _fill_form(self.model_card, rt.model_card(result) if result else [], self)
        if result is None or record is None:
            _fill_form(self.batch_summary, [], self)
            return
        if rt.is_batch(result):
            self._render_batch(record, result)
        else:
            self.items.hide()
            _fill_form(self.batch_summary, [], self)
            self._show_single(record, 0, result)

    def _show_progress(self, record: JobRecord | None) -> None:
        self.state.setText(self._state_text(record) if record else "Drop images to start.")
        running = record is not None and not record.terminal
        self.progress.setVisible(running)
        if record is not None and running:
            self.progress.setValue(int(record.percent))
            self.progress.setFormat(f"{record.stage_text()} · %p%")

    def _state_text(self, record: JobRecord | None) -> str:
        if record is None:
            return ""
        text = f"{record.state_label} · {record.analysis} · job {record.job_id[:8]}"
        if record.status == "FAILURE" and record.error:
            text += f"\nError: {record.error}"
        if record.result is None and record.result_error:
            text += (
                f"\nThe result could not be fetched: {record.result_error}"
                "\nSelect the job again to retry."
            )
        return text

    def _render_batch(self, record: JobRecord, result: Mapping[str, Any]) -> None:
        _fill_form(self.batch_summary, rt.batch_summary(result), self)
        self.items_model.removeRows(0, self.items_model.rowCount())
        for item in result.get("items") or []:
            index = int(item.get("index", 0))
            name = (
                record.filenames[index] if index < len(record.filenames) else f"image {index + 1}"
            )
            self.items_model.appendRow([QStandardItem(v) for v in rt.item_line(item, name)])
        self.items.show()
        if self.items_model.rowCount():
            self.items.selectRow(0)
            self._show_item(0)

    def _show_item(self, row: int) -> None:
        record = self.record
        items = (record.result or {}).get("items") or [] if record else []
        if record is None or not 0 <= row < len(items):
            return
        item = items[row]
        index = int(item.get("index", row))
        inner = item.get("result") if isinstance(item.get("result"), Mapping) else None
        if inner is not None:
            self._show_single(record, index, inner)

    # --- the image: the dropped file, else the API's copy ------------------------------
    def set_images(self, images: ImageFetcher | None) -> None:
        """Where images that are not on this disk come from (a phone's upload)."""
        self.images = images

    def _show_single(self, record: JobRecord, index: int, result: Mapping[str, Any]) -> None:
        path = record.local_paths[index] if index < len(record.local_paths) else None
        local = path is not None and Path(path).exists()
        self.single.show_result(result, path if local else None)
        self._wanted = None
        if not local and self.images is not None:
            self._show_fetched(record.job_id, index, result.get("overlay"))

    def _show_fetched(self, job_id: str, index: int, overlay: Any) -> None:
        assert self.images is not None
        self._wanted = (job_id, index)
        data = self.images.cached(job_id, index)
        if data is not None:
            self.single.image.set_image(load_oriented_bytes(data), overlay)
            return
        self.single.image.set_image(QImage(), overlay, "Fetching the image…")
        self.images.fetch(job_id, index, partial(self._on_image, job_id, index, overlay))

    def _on_image(self, job_id: str, index: int, overlay: Any, data: bytes | None) -> None:
        if self._wanted != (job_id, index):
            return  # the view has moved on to another job or item
        note = "" if data else "The image could not be fetched (no longer kept?)"
        self.single.image.set_image(load_oriented_bytes(data), overlay, note)

    # --- exports ----------------------------------------------------------------------
    def _ask_target(self, suffix: str, label: str) -> Path | None:
        record = self.record
        if record is None or record.result is None:
            return None
        folder = str(self._settings.value("export/last_dir", str(Path.home())))
        stem = Path(record.filenames[0]).stem if record.filenames else record.job_id[:8]
        name, _ = QFileDialog.getSaveFileName(
            self,
            f"Export {label}",
            str(Path(folder) / f"{stem}-report{suffix}"),
            f"{label} (*{suffix})",
        )
        if not name:
            return None
        self._settings.setValue("export/last_dir", str(Path(name).parent))
        return Path(name)

    def export_json_dialog(self) -> None:
        target = self._ask_target(".json", "JSON")
        if target is not None and self.record is not None:
            self._export(export_json, target)

    def export_pdf_dialog(self) -> None:
        target = self._ask_target(".pdf", "PDF")
        if target is not None and self.record is not None:
            fetched = self.images.cached(self.record.job_id, 0) if self.images else None
            self._export(partial(export_pdf, image_bytes=fetched), target)

    def _export(self, writer: Any, target: Path) -> None:
        try:
            writer(self.record, target)
        except OSError as exc:
            self.notify.emit("error", f"Could not write {target.name}: {exc.strerror or exc}")
        else:
            self.notify.emit("info", f"Saved {target}")
