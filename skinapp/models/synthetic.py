"""The documented generator of synthetic training images (docs/models.md, "Synthetic images").

Demo checkpoints are trained on these, so the app runs end to end on a fresh machine with
no downloadable weights. Each class is drawn by an explicit shape-and-colour rule, loosely
after its textbook dermoscopic or clinical look; the rules are a teaching device, not
medicine. Images are drawn on a canvas twice the output size and box-downsampled, the way a
photo is reduced for the classifiers. Changing any rule must bump GENERATOR_VERSION: demo
cards record it and older demo checkpoints are retrained.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 2

Rng = np.random.Generator
Canvas = np.ndarray  # float32 (H, W, 3), 0..255
Mask = np.ndarray  # bool (H, W)

SKIN_LIGHT = np.array([236, 196, 170], dtype=np.float32)
SKIN_DARK = np.array([112, 76, 56], dtype=np.float32)


# --- drawing primitives ---------------------------------------------------------------
def _jitter(rng: Rng, colour: tuple[int, int, int], spread: float = 14.0) -> np.ndarray:
    return np.clip(np.array(colour, dtype=np.float32) + rng.uniform(-spread, spread, 3), 0, 255)


def _skin(rng: Rng, cs: int) -> Canvas:
    tone = SKIN_LIGHT + (SKIN_DARK - SKIN_LIGHT) * rng.uniform(0, 1) ** 1.6
    ramp = np.linspace(-0.5, 0.5, cs, dtype=np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    strength = rng.uniform(-0.08, 0.08)
    shade = 1.0 + strength * (ramp[None, :] * np.cos(angle) + ramp[:, None] * np.sin(angle))
    img = tone[None, None, :] * shade[..., None]
    return img + _noise(rng, img.shape) * rng.uniform(2, 7)


def blob_mask(
    rng: Rng,
    cs: int,
    radius: float,
    irregularity: float,
    aspect: float = 1.0,
    centre_jitter: float = 0.08,
) -> Mask:
    """A star-shaped blob: r(theta) = R * (1 + sum_k a_k sin(k theta + phi_k)), k = 2..6."""
    cx, cy = (0.5 + rng.uniform(-centre_jitter, centre_jitter, 2)) * cs
    theta = np.linspace(0, 2 * np.pi, 180, endpoint=False)
    r = np.ones_like(theta)
    for k in range(2, 7):
        r += rng.uniform(0.4, 1.0) * irregularity * np.sin(k * theta + rng.uniform(0, 2 * np.pi))
    r *= radius * cs
    rot = rng.uniform(0, np.pi)
    u, v = r * np.cos(theta), r * np.sin(theta) / aspect
    xs = cx + u * np.cos(rot) - v * np.sin(rot)
    ys = cy + u * np.sin(rot) + v * np.cos(rot)
    layer = Image.new("L", (cs, cs), 0)
    ImageDraw.Draw(layer).polygon(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=255)
    return np.asarray(layer) > 0


def _paint(
    img: Canvas, mask: Mask, colour: np.ndarray, alpha: float = 1.0, soften: float = 0.7
) -> None:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return
    pad = int(3 * soften) + 1  # the blur never reaches further; painting a box is enough
    ys = slice(max(0, rows[0] - pad), rows[-1] + pad + 1)
    xs = slice(max(0, cols[0] - pad), cols[-1] + pad + 1)
    weight = ndimage.gaussian_filter(mask[ys, xs].astype(np.float32), soften) * alpha
    img[ys, xs] += (colour[None, None, :] - img[ys, xs]) * weight[..., None]


def _noise(rng: Rng, shape: tuple[int, ...]) -> np.ndarray:
    """Unit Gaussian noise cut at a random offset from a fixed bank (drawing it anew is slow)."""
    h, w = shape[:2]
    bank = _noise_bank(h, w)
    y, x = rng.integers(0, h), rng.integers(0, w)
    return bank[y : y + h, x : x + w]


@functools.lru_cache(maxsize=4)
def _noise_bank(h: int, w: int) -> np.ndarray:
    return np.random.default_rng(20240601).standard_normal((2 * h, 2 * w, 3), dtype=np.float32)


def _discs(rng: Rng, inside: Mask, count: int, radius: tuple[float, float]) -> Mask:
    """`count` small discs centred on random pixels of `inside`."""
    cs = inside.shape[0]
    out = Image.new("L", (cs, cs), 0)
    draw = ImageDraw.Draw(out)
    ys, xs = np.nonzero(inside)
    if len(xs) == 0:
        return np.zeros_like(inside)
    for i in rng.integers(0, len(xs), count):
        r = rng.uniform(*radius) * cs
        draw.ellipse((xs[i] - r, ys[i] - r, xs[i] + r, ys[i] + r), fill=255)
    return np.asarray(out) > 0


def _branching_lines(rng: Rng, inside: Mask, count: int, width: int) -> Mask:
    """Thin tortuous lines, each forking once (arborising vessels)."""
    cs = inside.shape[0]
    out = Image.new("L", (cs, cs), 0)
    draw = ImageDraw.Draw(out)
    ys, xs = np.nonzero(inside)
    for i in rng.integers(0, len(xs), count):
        points = [(float(xs[i]), float(ys[i]))]
        heading = rng.uniform(0, 2 * np.pi)
        for _ in range(6):
            heading += rng.uniform(-0.7, 0.7)
            x, y = points[-1]
            points.append((x + np.cos(heading) * cs * 0.04, y + np.sin(heading) * cs * 0.04))
        draw.line(points, fill=255, width=width)
        fork = points[2]
        draw.line(
            [
                fork,
                (fork[0] + rng.uniform(-1, 1) * cs * 0.1, fork[1] + rng.uniform(-1, 1) * cs * 0.1),
            ],
            fill=255,
            width=width,
        )
    return (np.asarray(out) > 0) & ndimage.binary_dilation(inside, iterations=2)


def _hairs(rng: Rng, img: Canvas) -> None:
    cs = img.shape[0]
    layer = Image.new("L", (cs, cs), 0)
    draw = ImageDraw.Draw(layer)
    for _ in range(rng.integers(1, 5)):
        x0, y0, x1, y1 = rng.uniform(0, cs, 4)
        draw.line([(x0, y0), (x1, y1)], fill=255, width=1)
    _paint(img, np.asarray(layer) > 0, _jitter(rng, (55, 42, 35)), alpha=0.8, soften=0.5)


# --- lesion classes (HAM10000 ids) ----------------------------------------------------
def _nv(rng: Rng, img: Canvas) -> Mask:
    """Melanocytic nevus: small round/oval, one even medium brown, smooth regular border."""
    mask = blob_mask(rng, img.shape[0], rng.uniform(0.13, 0.24), 0.02, rng.uniform(1.0, 1.25))
    _paint(img, mask, _jitter(rng, (135, 86, 56), 14), soften=1.2)
    return mask


def _mel(rng: Rng, img: Canvas) -> Mask:
    """Melanoma: large, asymmetric lobulated border, dark brown with black, blue-grey and red zones."""
    cs = img.shape[0]
    mask = blob_mask(
        rng, cs, rng.uniform(0.24, 0.36), rng.uniform(0.09, 0.14), rng.uniform(1.0, 1.4)
    )
    _paint(img, mask, _jitter(rng, (95, 58, 38)), soften=0.8)
    for colour in ((30, 25, 25), (110, 122, 148), (175, 65, 60))[: rng.integers(2, 4)]:
        patch = _discs(rng, mask, 2, (0.05, 0.1)) & mask
        _paint(img, patch, _jitter(rng, colour, 10), soften=1.5)
    return mask


def _bcc(rng: Rng, img: Canvas) -> Mask:
    """Basal cell carcinoma: pearly pink nodule, bright red arborising vessels, blue-grey ovoid nests."""
    cs = img.shape[0]
    mask = blob_mask(rng, cs, rng.uniform(0.16, 0.28), 0.03, rng.uniform(1.0, 1.3))
    _paint(img, mask, _jitter(rng, (242, 206, 204), 10), alpha=0.92, soften=1.5)
    vessels = _branching_lines(rng, mask, int(rng.integers(3, 6)), width=max(1, cs // 48))
    _paint(img, vessels, _jitter(rng, (185, 35, 45), 10), soften=0.4)
    nests = _discs(
        rng, ndimage.binary_erosion(mask, iterations=3), int(rng.integers(1, 4)), (0.025, 0.04)
    )
    _paint(img, nests & mask, _jitter(rng, (96, 104, 128), 10), soften=0.8)
    return mask


def _akiec(rng: Rng, img: Canvas) -> Mask:
    """Actinic keratosis / Bowen's: ill-defined rough red-pink patch scattered with white scale."""
    cs = img.shape[0]
    mask = blob_mask(
        rng, cs, rng.uniform(0.18, 0.32), rng.uniform(0.05, 0.09), rng.uniform(1.0, 1.4)
    )
    _paint(img, mask, _jitter(rng, (196, 92, 78)), alpha=0.9, soften=3.0)
    img += _noise(rng, img.shape) * 12 * mask[..., None]
    scale = _discs(rng, mask, int(rng.integers(30, 55)), (0.01, 0.02)) & mask
    _paint(img, scale, _jitter(rng, (242, 232, 212), 8), soften=0.5)
    return mask


