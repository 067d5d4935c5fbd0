"""Dermoscopy, classical and deterministic: segmentation, the ABCD rule and Stolz's TDS.

Method (docs/models.md, "Dermoscopy"): the skin colour is the median CIELAB colour of the
image frame; each pixel's colour distance to it is smoothed and split by Otsu's threshold;
opening, closing and hole filling clean the mask and the largest component (preferring
one that does not touch the frame) is the lesion. Then A (0-2), B (0-8), C (1-6) and
D (1-5) are scored as described per function, and TDS = 1.3A + 0.1B + 0.5C + 0.5D
(Stolz et al. 1994) with bands < 4.75 benign, 4.75-5.45 suspicious, > 5.45 highly suspicious.
"""

from __future__ import annotations

import logging
import sys

import numpy as np
from scipy import ndimage
from skimage import color, filters, measure, morphology

from skinapp.errors import InvalidImage
from skinapp.models.results import method_card

logger = logging.getLogger(__name__)

REFERENCE = (
    "ABCD rule of dermatoscopy and total dermoscopy score: Stolz W et al. 1994, Eur J "
    "Dermatol 4:521-527; Nachbar F et al. 1994, J Am Acad Dermatol 30:551-559. Detectors "
    "and cut-offs marked 'tuned on synthetic images' in docs/models.md are skinapp's own."
)

# Where each threshold comes from: Stolz (the weights, the bands, the six colours, the
# 5 % colour share... as published) or "tuned on synthetic images" (skinapp's own choices).
ASYMMETRY_THRESHOLD = (
    0.10  # share of the lesion outside its mirror image; tuned on synthetic images
)
ASYMMETRY_THRESHOLD = 0.10
MIN_LESION_FRACTION = 0.002  # tuned on synthetic images
MIN_LESION_CONTRAST = 5.0  # CIELAB delta-E between lesion and skin; tuned on synthetic images
COLOUR_FRACTION = 0.05  # a colour counts above this share of the lesion; tuned on synthetic images
#: A pixel takes a reference colour only within this CIELAB delta-E (CIE76): a pixel far
#: from all six is none of them, not the least far one. Tuned on synthetic images (the
#: generator's jittered colours lie within 25 of their reference).
COLOUR_MAX_DELTA_E = 30.0
#: "White" only where lighter than the surrounding skin by this much L* (Stolz counts
#: white areas lighter than the skin; pale skin itself is not white). Tuned on synthetic images.
WHITE_ABOVE_SKIN_L = 5.0
#: Stolz's bands of the total dermoscopy score.
TDS_BENIGN_BELOW, TDS_SUSPICIOUS_UP_TO = 4.75, 5.45
#: The six dermoscopic colours of Stolz's C criterion (sRGB references chosen here).
DERMOSCOPIC_COLOURS: dict[str, tuple[int, int, int]] = {
    "white": (242, 240, 236),
    "red": (192, 52, 56),
    "light_brown": (172, 118, 78),
    "dark_brown": (96, 56, 36),
    "blue_gray": (102, 116, 142),
    "black": (32, 26, 26),
}
_COLOUR_LAB = color.rgb2lab(np.array([list(DERMOSCOPIC_COLOURS.values())], dtype=np.float64) / 255)[
    0
]


