"""Skew: the angle of the text lines, found by projection-profile sharpness, and the frame that undoes it.

Angles are in degrees, counter-clockwise on screen (PIL's `rotate` convention): a page whose lines climb to the
right has a positive angle. The estimate projects the tops and bottoms of the glyph-sized components (weighted by
width) onto the normal of each candidate direction; the direction whose histogram is sharpest (largest sum of squared
bins) is the lines' direction: coarse steps over the whole range, then fine steps around the best.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


def _sharpness(x: np.ndarray, y: np.ndarray, w: np.ndarray, angles: np.ndarray, bin_px: float) -> np.ndarray:
    out = np.empty(angles.size)
    for i, a in enumerate(np.deg2rad(angles)):
        v = (y * np.cos(a) + x * np.sin(a)) / bin_px
        v = np.floor(v - v.min()).astype(np.int64)
        hist = np.bincount(v, weights=w)
        out[i] = float(np.dot(hist, hist))
    return out


def estimate_angle(x: np.ndarray, y: np.ndarray, w: np.ndarray, bin_px: float, max_angle: float = 11.0) -> float:
    """Direction (degrees) of the lines through the points (x, y) with weights w; 0 when there is too little."""
    if x.size < 6:
        return 0.0
    coarse = np.arange(-max_angle, max_angle + 1e-9, 0.5)
    s = _sharpness(x, y, w, coarse, bin_px)
    best = float(coarse[int(np.argmax(s))])
    fine = np.arange(best - 0.5, best + 0.5 + 1e-9, 0.05)
    s = _sharpness(x, y, w, fine, bin_px)
    i = int(np.argmax(s))
    if 0 < i < fine.size - 1:  # parabola through the peak and its neighbours
        d = s[i - 1] - 2 * s[i] + s[i + 1]
        if d < 0:
            return float(fine[i] + 0.05 * 0.5 * (s[i - 1] - s[i + 1]) / d)
    return float(fine[i])


@dataclass(frozen=True)
class Frame:
    """The upright (deskewed) frame of an image: u runs along the lines, v down across them.

    `scale` is image pixels per frame pixel (pages larger than the working size are analysed shrunk).
    """

    angle: float  # degrees, counter-clockwise, of the lines in the image
    cx: float  # centre of the image (image pixels)
    cy: float
    ou: float  # centre in the frame (frame pixels)
    ov: float
    width: int  # frame size (frame pixels)
    height: int
    scale: float = 1.0

    @classmethod
    def for_image(cls, width: int, height: int, angle: float, scale: float = 1.0) -> Frame:
        """The frame holding the whole image, rotated by -angle, at 1/scale of the image's size."""
        a = np.deg2rad(angle)
        c, s = abs(np.cos(a)), abs(np.sin(a))
        fw = int(np.ceil((width * c + height * s) / scale))
        fh = int(np.ceil((width * s + height * c) / scale))
        return cls(angle, width / 2, height / 2, fw / 2, fh / 2, fw, fh, scale)

    def to_frame(self, x, y):
        a = np.deg2rad(self.angle)
        dx, dy = np.asarray(x, float) - self.cx, np.asarray(y, float) - self.cy
        u = (dx * np.cos(a) - dy * np.sin(a)) / self.scale + self.ou
        v = (dx * np.sin(a) + dy * np.cos(a)) / self.scale + self.ov
        return u, v

    def to_image(self, u, v):
        a = np.deg2rad(self.angle)
        du = (np.asarray(u, float) - self.ou) * self.scale
        dv = (np.asarray(v, float) - self.ov) * self.scale
        return self.cx + du * np.cos(a) + dv * np.sin(a), self.cy - du * np.sin(a) + dv * np.cos(a)

    def affine(self) -> tuple[float, ...]:
        """PIL AFFINE data: frame pixel (u, v) -> image pixel (x, y), for Image.transform(frame size, AFFINE, ...)."""
        a = np.deg2rad(self.angle)
        c, s = np.cos(a) * self.scale, np.sin(a) * self.scale
        x0 = self.cx - self.ou * c - self.ov * s
        y0 = self.cy + self.ou * s - self.ov * c
        return (c, s, x0, -s, c, y0)

    def warp(self, image: Image.Image, resample=Image.NEAREST, fill=0) -> Image.Image:
        """The image in this frame (PIL does the resampling)."""
        return image.transform((self.width, self.height), Image.AFFINE, self.affine(), resample, fillcolor=fill)