def _bkl(rng: Rng, img: Canvas) -> Mask:
    """Benign keratosis: sharp 'stuck-on' elongated yellow-tan oval, many milia-like white dots, dark openings."""
    cs = img.shape[0]
    mask = blob_mask(rng, cs, rng.uniform(0.17, 0.28), 0.03, rng.uniform(1.3, 1.7))
    _paint(img, mask, _jitter(rng, (176, 140, 92), 14), soften=0.5)
    milia = _discs(rng, mask, int(rng.integers(8, 14)), (0.016, 0.026)) & mask
    _paint(img, milia, _jitter(rng, (240, 232, 196), 8), soften=0.5)
    pores = _discs(rng, mask, int(rng.integers(4, 8)), (0.012, 0.018)) & mask
    _paint(img, pores, _jitter(rng, (62, 42, 32), 8), soften=0.5)
    return mask


def _df(rng: Rng, img: Canvas) -> Mask:
    """Dermatofibroma: small firm papule, light-brown fuzzy ring around a central white scar-like patch."""
    cs = img.shape[0]
    radius = rng.uniform(0.1, 0.17)
    mask = blob_mask(rng, cs, radius, 0.02, rng.uniform(1.0, 1.15), centre_jitter=0.05)
    _paint(img, mask, _jitter(rng, (168, 118, 84)), soften=2.0)
    centre = ndimage.binary_erosion(mask, iterations=max(1, int(radius * cs * 0.5)))
    _paint(img, centre, _jitter(rng, (242, 232, 226), 8), soften=1.5)
    return mask


