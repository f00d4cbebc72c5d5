"""Image folders for the codec tools (``tools/train_codec.py``,
``tools/analysis_tools/codec_report.py``).

Files are found by extension (recursively, hidden ones skipped) and read
and decoded by :mod:`ci2p_mm.utils.image_files`, as the training
pipelines' ``SafeLoadImageFromFile`` does: regular files only, size-capped,
photo formats only (no Pillow plugin that runs another program), EXIF
orientation applied, grey/palette/CMYK/16-bit converted, alpha composited
on white, and empty, truncated or non-image files refused with the reason.
The folder is the user's own, so links in it are followed (to regular
files only).
"""
import os
import os.path as osp
import random
from typing import List, Optional, Tuple

from PIL import Image

from .errors import UserError
from .image_files import bad_image_as, image_file_size, load_image_file

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif',
                  '.tiff', '.webp')

_REMOVE = 'Remove it from the folder.'


class ImageFolderError(UserError, ValueError):
    """A missing or empty image folder, or an unreadable image in it."""


def list_images(root: str) -> List[str]:
    """Image files under ``root`` (recursive, sorted, hidden ones skipped)."""
    if not osp.isdir(root):
        raise ImageFolderError(f'Image folder {root} does not exist.')
    files = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith('.'))
        files.extend(
            osp.join(dirpath, f) for f in filenames
            if not f.startswith('.') and f.lower().endswith(IMG_EXTENSIONS))
    if not files:
        raise ImageFolderError(
            f'No images found under {root} (looked for '
            f'{", ".join(IMG_EXTENSIONS)}, in sub-folders too).')
    return sorted(files)


def split_images(image_dir: str,
                 val_dir: Optional[str] = None,
                 val_ratio: float = 0.1,
                 seed: int = 0) -> Tuple[List[str], List[str]]:
    """(training, validation) images: ``val_dir``'s if given, else a seeded
    random ``val_ratio`` share of ``image_dir``'s (one image at least, and
    at least one left for training)."""
    files = list_images(image_dir)
    if val_dir is not None:
        return files, list_images(val_dir)
    if val_ratio <= 0 or len(files) < 2:
        return files, []
    order = list(files)
    random.Random(seed).shuffle(order)
    n_val = min(len(files) - 1, max(1, round(len(files) * val_ratio)))
    return sorted(order[n_val:]), sorted(order[:n_val])


def load_rgb(path: str) -> Image.Image:
    """The file as an RGB PIL image, or :class:`ImageFolderError`."""
    with bad_image_as(ImageFolderError, f'image {path}', _REMOVE):
        return Image.fromarray(load_image_file(path, min_size=1))


def image_size(path: str) -> Tuple[int, int]:
    """(width, height) from the file's header, without decoding it."""
    with bad_image_as(ImageFolderError, f'image {path}', _REMOVE):
        return image_file_size(path)
