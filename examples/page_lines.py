"""Cut the text lines out of scikit-image's photographed page (`skimage/data/page.png`) as separate images, for
trying the built-in reader on a real photo before full-page OCR exists:

    python examples/page_lines.py lines/

Lines are found with a horizontal ink profile after a local-contrast threshold, which suits a single-column photo
like this one; `ved ocr` on whole pages is the general tool.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter


def page_path() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data" / "page.png"


def cut_lines(image: Image.Image, min_height: int = 6) -> list[Image.Image]:
    grey = image.convert("L")
    background = np.asarray(grey.filter(ImageFilter.BoxBlur(15)), dtype=np.float32)
    ink = np.asarray(grey, dtype=np.float32) < background - 20  # darker than its surroundings
    profile = ink.mean(axis=1)
    rows = profile > 0.12 * profile.max()  # a slanted photo: rows between lines still hold a little ink
    lines, start = [], None
    for y, on in enumerate([*rows, False]):
        if on and start is None:
            start = y
        elif not on and start is not None:
            if y - start >= min_height:
                cols = np.flatnonzero(ink[start:y].any(axis=0))
                pad = (y - start) // 3
                box = (
                    max(0, cols[0] - pad),
                    max(0, start - pad),
                    min(grey.width, cols[-1] + pad + 1),
                    min(grey.height, y + pad),
                )
                lines.append(image.crop(box))
            start = None
    return lines


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "page-lines")
    out.mkdir(parents=True, exist_ok=True)
    for i, line in enumerate(cut_lines(Image.open(page_path()))):
        line.save(out / f"line{i:02d}.png")
    print(f"wrote {i + 1} lines of {page_path().name} to {out}/")


if __name__ == "__main__":
    main()
