"""Small generated data sets for the end-to-end downstream tests.

Each one is in the format the real data set has, so the libraries' own
datasets, pipelines and metrics read it unchanged:

- :func:`make_isic2017` - ISIC 2017 Task 1's release layout (images and
  0/255 masks), a dark elliptical "lesion" on skin-coloured noise;
- :func:`make_coco_detection` - a COCO instances file, 1-2 coloured
  rectangles ("box") per image;
- :func:`make_coco_keypoints` - a COCO person-keypoints file, one "person"
  box per image with its 17 keypoints drawn as discs of fixed colours.

All are seeded, so a test sees the same images on every run.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image, ImageDraw

#: One colour per COCO keypoint (17), distinct enough to be learnable.
KEYPOINT_COLOURS = [
    tuple(
        int(c) for c in np.array([(i * 97) % 256, (i * 57 + 80) %
                                  256, (i * 151 + 40) % 256]))
    for i in range(17)
]


def _noise(rng, h, w, base, spread=25) -> np.ndarray:
    img = rng.normal(base, spread, size=(h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def make_isic2017(root: str,
                  splits: Dict[str, int],
                  size: Tuple[int, int] = (96, 128),
                  seed: int = 0) -> str:
    """ISIC 2017-style folders under ``root``.

    Args:
        splits: ISIC split name -> number of images, e.g.
            ``{'Training': 8, 'Validation': 4}``.
        size: (H, W) of every image (not a multiple of 32 on purpose: the
            configs resize).
    """
    rng = np.random.default_rng(seed)
    h, w = size
    for split, n in splits.items():
        img_dir = osp.join(root, f'ISIC-2017_{split}_Data')
        ann_dir = osp.join(root, f'ISIC-2017_{split}_Part1_GroundTruth')
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(n):
            stem = f'ISIC_{split[:2].lower()}{i:05d}'
            img = Image.fromarray(_noise(rng, h, w, (200, 160, 140)))
            mask = Image.new('L', (w, h), 0)
            cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
            ry, rx = rng.uniform(0.15, 0.3) * h, rng.uniform(0.15, 0.3) * w
            box = [cx - rx, cy - ry, cx + rx, cy + ry]
            ImageDraw.Draw(img).ellipse(box, fill=(90, 50, 40))
            ImageDraw.Draw(mask).ellipse(box, fill=255)
            img.save(osp.join(img_dir, stem + '.jpg'), quality=95)
            mask.save(osp.join(ann_dir, stem + '_segmentation.png'))
    return root


def _write_coco(path: str, images: List[dict], annotations: List[dict],
                categories: List[dict]) -> str:
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(
            dict(
                images=images, annotations=annotations, categories=categories),
            f)
    return path


def make_coco_detection(root: str,
                        n: int,
                        size: Tuple[int, int] = (96, 128),
                        seed: int = 0,
                        name: str = 'train') -> str:
    """``root/<name>/*.jpg`` and ``root/annotations/<name>.json`` (COCO
    instances, one category ``box``). Returns the annotation file."""
    rng = np.random.default_rng(seed)
    h, w = size
    os.makedirs(osp.join(root, name), exist_ok=True)
    images, anns = [], []
    for i in range(n):
        img = Image.fromarray(_noise(rng, h, w, (120, 120, 120)))
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(1, 3))):
            bw, bh = rng.uniform(0.25, 0.45) * w, rng.uniform(0.25, 0.45) * h
            x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            draw.rectangle([x, y, x + bw, y + bh], fill=(230, 40, 40))
            anns.append(
                dict(
                    id=len(anns) + 1,
                    image_id=i + 1,
                    category_id=1,
                    bbox=[x, y, bw, bh],
                    area=bw * bh,
                    iscrowd=0))
        file_name = f'{i:05d}.jpg'
        img.save(osp.join(root, name, file_name), quality=95)
        images.append(dict(id=i + 1, file_name=file_name, height=h, width=w))
    return _write_coco(
        osp.join(root, 'annotations', f'{name}.json'), images, anns,
        [dict(id=1, name='box')])


def make_coco_keypoints(root: str,
                        n: int,
                        size: Tuple[int, int] = (128, 128),
                        seed: int = 0,
                        name: str = 'train') -> str:
    """``root/<name>/*.jpg`` and ``root/annotations/<name>.json`` (COCO
    person keypoints: one person per image, 17 visible keypoints drawn as
    discs). Returns the annotation file."""
    rng = np.random.default_rng(seed)
    h, w = size
    os.makedirs(osp.join(root, name), exist_ok=True)
    images, anns = [], []
    for i in range(n):
        img = Image.fromarray(_noise(rng, h, w, (110, 110, 110)))
        draw = ImageDraw.Draw(img)
        bw, bh = rng.uniform(0.5, 0.7) * w, rng.uniform(0.6, 0.8) * h
        x0, y0 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        keypoints = []
        for colour in KEYPOINT_COLOURS:
            kx = x0 + rng.uniform(0.1, 0.9) * bw
            ky = y0 + rng.uniform(0.1, 0.9) * bh
            draw.ellipse([kx - 3, ky - 3, kx + 3, ky + 3], fill=colour)
            keypoints += [float(kx), float(ky), 2]
        anns.append(
            dict(
                id=i + 1,
                image_id=i + 1,
                category_id=1,
                bbox=[x0, y0, bw, bh],
                area=bw * bh,
                iscrowd=0,
                num_keypoints=17,
                keypoints=keypoints))
        file_name = f'{i:05d}.jpg'
        img.save(osp.join(root, name, file_name), quality=95)
        images.append(dict(id=i + 1, file_name=file_name, height=h, width=w))
    return _write_coco(
        osp.join(root, 'annotations', f'{name}.json'), images, anns, [
            dict(
                id=1,
                name='person',
                supercategory='person',
                keypoints=[f'kp{k}' for k in range(17)],
                skeleton=[])
        ])
