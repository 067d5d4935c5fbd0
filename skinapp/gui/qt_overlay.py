"""The analysed image with its overlay (dermoscopy contour, nuclei points), as a widget and as
an image for the PDF report. Overlay points are in the EXIF-oriented image's pixels."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QImage, QImageReader, QPainter, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

logger = logging.getLogger(__name__)

CONTOUR_COLOUR = QColor("#00e5ff")
POINT_COLOUR = QColor("#ffea00")


def load_oriented(path: Path | None, max_side: int = 1600) -> QImage:
    """The image as the workers saw it (EXIF applied), scaled down for display."""
    if path is None or not Path(path).exists():
        return QImage()
    return _read_oriented(QImageReader(str(path)), max_side)


def load_oriented_bytes(data: bytes | None, max_side: int = 1600) -> QImage:
    """`load_oriented` of an image's bytes (one fetched from the API)."""
    if not data:
        return QImage()
    buffer = QBuffer()
    buffer.setData(QByteArray(data))
    buffer.open(QIODevice.OpenModeFlag.ReadOnly)
    return _read_oriented(QImageReader(buffer), max_side)


def _read_oriented(reader: QImageReader, max_side: int) -> QImage:
    reader.setAutoTransform(True)
    size = reader.size()
    if size.isValid() and max(size.width(), size.height()) > max_side:
        reader.setScaledSize(
            size.scaled(QSize(max_side, max_side), Qt.AspectRatioMode.KeepAspectRatio)
        )
    return reader.read()


def draw_overlay(painter: QPainter, target: QRectF, overlay: Mapping[str, Any] | None) -> None:
    """Draw `overlay` into `target`, the rectangle the whole image occupies."""
    if not isinstance(overlay, Mapping) or not overlay.get("points"):
        return
    width, height = (overlay.get("image_size") or [0, 0])[:2] or (0, 0)
    if not width or not height:
        return
    sx, sy = target.width() / width, target.height() / height
    points = [QPointF(target.x() + x * sx, target.y() + y * sy) for x, y, *_ in overlay["points"]]
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    if overlay.get("type") == "contour":
        painter.setPen(QPen(CONTOUR_COLOUR, max(2.0, target.width() / 300)))
        painter.drawPolygon(QPolygonF(points))
        return
    radius = max(1.5, min(target.width(), target.height()) / 150)
    painter.setPen(QPen(POINT_COLOUR, 1.0))
    for point in points:
        painter.drawEllipse(point, radius, radius)


def render_with_overlay(image: QImage, overlay: Mapping[str, Any] | None) -> QImage:
    """A copy of `image` with the overlay burnt in (for the PDF)."""
    if image.isNull():
        return image
    out = image.convertToFormat(QImage.Format.Format_ARGB32)
    painter = QPainter(out)
    draw_overlay(painter, QRectF(0, 0, out.width(), out.height()), overlay)
    painter.end()
    return out


class QtOverlayImage(QWidget):
    """Scales the image to fit, keeps its aspect, draws the overlay on top."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image = QImage()
        self._overlay: Mapping[str, Any] | None = None
        self._note = "No image"
        self.setMinimumSize(200, 160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_image(self, image: QImage, overlay: Mapping[str, Any] | None, note: str = "") -> None:
        self._image, self._overlay = image, overlay
        self._note = note or ("Image not on this workstation" if image.isNull() else "")
        self.update()

    @property
    def image(self) -> QImage:
        return self._image

    @property
    def note(self) -> str:
        """What is written in place of a missing image."""
        return self._note

    @property
    def has_overlay(self) -> bool:
        return bool(self._overlay and self._overlay.get("points"))

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        if self._image.isNull():
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self._note)
            return
        size = self._image.size().scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
        x = (self.width() - size.width()) / 2
        y = (self.height() - size.height()) / 2
        target = QRectF(x, y, size.width(), size.height())
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawImage(target, self._image)
        draw_overlay(painter, target, self._overlay)
