"""Histopathology (H&E), classical: colour deconvolution, tissue mask, nuclei by watershed.

Method (docs/models.md, "Histopathology"): the haematoxylin channel comes from Ruifrok and
Johnston's colour deconvolution (skimage `rgb2hed`); its Otsu threshold over the tissue of
a reduced copy of the whole slide is applied tile by tile (1024 px tiles with a margin);
touching nuclei are split by a watershed on the distance transform, seeded at its peaks.
A nucleus belongs to the tile whose core holds its centroid, so none counts twice.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage import color, feature, filters, segmentation

from skinapp.models.results import method_card

logger = logging.getLogger(__name__)

REFERENCE = (
    "Colour deconvolution: Ruifrok AC & Johnston DA 2001, Anal Quant Cytol Histol 23:291-299; "
    "nuclei by Otsu threshold and distance-transform watershed; cut-offs tuned on synthetic "
    "slides (docs/models.md)."
)


def method_info() -> dict[str, str]:
    """The `model` block: its sha256 covers the code and constants of this module."""
    return method_card("skinapp-histopathology-nuclei", "histopathology", [sys.modules[__name__]])


TILE = 1024
DEFAULT_NUCLEUS_RADIUS_PX = 6.0
NUCLEUS_RADIUS_UM = 3.5  # a typical nucleus is ~7 um across
MAX_OVERLAY_POINTS = 5000


@dataclass
class NucleiTally:
    centroids: list[tuple[float, float]]
    areas: list[float]
    tissue_px: int = 0


def tissue_mask(rgb: np.ndarray) -> np.ndarray:
    """Stained tissue versus the slide's white background."""
    f = rgb.astype(np.float32) / 255
    lum = f @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    sat = f.max(axis=2) - f.min(axis=2)
    return (lum < 0.85) | (sat > 0.08)


def haematoxylin(rgb: np.ndarray) -> np.ndarray:
    return color.rgb2hed(rgb)[..., 0]


def global_threshold(img: Image.Image) -> float:
    """Otsu on the haematoxylin channel of the tissue of a reduced copy of the slide."""
    small = img.copy()
    small.thumbnail((1024, 1024), Image.Resampling.BILINEAR)
    rgb = np.asarray(small)
    tissue = tissue_mask(rgb)
    values = haematoxylin(rgb)[tissue] if tissue.sum() > 100 else haematoxylin(rgb).ravel()
    return float(filters.threshold_otsu(values))


def nucleus_radius(microns_per_pixel: float | None) -> float:
    if microns_per_pixel is None:
        return DEFAULT_NUCLEUS_RADIUS_PX
    return float(np.clip(NUCLEUS_RADIUS_UM / microns_per_pixel, 2.0, 40.0))


def tiles(width: int, height: int, size: int = TILE) -> list[tuple[int, int, int, int]]:
    """Core boxes (x0, y0, x1, y1) covering the image."""
    return [
        (x, y, min(x + size, width), min(y + size, height))
        for y in range(0, height, size)
        for x in range(0, width, size)
    ]


def analyse_tile(
    img: Image.Image,
    core: tuple[int, int, int, int],
    threshold: float,
    radius: float,
    tally: NucleiTally,
) -> None:
    """Detect nuclei in one tile (with a margin) and keep those centred in its core."""
    margin = int(3 * radius) + 2
    x0, y0, x1, y1 = core
    box = (
        max(0, x0 - margin),
        max(0, y0 - margin),
        min(img.width, x1 + margin),
        min(img.height, y1 + margin),
    )
    rgb = np.asarray(img.crop(box))
    tissue = tissue_mask(rgb)
    inner = tissue[y0 - box[1] : y1 - box[1], x0 - box[0] : x1 - box[0]]
    tally.tissue_px += int(inner.sum())
    labels = split_nuclei((haematoxylin(rgb) > threshold) & tissue, radius)
    _keep_core(labels, box, core, tally)


def split_nuclei(mask: np.ndarray, radius: float) -> np.ndarray:
    """Label nuclei: open away specks, then watershed on the distance transform."""
    mask = ndimage.binary_opening(mask, iterations=1)
    mask = ndimage.binary_fill_holes(mask)
    distance = ndimage.distance_transform_edt(mask)
    peaks = feature.peak_local_max(
        ndimage.gaussian_filter(distance, 1.0),
        min_distance=max(2, int(0.8 * radius)),
        labels=ndimage.label(mask)[0],
        exclude_border=False,
    )
    markers = np.zeros(mask.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return segmentation.watershed(-distance, markers, mask=mask)


def _keep_core(
    labels: np.ndarray,
    box: tuple[int, int, int, int],
    core: tuple[int, int, int, int],
    tally: NucleiTally,
) -> None:
    count = int(labels.max())
    if count == 0:
        return
    index = np.arange(1, count + 1)
    areas = ndimage.sum_labels(np.ones_like(labels), labels, index)
    centres = ndimage.center_of_mass(np.ones_like(labels), labels, index)
    min_area = np.pi * (0.4 * _radius_from(areas)) ** 2
    for area, (cy, cx) in zip(areas, centres, strict=True):
        gx, gy = cx + box[0], cy + box[1]
        if area >= min_area and core[0] <= gx < core[2] and core[1] <= gy < core[3]:
            tally.centroids.append((float(gx), float(gy)))
            tally.areas.append(float(area))


def _radius_from(areas: np.ndarray) -> float:
    # Specks far below the typical nucleus are stain noise, not nuclei.
    return float(np.sqrt(np.median(areas) / np.pi)) if len(areas) else 0.0


def measure_slide(
    img: Image.Image, microns_per_pixel: float | None, on_tile: Callable[[int, int], None]
) -> dict[str, object]:
    """Nuclei count, density, mean nuclear area and its CV, tissue fraction, overlay points."""
    threshold = global_threshold(img)
    radius = nucleus_radius(microns_per_pixel)
    tally = NucleiTally([], [])
    boxes = tiles(img.width, img.height)
    for i, core in enumerate(boxes):
        on_tile(i + 1, len(boxes))
        analyse_tile(img, core, threshold, radius, tally)
    return _summary(img, tally, microns_per_pixel)


def _summary(
    img: Image.Image, tally: NucleiTally, microns_per_pixel: float | None
) -> dict[str, object]:
    areas = np.array(tally.areas)
    count = len(areas)
    density = None
    if microns_per_pixel is not None and tally.tissue_px:
        tissue_mm2 = tally.tissue_px * (microns_per_pixel / 1000.0) ** 2
        density = round(count / tissue_mm2, 2)
    mean_area = float(areas.mean()) if count else 0.0
    cv = float(areas.std() / mean_area) if count and mean_area else 0.0
    step = max(1, int(np.ceil(count / MAX_OVERLAY_POINTS)))
    points = [[round(x, 1), round(y, 1)] for x, y in tally.centroids[::step]]
    return {
        "nuclei_count": count,
        "nuclei_density_per_mm2": density,
        "mean_nuclear_area_px": round(mean_area, 2),
        "nuclear_area_cv": round(cv, 4),
        "tissue_fraction": round(tally.tissue_px / float(img.width * img.height), 4),
        "overlay": {"type": "points", "image_size": [img.width, img.height], "points": points},
    }
