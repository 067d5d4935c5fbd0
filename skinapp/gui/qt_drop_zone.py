"""Where images come in: drag and drop (files, folders), File → Open, paste; with the
analysis chooser and the form fields the API takes. Emits the jobs to submit."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QLabel,
    QListWidget,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from skinapp import paths
from skinapp.config import ANALYSES
from skinapp.gui.qt_async import AsyncRunner
from skinapp.gui.submission import ANALYSIS_LABELS, Collected, Plan, collect, plan_jobs

logger = logging.getLogger(__name__)

BODY_LOCATIONS = (
    "",
    "face",
    "scalp",
    "neck",
    "chest",
    "back",
    "abdomen",
    "arm",
    "hand",
    "leg",
    "foot",
    "genital",
    "other",
)
IMAGE_FILTER = "Images (*.jpg *.jpeg *.png *.bmp *.tif *.tiff *.webp);;All files (*)"


class QtDropZone(QWidget):
    """`submit_requested(list[Plan])` after a drop, an open or a paste."""

    submit_requested = Signal(list)
    skipped_files = Signal(list)

    def __init__(
        self,
        runner: AsyncRunner,
        settings: QSettings,
        batch_max: int = 50,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._runner = runner
        self._settings = settings
        self._batch_max = batch_max
        self.setAcceptDrops(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self._build_target())
        layout.addLayout(self._build_form())
        self.skipped = QListWidget(self)
        self.skipped.setMaximumHeight(90)
        self.skipped.setToolTip("Files that were not sent, and why")
        self.skipped.hide()
        layout.addWidget(self.skipped)
        self._restore_choices()

    # --- building ---------------------------------------------------------------------
    def _build_target(self) -> QFrame:
        frame = QFrame(self)
        frame.setObjectName("dropTarget")
        frame.setFrameShape(QFrame.Shape.StyledPanel)
        frame.setStyleSheet("#dropTarget { border: 2px dashed palette(mid); border-radius: 8px; }")
        label = QLabel(
            "<b>Drop images or folders here</b><br>"
            "or File → Open (Ctrl+O), or paste an image (Ctrl+V)",
            frame,
        )
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setWordWrap(True)
        inner = QVBoxLayout(frame)
        inner.addWidget(label)
        frame.setMinimumHeight(90)
        return frame

    def _build_form(self) -> QGridLayout:
        self.analysis = QComboBox(self)
        for kind in ANALYSES:
            self.analysis.addItem(ANALYSIS_LABELS[kind], kind)
        self.as_batch = QCheckBox("Send several files as one batch skin check", self)
        self.body_location = QComboBox(self)
        self.body_location.setEditable(True)
        self.body_location.addItems(BODY_LOCATIONS)
        # Only body-site priors that a model card documents can be applied; age and sex are
        # recorded with the result and used by no model (issue 11), so the form says so.
        self.multimodal = QCheckBox("Use body-site priors (if the model card has them)", self)
        self.age = _spin(QSpinBox(self), 0, 120, "unknown")
        self.sex = QComboBox(self)
        self.sex.addItems(["unknown", "female", "male"])
        for widget in (self.age, self.sex):
            widget.setToolTip("Recorded with the result; not used by any model.")
        self.pixel_spacing = _spin(QDoubleSpinBox(self), 0.0, 10.0, "unknown", decimals=4)
        self.microns = _spin(QDoubleSpinBox(self), 0.0, 100.0, "unknown", decimals=3)
        grid = QGridLayout()
        # two columns of label/field pairs keep the drop zone short and the table tall
        cells = (
            ("&Analysis", self.analysis, "&Body location", self.body_location),
            ("", self.as_batch, "", self.multimodal),
            ("A&ge", self.age, "&Sex", self.sex),
            ("Pixel spacing (mm)", self.pixel_spacing, "Microns per pixel", self.microns),
        )
        for row, (left_text, left, right_text, right) in enumerate(cells):
            self._grid_pair(grid, row, 0, left_text, left)
            self._grid_pair(grid, row, 2, right_text, right)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        return grid

    def _grid_pair(
        self, grid: QGridLayout, row: int, column: int, text: str, widget: QWidget
    ) -> None:
        if text:
            label = QLabel(text, self)
            label.setBuddy(widget)
            grid.addWidget(label, row, column)
        grid.addWidget(widget, row, column + 1)

    # --- choices ----------------------------------------------------------------------
    def fields(self) -> dict[str, Any]:
        """Form fields for the API; unknown values are left out rather than guessed."""
        out: dict[str, Any] = {}
        if self.body_location.currentText().strip():
            out["body_location"] = self.body_location.currentText().strip()
        if self.multimodal.isChecked():
            out["enable_multimodal"] = True
        if self.age.value() > 0:
            out["age"] = self.age.value()
        if self.sex.currentText() != "unknown":
            out["sex"] = self.sex.currentText()
        if self.pixel_spacing.value() > 0:
            out["pixel_spacing_mm"] = self.pixel_spacing.value()
        if self.microns.value() > 0:
            out["microns_per_pixel"] = self.microns.value()
        return out

    def set_analysis(self, kind: str) -> None:
        self.analysis.setCurrentIndex(max(0, self.analysis.findData(kind)))

    def _restore_choices(self) -> None:
        self.set_analysis(str(self._settings.value("submit/analysis", "full-classify")))
        self.body_location.setCurrentText(str(self._settings.value("submit/body_location", "")))
        self.as_batch.setChecked(_truthy(self._settings.value("submit/as_batch", False)))
        self.multimodal.setChecked(_truthy(self._settings.value("submit/multimodal", False)))

    def _save_choices(self) -> None:
        self._settings.setValue("submit/analysis", self.analysis.currentData())
        self._settings.setValue("submit/body_location", self.body_location.currentText())
        self._settings.setValue("submit/as_batch", self.as_batch.isChecked())
        self._settings.setValue("submit/multimodal", self.multimodal.isChecked())

    # --- input ------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() or event.mimeData().hasImage():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        mime = event.mimeData()
        local = [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
        if local:
            self.add_paths(local)
        elif mime.hasImage():
            self.add_image(QImage(mime.imageData()))
        event.acceptProposedAction()

    def open_files(self) -> None:
        start = str(self._settings.value("submit/last_dir", str(Path.home())))
        files, _ = QFileDialog.getOpenFileNames(self, "Open images", start, IMAGE_FILTER)
        if files:
            self._settings.setValue("submit/last_dir", str(Path(files[0]).parent))
            self.add_paths([Path(f) for f in files])

    def open_folder(self) -> None:
        start = str(self._settings.value("submit/last_dir", str(Path.home())))
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of images", start)
        if folder:
            self._settings.setValue("submit/last_dir", folder)
            self.add_paths([Path(folder)])

    def paste(self) -> None:
        mime = QApplication.clipboard().mimeData()
        if mime.hasUrls():
            self.add_paths([Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()])
        elif mime.hasImage():
            self.add_image(QImage(QApplication.clipboard().image()))

    def add_image(self, image: QImage) -> None:
        """A pasted or dropped bitmap: saved as PNG in the cache so it can be shown and resent."""
        if image.isNull():
            return
        folder = paths.ensure_private_dir(paths.cache_dir() / "pasted")
        target = (
            folder / f"pasted-{time.strftime('%Y%m%d-%H%M%S')}-{time.monotonic_ns() % 10**6}.png"
        )
        if image.save(str(target)):  # PNG, from the suffix
            self.add_paths([target])

    def add_paths(self, items: list[Path]) -> None:
        """Sort files off the GUI thread (a folder can hold thousands), then plan the jobs."""
        self._save_choices()
        analysis, fields = str(self.analysis.currentData()), self.fields()
        as_batch = self.as_batch.isChecked()
        self._runner.run(
            lambda: collect(items), lambda found: self._collected(found, analysis, fields, as_batch)
        )

    def _collected(
        self, found: Collected, analysis: str, fields: dict[str, Any], as_batch: bool
    ) -> None:
        self._show_skipped(found)
        plans: list[Plan] = plan_jobs(
            found.images, analysis, fields, as_batch=as_batch, batch_max=self._batch_max
        )
        if plans:
            self.submit_requested.emit(plans)

    def _show_skipped(self, found: Collected) -> None:
        self.skipped.clear()
        for path, reason in found.skipped:
            self.skipped.addItem(f"Skipped {path.name}: {reason}")
        self.skipped.setVisible(bool(found.skipped))
        if found.skipped:
            self.skipped_files.emit(found.skipped)


def _spin(widget: Any, low: float, high: float, special: str, decimals: int | None = None) -> Any:
    if decimals is not None:
        widget.setDecimals(decimals)
    widget.setRange(low, high)
    widget.setSpecialValueText(special)
    return widget


def _truthy(value: object) -> bool:
    return value is True or str(value).lower() in {"true", "1", "yes"}
