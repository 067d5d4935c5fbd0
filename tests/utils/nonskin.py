"""Images that are not skin photographs, for the input-domain gate's tests.

`held_out()` is the set the gate's figures are reported on: 20 images, none of them used
to choose the gate's design (`DEVELOPMENT` are the photographs that were looked at while
tuning). They are skimage's bundled photographs (crops and variants) and scenes drawn here.
"""

from __future__ import annotations

import numpy as np
import skimage.data
from PIL import Image, ImageDraw

#: skimage photographs the gate was developed on (not in the held-out set as they are).
DEVELOPMENT = ("astronaut", "chelsea", "coffee", "rocket", "camera", "brick", "grass", "moon")


def photo(name: str) -> np.ndarray:
    """A bundled skimage picture as HWC uint8 RGB."""
    arr = np.asarray(getattr(skimage.data, name)())
    if arr.dtype != np.uint8:
        arr = (arr.astype(np.float64) / max(1, arr.max()) * 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return np.ascontiguousarray(arr[..., :3])


def _crop(arr: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    h, w = arr.shape[:2]
    x0, y0, x1, y1 = box
    return np.ascontiguousarray(arr[int(y0 * h) : int(y1 * h), int(x0 * w) : int(x1 * w)])


def coffee_cup() -> np.ndarray:
    """skimage's photograph of a cup of coffee on a table (the issue's example)."""
    return photo("coffee")


def _canvas(rng: np.random.Generator, base: tuple[int, int, int], noise: float) -> Image.Image:
    arr = np.array(base, dtype=np.float32) + rng.normal(0, noise, (240, 320, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _sky(rng: np.random.Generator) -> np.ndarray:
    t = np.linspace(0, 1, 240)[:, None, None]
    arr = (1 - t) * np.array([70, 130, 220]) + t * np.array([200, 225, 250])
    img = Image.fromarray(np.broadcast_to(arr, (240, 320, 3)).astype(np.uint8))
    ImageDraw.Draw(img).ellipse((230, 30, 280, 80), fill=(255, 240, 180))
    return np.asarray(img)


def _checkerboard(rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:240, 0:320] // 40
    return np.where(((x + y) % 2)[..., None] == 1, [230, 230, 230], [30, 30, 30]).astype(np.uint8)


def _stripes(rng: np.random.Generator) -> np.ndarray:
    colours = np.array(
        [[230, 40, 40], [240, 160, 30], [240, 230, 40], [40, 180, 60], [40, 80, 220]]
    )
    return colours[(np.arange(320) // 64) % 5][None, :, :].repeat(240, 0).astype(np.uint8)


def _wood(rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:240, 0:320].astype(np.float32)
    rings = np.sin((x + 8 * np.sin(y / 23)) / 5) * 0.5 + 0.5
    arr = np.array([150, 100, 55]) * (0.75 + 0.25 * rings[..., None])
    return np.clip(arr + rng.normal(0, 4, arr.shape), 0, 255).astype(np.uint8)


def _text_page(rng: np.random.Generator) -> np.ndarray:
    img = _canvas(rng, (245, 243, 235), 2)
    draw = ImageDraw.Draw(img)
    for row in range(12):
        draw.text((12, 10 + row * 19), "Patient leaflet: sun protection " * 2, fill=(20, 20, 20))
    return np.asarray(img)


def _drawn_cup(rng: np.random.Generator) -> np.ndarray:
    """A cup of coffee seen from above on a blue-grey table."""
    img = _canvas(rng, (120, 130, 150), 5)
    draw = ImageDraw.Draw(img)
    draw.ellipse((60, 20, 260, 220), fill=(245, 245, 240))
    draw.ellipse((90, 50, 230, 190), fill=(92, 58, 34))
    draw.ellipse((130, 90, 170, 120), fill=(200, 160, 110))
    return np.asarray(img)


def _sand(rng: np.random.Generator) -> np.ndarray:
    return np.asarray(_canvas(rng, (215, 190, 150), 18))


def held_out() -> dict[str, np.ndarray]:
    """20 non-skin images (name -> HWC uint8) that the gate was not tuned on."""
    rng = np.random.default_rng(7)
    scenes = {
        "sky": _sky,
        "checkerboard": _checkerboard,
        "stripes": _stripes,
        "wood": _wood,
        "text_page": _text_page,
        "drawn_cup": _drawn_cup,
        "sand": _sand,
    }
    images = {
        "immunohistochemistry": photo("immunohistochemistry"),
        "coins": photo("coins"),
        "page": photo("page"),
        "horse": photo("horse"),
        "colorwheel": photo("colorwheel"),
        "logo": photo("logo"),
        "cell": photo("cell"),
        "gravel": photo("gravel"),
        "hubble_crop": _crop(photo("hubble_deep_field"), (0.2, 0.2, 0.7, 0.7)),
        "retina_crop": _crop(photo("retina"), (0.25, 0.25, 0.75, 0.75)),
        "coffee_cup_crop": _crop(photo("coffee"), (0.15, 0.05, 0.85, 0.75)),
        "chelsea_fur_crop": _crop(photo("chelsea"), (0.1, 0.45, 0.5, 0.95)),
        "rocket_crop": _crop(photo("rocket"), (0.3, 0.0, 0.9, 0.6)),
    }
    images.update({name: make(rng) for name, make in scenes.items()})
    return images
