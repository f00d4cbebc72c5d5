"""ISIC 2017 Task 1 (lesion segmentation) into mmseg's folder layout.

ISIC's release: ``ISIC-2017_<Split>_Data/ISIC_<id>.jpg`` images and
``ISIC-2017_<Split>_Part1_GroundTruth/ISIC_<id>_segmentation.png`` masks
(0 = background, 255 = lesion), ``<Split>`` in Training, Validation,
Test_v2. mmseg wants label maps holding class indices::

    out/img_dir/{train,val,test}/ISIC_<id>.jpg
    out/ann_dir/{train,val,test}/ISIC_<id>.png   (0 background, 1 lesion)

which ``configs/_base_/datasets/isic2017_seg.py`` reads::

    python tools/dataset_converters/isic2017.py data/ISIC2017 \
        data/isic2017_seg

(``data/ISIC2017`` holds the unpacked ISIC-2017_{Training,Validation,
Test_v2}_Data and _Part1_GroundTruth folders; see docs/segmentation.md.)

Every source file is read by :mod:`ci2p_mm.utils.image_files`: a regular
file (a FIFO, a device or a link out of the source folder is refused, never
read or copied), at most 256 MiB, in a photo format (images are checked to
open as one before they are copied; masks are decoded as training decodes
images, within its pixel, scan and memory limits). Each output file
is written atomically.
"""
import argparse
import os
import os.path as osp
from typing import Dict, Optional

import numpy as np
from PIL import Image

from ci2p_mm.utils.errors import UserError
from ci2p_mm.utils.image_files import (bad_image_as, load_image_file,
                                       open_image, read_image_file)
from ci2p_mm.utils.io import atomic_output, write_bytes_atomically

#: ISIC's split names -> mmseg's.
ISIC2017_SPLITS = {'Training': 'train', 'Validation': 'val', 'Test_v2': 'test'}
MASK_SUFFIX = '_segmentation.png'


class ISICLayoutError(UserError, ValueError):
    """A missing folder, an image without a mask, or an unreadable mask."""


def binarize_mask(path: str, src: Optional[str] = None) -> np.ndarray:
    """An ISIC mask file as a 0/1 ``uint8`` label map (> 127 is lesion;
    transparent pixels are background).

    ``src``: the data folder that links must stay inside."""
    with bad_image_as(ISICLayoutError, f'mask {path}'):
        rgb = load_image_file(path, (0, 0, 0), min_size=1, data_root=src)
    return (np.asarray(Image.fromarray(rgb).convert('L'))
            > 127).astype(np.uint8)


def read_image(path: str, src: str) -> bytes:
    """The bytes of an ISIC image, once they open as an allowed format."""
    with bad_image_as(ISICLayoutError, f'image {path}'):
        data = read_image_file(path, data_root=src)
        open_image(data, path).close()
    return data


def convert_isic2017(src: str,
                     out: str,
                     splits: Dict[str, str] = ISIC2017_SPLITS) -> Dict:
    """Copy ISIC 2017 images and write 0/1 masks in mmseg's layout.

    Splits whose image folder is absent are skipped (e.g. no test set
    downloaded); every image of a present split needs its mask.

    Returns:
        dict: ``{mmseg split: number of images}``.
    """
    counts = {}
    for isic, split in splits.items():
        img_src = osp.join(src, f'ISIC-2017_{isic}_Data')
        ann_src = osp.join(src, f'ISIC-2017_{isic}_Part1_GroundTruth')
        if not osp.isdir(img_src):
            continue
        if not osp.isdir(ann_src):
            raise ISICLayoutError(f'{img_src} has no mask folder {ann_src}.')
        img_out = osp.join(out, 'img_dir', split)
        ann_out = osp.join(out, 'ann_dir', split)
        os.makedirs(img_out, exist_ok=True)
        os.makedirs(ann_out, exist_ok=True)
        names = sorted(
            f for f in os.listdir(img_src)
            if f.endswith('.jpg') and not f.startswith('.'))
        for name in names:
            stem = name[:-len('.jpg')]
            mask = osp.join(ann_src, stem + MASK_SUFFIX)
            if not osp.lexists(mask):
                raise ISICLayoutError(f'Image {osp.join(img_src, name)} has '
                                      f'no mask {mask}.')
            write_bytes_atomically(
                osp.join(img_out, name),
                read_image(osp.join(img_src, name), src))
            with atomic_output(osp.join(ann_out, stem + '.png')) as tmp:
                Image.fromarray(binarize_mask(mask, src)).save(tmp, 'PNG')
        counts[split] = len(names)
    if not counts:
        raise ISICLayoutError(
            f'No ISIC-2017_<split>_Data folder under {src} (expected one '
            f'of {[f"ISIC-2017_{s}_Data" for s in splits]}).')
    return counts


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='ISIC 2017 Task 1 into mmseg\'s layout (img_dir/, '
        'ann_dir/ with 0/1 masks)')
    parser.add_argument('src', help='folder with the ISIC-2017_* folders')
    parser.add_argument('out', help='output root (img_dir/, ann_dir/)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """``tools/dataset_converters/isic2017.py``."""
    args = parse_args(argv)
    for split, n in convert_isic2017(args.src, args.out).items():
        print(f'{split}: {n} images')
    return 0