def segment_lesion(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lesion mask, smoothed colour-distance channel); InvalidImage when no lesion stands out."""
    lab = color.rgb2lab(rgb)
    dist = np.linalg.norm(lab - _frame_median(lab), axis=2)
    # Hairs are thin lines far from skin colour: a grey opening removes them (after DullRazor).
    dist = ndimage.grey_opening(
        dist, footprint=morphology.disk(max(1, round(min(rgb.shape[:2]) / 120)))
    )
    dist = ndimage.gaussian_filter(dist, max(1.0, min(rgb.shape[:2]) / 250))
    mask = _hysteresis(dist)
    disk = morphology.disk(max(1, min(rgb.shape[:2]) // 100))
    mask = ndimage.binary_closing(ndimage.binary_opening(mask, disk), disk)
    mask = _pick_component(ndimage.binary_fill_holes(mask))
    _check_lesion(mask, dist)
    return mask, dist


def _hysteresis(dist: np.ndarray) -> np.ndarray:
    """Otsu's threshold seeds the lesion; it grows into pixels half-way from skin to lesion body.

    A single Otsu cut splits a two-tone lesion (a dermatofibroma's white centre and its pale
    brown ring, a pale nodule and its red vessels) and keeps only the louder part. The
    body level is the lower quartile of the pixels clearly off the skin (above the frame's
    99th percentile), so the quieter tone of such a lesion still counts.
    """
    high = float(filters.threshold_otsu(dist))
    frame = _frame(dist)
    skin = float(np.median(frame))
    off_skin = dist[dist > np.percentile(frame, 99) + 2.0]
    if off_skin.size < MIN_LESION_FRACTION * dist.size:
        return dist > high
    low = min(high, skin + 0.5 * (float(np.percentile(off_skin, 25)) - skin))
    return filters.apply_hysteresis_threshold(dist, low, high)


def _frame(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    band = max(2, min(h, w) // 20)
    parts = [img[:band], img[-band:], img[:, :band], img[:, -band:]]
    return np.concatenate([p.reshape(-1, *img.shape[2:]) for p in parts])


def _frame_median(lab: np.ndarray) -> np.ndarray:
    return np.median(_frame(lab), axis=0)


def _pick_component(mask: np.ndarray) -> np.ndarray:
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel())[1:].astype(np.float64)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    touching = np.isin(np.arange(1, count + 1), edge)
    # A lesion is photographed centred: prefer a component that does not reach the frame.
    if not touching.all():
        sizes[touching] = 0
    return labels == (int(np.argmax(sizes)) + 1)


def _check_lesion(mask: np.ndarray, dist: np.ndarray) -> None:
    if mask.mean() < MIN_LESION_FRACTION or mask.all():
        raise InvalidImage(
            "No lesion could be found; dermoscopy needs one lesion centred in the image."
        )
    contrast = float(np.median(dist[mask]) - np.median(dist[~mask]))
    if contrast < MIN_LESION_CONTRAST:
        raise InvalidImage(
            "No lesion stands out from the surrounding skin; dermoscopy needs a visible lesion."
        )


def asymmetry(mask: np.ndarray) -> tuple[int, list[float]]:
    """A: one point per principal axis about which the mirrored shape differs by > 10%."""
    ys, xs = np.nonzero(mask)
    pts = np.stack([xs, ys], axis=1).astype(np.float64)
    centre = pts.mean(axis=0)
    _, axes = np.linalg.eigh(np.cov((pts - centre).T))
    indices = []
    for axis in axes.T:
        rel = pts - centre
        mirrored = centre + 2 * np.outer(rel @ axis, axis) - rel
        mx, my = np.rint(mirrored[:, 0]).astype(int), np.rint(mirrored[:, 1]).astype(int)
        inside = (mx >= 0) & (my >= 0) & (mx < mask.shape[1]) & (my < mask.shape[0])
        overlap = np.zeros(len(pts), dtype=bool)
        overlap[inside] = mask[my[inside], mx[inside]]
        indices.append(round(1.0 - float(overlap.mean()), 4))
    return sum(index > ASYMMETRY_THRESHOLD for index in indices), indices


def border(mask: np.ndarray, dist: np.ndarray) -> tuple[int, list[bool]]:
    """B: octants (around the centroid) where the lesion ends abruptly.

    The transition width of an octant is the lesion/skin contrast divided by the median
    gradient on its edge pixels; abrupt when <= max(3 px, 10% of the equivalent radius).
    """
    edge = mask & ~ndimage.binary_erosion(mask)
    gy, gx = np.gradient(dist)
    grad = np.hypot(gx, gy)
    inner = ndimage.binary_erosion(mask, iterations=3)
    inside_level = np.median(dist[inner]) if inner.any() else np.median(dist[mask])
    contrast = float(inside_level - np.median(dist[~ndimage.binary_dilation(mask, iterations=3)]))
    limit = max(3.0, 0.1 * np.sqrt(mask.sum() / np.pi))
    ys, xs = np.nonzero(edge)
    cy, cx = np.argwhere(mask).mean(axis=0)
    octant = ((np.arctan2(ys - cy, xs - cx) + np.pi) // (np.pi / 4)).astype(int) % 8
    abrupt = []
    for o in range(8):
        g = grad[ys[octant == o], xs[octant == o]]
        abrupt.append(bool(len(g) and contrast / max(float(np.median(g)), 1e-6) <= limit))
    return sum(abrupt), abrupt


def colours(rgb: np.ndarray, mask: np.ndarray) -> list[str]:
    """C: dermoscopic colours covering >= 5% of the lesion core. A pixel takes the nearest
    reference in CIELAB only within COLOUR_MAX_DELTA_E; white only where lighter than the
    skin around the lesion (the frame's median L*)."""
    core = ndimage.binary_erosion(mask, iterations=2)
    core = core if core.sum() > 50 else mask
    lab = color.rgb2lab(rgb[core][None, :, :])[0]
    skin_l = float(_frame_median(color.rgb2lab(rgb))[0])
    distance = np.linalg.norm(lab[:, None, :] - _COLOUR_LAB[None, :, :], axis=2)
    white = list(DERMOSCOPIC_COLOURS).index("white")
    distance[lab[:, 0] <= skin_l + WHITE_ABOVE_SKIN_L, white] = np.inf
    nearest = np.argmin(distance, axis=1)
    close = distance[np.arange(len(nearest)), nearest] <= COLOUR_MAX_DELTA_E
    share = np.bincount(nearest[close], minlength=len(DERMOSCOPIC_COLOURS)) / len(nearest)
    return [
        name for name, s in zip(DERMOSCOPIC_COLOURS, share, strict=True) if s >= COLOUR_FRACTION
    ]


def structures(rgb: np.ndarray, mask: np.ndarray) -> list[str]:
    """D: differential structures found (a simplified classical detector; see docs/models.md)."""
    gray = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    scale = max(1.0, min(gray.shape) / 256)
    noise = _noise_floor(gray, mask)
    found = []
    local_std = np.sqrt(
        np.maximum(ndimage.uniform_filter(gray**2, 7) - ndimage.uniform_filter(gray, 7) ** 2, 0)
    )
    if (local_std[mask] < 1.5 * noise + 2).mean() >= 0.10:
        found.append("structureless_areas")
    if (
        _count_blobs(gray, mask, 1.0 * scale, 3.0 * scale, noise, (2 * scale**2, 30 * scale**2))
        >= 3
    ):
        found.append("dots")
    if (
        _count_blobs(gray, mask, 2.0 * scale, 6.0 * scale, noise, (30 * scale**2, 300 * scale**2))
        >= 3
    ):
        found.append("globules")
    lines = morphology.black_tophat(gray, morphology.disk(max(2, round(3 * scale)))) > 6 * noise + 6
    if _is_network(lines & mask):
        found.append("pigment_network")
    if _count_streaks(lines, mask) >= 3:
        found.append("streaks")
    return found


def _noise_floor(gray: np.ndarray, mask: np.ndarray) -> float:
    skin = gray[~ndimage.binary_dilation(mask, iterations=5)]
    diffs = np.abs(np.diff(skin)) if skin.size > 10 else np.array([1.0])
    return float(np.median(diffs) / 0.954)  # MAD of neighbour differences -> sigma


def _count_blobs(
    gray: np.ndarray,
    mask: np.ndarray,
    s1: float,
    s2: float,
    noise: float,
    area: tuple[float, float],
) -> int:
    dog = ndimage.gaussian_filter(gray, s1) - ndimage.gaussian_filter(gray, s2)
    dark = (dog < -(3 * noise * 0.4 + 4)) & mask
    labels, count = ndimage.label(dark)
    sizes = np.bincount(labels.ravel())[1:]
    return int(((sizes >= area[0]) & (sizes <= area[1])).sum())


def _is_network(lines: np.ndarray) -> bool:
    if lines.sum() < 50:
        return False
    return bool(measure.euler_number(lines, connectivity=2) <= -5)


def _count_streaks(lines: np.ndarray, mask: np.ndarray) -> int:
    radius = np.sqrt(mask.sum() / np.pi)
    rim = mask & ~ndimage.binary_erosion(mask, iterations=max(1, int(0.15 * radius)))
    band = lines & ndimage.binary_dilation(rim, iterations=max(1, int(0.1 * radius)))
    cy, cx = np.argwhere(mask).mean(axis=0)
    count = 0
    for region in measure.regionprops(measure.label(band)):
        if region.axis_major_length < 0.1 * radius or region.eccentricity < 0.9:
            continue
        ry, rx = region.centroid[0] - cy, region.centroid[1] - cx
        axis = np.array([-np.sin(region.orientation), np.cos(region.orientation)])  # (y, x)
        radial = np.array([ry, rx]) / max(np.hypot(ry, rx), 1e-6)
        count += abs(float(axis @ radial)) > 0.85
    return count


def tds_band(tds: float) -> str:
    """Stolz's bands: < 4.75 benign, 4.75-5.45 suspicious, > 5.45 highly suspicious."""
    if tds < TDS_BENIGN_BELOW:
        return "benign"
    return "suspicious" if tds <= TDS_SUSPICIOUS_UP_TO else "highly_suspicious"


def contour_points(mask: np.ndarray, scale: float, limit: int = 500) -> list[list[float]]:
    """The lesion outline in original-image pixels (x, y), closed, at most ~`limit` points."""
    contours = measure.find_contours(np.pad(mask.astype(np.float32), 1), 0.5)
    if not contours:
        return []
    outline = max(contours, key=len) - 1.0
    step = max(1, int(np.ceil(len(outline) / limit)))
    pts = [[round(float(x) / scale, 1), round(float(y) / scale, 1)] for y, x in outline[::step]]
    if pts and pts[0] != pts[-1]:
        pts.append(pts[0])
    return pts


def score_lesion(rgb: np.ndarray, mask: np.ndarray, dist: np.ndarray) -> dict[str, object]:
    """The `abcd` block plus TDS and its band."""
    a, a_indices = asymmetry(mask)
    b, abrupt = border(mask, dist)
    found_colours = colours(rgb, mask)
    found_structures = structures(rgb, mask)
    c, d = max(1, len(found_colours)), max(1, len(found_structures))
    tds = round(1.3 * a + 0.1 * b + 0.5 * c + 0.5 * d, 2)
    return {
        "abcd": {
            "asymmetry": a,
            "asymmetry_indices": a_indices,
            "border": b,
            "abrupt_octants": abrupt,
            "colors": c,
            "colors_found": found_colours,
            "differential_structures": d,
            "structures_found": found_structures,
        },
        "tds": tds,
        "tds_band": tds_band(tds),
        "tds_band_name": f"Stolz's TDS band: {STOLZ_BAND_NAMES[tds_band(tds)]}",
    }


STOLZ_BAND_NAMES = {
    "benign": "benign (TDS < 4.75)",
    "suspicious": "suspicious (TDS 4.75-5.45)",
    "highly_suspicious": "highly suspicious (TDS > 5.45)",
}


def method_info() -> dict[str, str]:
    """The `model` block: its sha256 covers this module, the gate and the risk table."""
    from skinapp.models import domain, risk

    return method_card(
        "skinapp-dermoscopy-abcd-tds", "dermoscopy", [sys.modules[__name__], domain, risk]
    )


def feret_diameter(mask: np.ndarray) -> float:
    props = measure.regionprops(mask.astype(np.uint8))
    return float(props[0].feret_diameter_max) if props else 0.0
