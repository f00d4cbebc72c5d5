"""Image folders for the codec tools (``tools/train_codec.py``,
``tools/analysis_tools/codec_report.py``).

Files are found by extension (recursively, hidden ones skipped) and decoded
with :func:`ci2p_mm.datasets.decode_image`, the same robust Pillow decoding
as the training pipelines' ``LoadImageRGB``: EXIF orientation applied,
grey/palette/CMYK/16-bit converted, alpha composited on white, and empty,
truncated or non-image files refused with the reason.
"""
import os
import os.path as osp
from typing import List, Tuple

from PIL import Image

from ci2p_mm.utils.errors import UserError
from ci2p_mm.datasets.transforms import BadImageError, decode_image

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif',
                  '.tiff', '.webp')


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


def load_rgb(path: str) -> Image.Image:
    """The file as an RGB PIL image, or :class:`ImageFolderError`."""
    try:
        with open(path, 'rb') as f:
            data = f.read()
        return Image.fromarray(decode_image(data, path, min_size=1))
    except BadImageError as err:
        raise ImageFolderError(f'Cannot use image {path}: {err.reason}. '
                               f'Remove it from the folder.') from err
    except OSError as err:
        raise ImageFolderError(f'Cannot read image {path}: {err}') from err


def image_size(path: str) -> Tuple[int, int]:
    """(width, height) from the file's header, without decoding it."""
    try:
        with Image.open(path) as img:
            return img.size
    except Exception as err:
        raise ImageFolderError(f'Cannot read image {path}: '
                               f'{type(err).__name__}: {err}') from err
