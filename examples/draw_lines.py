"""Draw short lines of text as images, in Hugging Face's imagefolder layout (N.png + metadata.jsonl), for trying
`ved train` where no dataset is at hand:

    python examples/draw_lines.py lines 8
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

WORDS = "the quick brown fox jumps over a lazy dog".split()


def draw_lines(folder: Path, count: int, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    font = ImageFont.load_default(size=20)
    with open(folder / "metadata.jsonl", "w") as metadata:
        for i in range(count):
            text = " ".join(random.Random(seed + i).sample(WORDS, 3))
            image = Image.new("RGB", (256, 32), "white")
            ImageDraw.Draw(image).text((4, 4), text, fill="black", font=font)
            image.save(folder / f"{i}.png")
            metadata.write(json.dumps({"file_name": f"{i}.png", "text": text}) + "\n")


if __name__ == "__main__":
    draw_lines(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 8)
