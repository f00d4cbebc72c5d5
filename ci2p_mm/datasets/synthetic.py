"""A small, learnable stand-in for Animals-10, written as real image files.

Each of the ten classes is one kind of pattern (disc, square, stripes of one
orientation, ...) drawn with random colours, sizes, positions and noise, in
the Kaggle folder layout (``raw-img/<italian class>/``) with Kaggle's mix of
``.jpeg``, ``.jpg`` and ``.png`` files. It lets the whole pipeline (prepare,
train, test) run with no download.
"""
import os
import os.path as osp

import numpy as np
from PIL import Image

from .animals10 import ITALIAN_TO_ENGLISH

_EXTENSIONS = ('.jpeg', '.jpg', '.png')


def _pattern(kind: int, size: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    cy, cx = rng.uniform(0.3, 0.7, 2)
    r = rng.uniform(0.15, 0.3)
    period = rng.uniform(0.08, 0.16)
    phase = rng.uniform(0, 1)
    shapes = [
        lambda: (yy - cy)**2 + (xx - cx)**2 < r**2,  # disc
        lambda: (abs(yy - cy) < r) & (abs(xx - cx) < r),  # square
        lambda: ((yy / period + phase) % 1) < 0.5,  # horizontal stripes
        lambda: ((xx / period + phase) % 1) < 0.5,  # vertical stripes
        lambda: (((xx + yy) / period + phase) % 1) < 0.5,  # diagonal
        lambda: (((xx // period) + (yy // period)) % 2) == 0,  # checkers
        lambda: abs(np.sqrt((yy - cy)**2 + (xx - cx)**2) - r) < 0.05,  # ring
        lambda: (abs(yy - cy) < 0.06) | (abs(xx - cx) < 0.06),  # cross
        lambda: (yy - cy) > abs(xx - cx) - r,  # triangle-ish wedge
        lambda:
        (((yy / period) % 1 < 0.3) & ((xx / period) % 1 < 0.3)),  # dots
    ]
    return shapes[kind]()


def make_toy_animals10(root: str,
                       images_per_class: int = 30,
                       size: int = 128,
                       seed: int = 0) -> str:
    """Write the toy data set under ``root/raw-img``; return that folder."""
    rng = np.random.default_rng(seed)
    raw_dir = osp.join(root, 'raw-img')
    for kind, folder in enumerate(ITALIAN_TO_ENGLISH):
        os.makedirs(osp.join(raw_dir, folder), exist_ok=True)
        for i in range(images_per_class):
            mask = _pattern(kind, size, rng)[..., None]
            fg, bg = rng.uniform(0, 255, (2, 3))
            img = np.where(mask, fg, bg) + rng.normal(0, 12, (size, size, 3))
            img = np.clip(img, 0, 255).astype(np.uint8)
            ext = _EXTENSIONS[i % len(_EXTENSIONS)]
            Image.fromarray(img).save(
                osp.join(raw_dir, folder, f'{folder}_{i:04d}{ext}'))
    return raw_dir