def _vasc(rng: Rng, img: Canvas) -> Mask:
    """Vascular lesion: well-defined cluster of red-purple lacunae separated by paler septa."""
    cs = img.shape[0]
    mask = blob_mask(rng, cs, rng.uniform(0.12, 0.22), 0.03, rng.uniform(1.0, 1.2))
    _paint(img, mask, _jitter(rng, (190, 100, 118)), soften=0.6)
    lacunae = (
        _discs(
            rng, ndimage.binary_erosion(mask, iterations=3), int(rng.integers(4, 9)), (0.03, 0.05)
        )
        & mask
    )
    _paint(img, lacunae, _jitter(rng, (135, 22, 68), 14), soften=0.6)
    return mask


LESION_RULES: dict[str, Callable[[Rng, Canvas], Mask]] = {
    "akiec": _akiec,
    "bcc": _bcc,
    "bkl": _bkl,
    "df": _df,
    "mel": _mel,
    "nv": _nv,
    "vasc": _vasc,
}


# --- burn depths ------------------------------------------------------------------------
def _burn_area(rng: Rng, cs: int) -> Mask:
    return blob_mask(
        rng, cs, rng.uniform(0.3, 0.45), rng.uniform(0.06, 0.12), rng.uniform(1.0, 1.3)
    )


def _superficial(rng: Rng, img: Canvas) -> Mask:
    """Superficial: diffuse pink-red erythema, smooth and dry, soft edges, no blisters."""
    area = _burn_area(rng, img.shape[0])
    _paint(img, area, _jitter(rng, (232, 128, 118)), alpha=rng.uniform(0.55, 0.8), soften=5.0)
    return area


def _superficial_partial(rng: Rng, img: Canvas) -> Mask:
    """Superficial partial-thickness: bright moist red with pale-yellow blisters and shiny rims."""
    area = _burn_area(rng, img.shape[0])
    _paint(img, area, _jitter(rng, (214, 72, 68)), alpha=0.92, soften=2.5)
    blisters = _discs(
        rng, ndimage.binary_erosion(area, iterations=4), int(rng.integers(1, 5)), (0.06, 0.12)
    )
    _paint(img, blisters & area, _jitter(rng, (238, 214, 172), 8), soften=1.0)
    rims = blisters & ~ndimage.binary_erosion(blisters, iterations=2)
    _paint(img, rims & area, np.array([255, 250, 242], dtype=np.float32), soften=0.6)
    return area


def _deep_partial(rng: Rng, img: Canvas) -> Mask:
    """Deep partial-thickness: pale base mottled with dark-red and white blotches, drier."""
    area = _burn_area(rng, img.shape[0])
    _paint(img, area, _jitter(rng, (222, 186, 176)), alpha=0.95, soften=1.5)
    _paint(
        img,
        _discs(rng, area, int(rng.integers(4, 9)), (0.04, 0.09)) & area,
        _jitter(rng, (176, 48, 50)),
        soften=1.2,
    )
    _paint(
        img,
        _discs(rng, area, int(rng.integers(3, 7)), (0.04, 0.08)) & area,
        _jitter(rng, (246, 240, 230), 6),
        soften=1.2,
    )
    return area


