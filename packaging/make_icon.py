"""Draw the application icon, packaging/skinapp.png (256x256): run once, commit the PNG.

A teal tile with a skin-coloured disc and a dark lesion under a white lens ring, drawn at 4x
and scaled down so the edges are smooth. Kept as code so the icon can be redrawn at any size.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw

SIZE = 256
SCALE = 4


def draw(size: int = SIZE) -> Image.Image:
    s = size * SCALE
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((0, 0, s - 1, s - 1), radius=s // 6, fill=(17, 122, 139, 255))
    d.ellipse((s * 0.16, s * 0.16, s * 0.76, s * 0.76), fill=(233, 190, 160, 255))
    d.ellipse((s * 0.36, s * 0.38, s * 0.54, s * 0.54), fill=(92, 52, 38, 255))
    d.ellipse((s * 0.27, s * 0.27, s * 0.65, s * 0.65), outline=(255, 255, 255, 255), width=s // 28)
    d.line((s * 0.60, s * 0.60, s * 0.84, s * 0.84), fill=(255, 255, 255, 255), width=s // 14)
    return img.resize((size, size), Image.Resampling.LANCZOS)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("skinapp.png")
    draw().save(target, optimize=True)
    print(f"wrote {target}")