def _full_thickness(rng: Rng, img: Canvas) -> Mask:
    """Full-thickness: dry leathery white-tan or brown eschar with black charred patches."""
    area = _burn_area(rng, img.shape[0])
    base = (205, 180, 146) if rng.uniform() < 0.5 else (98, 68, 46)
    _paint(img, area, _jitter(rng, base), soften=1.2)
    img += _noise(rng, img.shape) * 10 * area[..., None]
    _paint(
        img,
        _discs(rng, area, int(rng.integers(2, 6)), (0.05, 0.12)) & area,
        _jitter(rng, (34, 28, 24), 8),
        soften=1.0,
    )
    return area


BURN_RULES: dict[str, Callable[[Rng, Canvas], Mask]] = {
    "superficial": _superficial,
    "superficial_partial": _superficial_partial,
    "deep_partial": _deep_partial,
    "full_thickness": _full_thickness,
}


# --- public entry points ------------------------------------------------------------------
def _finish(img: Canvas, size: int) -> np.ndarray:
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    return np.asarray(pil.resize((size, size), Image.Resampling.BOX))


def render_lesion(
    class_id: str, rng: Rng, size: int, hairs: bool = False
) -> tuple[np.ndarray, Mask]:
    """One lesion image of `class_id` at `size` px, and its mask at the same size."""
    img = _skin(rng, size * 2)
    mask = LESION_RULES[class_id](rng, img)
    if hairs:
        _hairs(rng, img)
    small = Image.fromarray(mask.astype(np.uint8) * 255).resize((size, size), Image.Resampling.BOX)
    return _finish(img, size), np.asarray(small) >= 128


def render_sample(task: str, class_id: str, rng: Rng, size: int) -> np.ndarray:
    """One training image for a classifier task ("binary", "lesion" or "burn")."""
    hairs = bool(rng.uniform() < 0.3)
    if task == "lesion" or (task == "binary" and class_id == "lesion"):
        kind = class_id if task == "lesion" else str(rng.choice(sorted(LESION_RULES)))
        return render_lesion(kind, rng, size, hairs)[0]
    img = _skin(rng, size * 2)
    if task == "burn":
        BURN_RULES[class_id](rng, img)
    if hairs:
        _hairs(rng, img)
    return _finish(img, size)


def make_dataset(
    task: str, class_ids: list[str], per_class: int, size: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` images of every class: uint8 (N, size, size, 3) and int64 labels."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for _ in range(per_class):
        for label, class_id in enumerate(class_ids):
            images.append(render_sample(task, class_id, rng, size))
            labels.append(label)
    return np.stack(images), np.array(labels, dtype=np.int64)


def synthetic_slide(
    rng: Rng, size: tuple[int, int], nuclei: int, radius: float = 6.0
) -> tuple[np.ndarray, np.ndarray]:
    """An H&E-like tile: pink eosin stroma, white background, dark purple round nuclei.

    Nuclei do not overlap (each keeps 2.2 radii from the others), so their true count is exact.
    Returns the uint8 RGB image and the (N, 2) array of true centres (x, y).
    """
    w, h = size
    canvas = Image.new("RGB", size, (244, 242, 246))
    draw = ImageDraw.Draw(canvas)
    draw.ellipse((w * 0.02, h * 0.04, w * 0.98, h * 0.96), fill=(232, 160, 200))
    stroma = np.asarray(canvas)[..., 1] < 200
    centres = _place_nuclei(rng, stroma, nuclei, radius)
    for x, y in centres:
        r = radius * rng.uniform(0.85, 1.15)
        colour = tuple(int(v) for v in _jitter(rng, (82, 52, 140), 12))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    img = (
        np.asarray(canvas).astype(np.float32) + (rng.random((h, w, 3), dtype=np.float32) - 0.5) * 14
    )
    return np.clip(img, 0, 255).astype(np.uint8), np.array(centres, dtype=np.float64).reshape(-1, 2)


def _place_nuclei(rng: Rng, region: Mask, count: int, radius: float) -> list[tuple[float, float]]:
    """Rejection sampling against a map of taken ground (each nucleus bars 2.2 radii around it)."""
    ys, xs = np.nonzero(ndimage.binary_erosion(region, iterations=int(radius) + 1))
    taken = np.zeros(region.shape, dtype=bool)
    keep = int(np.ceil(2.2 * radius))
    yy, xx = np.mgrid[-keep : keep + 1, -keep : keep + 1]
    disc = yy**2 + xx**2 <= keep**2
    placed: list[tuple[float, float]] = []
    for i in rng.integers(0, len(xs), count * 30):
        x, y = int(xs[i]), int(ys[i])
        if taken[y, x]:
            continue
        placed.append((float(x), float(y)))
        y0, x0 = y - keep, x - keep
        sy = slice(max(0, y0), min(region.shape[0], y + keep + 1))
        sx = slice(max(0, x0), min(region.shape[1], x + keep + 1))
        taken[sy, sx] |= disc[sy.start - y0 : sy.stop - y0, sx.start - x0 : sx.stop - x0]
        if len(placed) == count:
            break
    return placed
