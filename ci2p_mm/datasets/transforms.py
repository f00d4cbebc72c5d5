"""The image loader of the training pipelines: a file to a BGR array.

Folders scraped from the web (Animals-10 is one) hold every kind of file
that a viewer shows as a picture, and some that it does not. mmcv's
``LoadImageFromFile`` decodes with OpenCV, which drops transparency
(transparent pixels keep whatever colour they happen to store, often
black), clips 16-bit grey images, and decodes truncated JPEGs into a grey
bottom half without an error. :class:`SafeLoadImageFromFile` has the same
output (BGR, like mmcv) but reads and decodes with
:mod:`ci2p_mm.utils.image_files`: regular files only, a size cap, links
kept inside the data root, only photo formats (no Pillow plugin that runs
another program), and every conversion decided explicitly (the table is in
that module's docstring).

``LoadImageRGB``, its old name, stays registered (deprecated) so configs
and checkpoints that name it keep working; the name was wrong: like mmcv's
loader, it returns BGR.
"""
import warnings
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS
from PIL import Image

from ci2p_mm.utils.image_files import (DEFAULT_MAX_FILE_BYTES,
                                       DEFAULT_MAX_PIXELS, DEFAULT_MIN_SIZE,
                                       WHITE, BadImageError, load_image_file)


@TRANSFORMS.register_module()
@dataclass(eq=False)  # __init__ and __repr__ of the arguments
class SafeLoadImageFromFile(BaseTransform):
    """Load an image file, **as BGR** (like mmcv's ``LoadImageFromFile``),
    read safely and decoded faithfully with Pillow; a drop-in for mmcv's
    ``LoadImageFromFile``.

    **The output is BGR**: ``results['img']`` is a ``uint8`` **BGR** array
    ``[H, W, 3]``, as ``LoadImageFromFile`` gives (the data preprocessor
    converts to RGB), with ``img_shape`` and ``ori_shape``. What is read,
    decoded how, and refused is listed in :mod:`ci2p_mm.utils.image_files`;
    a refused file raises :class:`BadImageError`, which names the file, the
    reason and the fix (or the dataset skips it, with
    ``skip_bad_images=True``).

    Without ``img_path`` but with an already decoded ``img``, the transform
    checks the array and passes it on: mmpretrain's inferencers
    (``ImageClassificationInferencer``, ``inference_model``,
    ``FeatureExtractor``, its TorchServe handler) decode the input
    themselves (mmcv's ``imread``, BGR) and strip only a transform named
    ``LoadImageFromFile`` from the test pipeline. A grey ``[H, W]`` or
    ``[H, W, 1]`` array becomes three channels; other channel counts,
    non-8-bit arrays and sides below ``min_size`` are refused.

    Args:
        to_float32 (bool): Return ``float32`` instead of ``uint8``.
        background (sequence of int): RGB colour that transparent pixels
            are composited on. Defaults to white.
        max_pixels (int): Larger images are refused. Defaults to Pillow's
            limit (about 89.5 MP). A larger value also raises Pillow's own
            ``Image.MAX_IMAGE_PIXELS`` in this process.
        min_size (int): Images with a side below it are refused.
            Defaults to 8.
        max_file_bytes (int): Larger files are refused unread. Defaults to
            256 MiB.
        data_root (str, optional): A file that is a symbolic link must
            point inside this folder. Datasets of this project (``Animals10``,
            ``RobustImageNet``) and ``verify_dataset.py`` set it to the
            dataset's ``data_root`` when it is not given. Defaults to None
            (links are followed anywhere, to regular files only).
        allow_symlinks_out_of_root (bool): Follow links out of
            ``data_root`` too. Defaults to False.
        backend_args (dict, optional): mmengine file backend arguments. With
            a backend (or a URL) the file is fetched by mmengine whole and
            then size-checked; local files are read as described above.
    """

    to_float32: bool = False
    background: Sequence[int] = WHITE
    max_pixels: int = DEFAULT_MAX_PIXELS
    min_size: int = DEFAULT_MIN_SIZE
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    data_root: Optional[str] = None
    allow_symlinks_out_of_root: bool = False
    backend_args: Optional[dict] = None

    def __post_init__(self):
        if len(self.background) != 3 or not all(0 <= c <= 255
                                                for c in self.background):
            raise ValueError(f'background must be an RGB triple in 0-255; '
                             f'got {self.background}')
        self.background = tuple(int(c) for c in self.background)
        if (Image.MAX_IMAGE_PIXELS is not None
                and self.max_pixels > Image.MAX_IMAGE_PIXELS):
            # Pillow warns above its limit and refuses above twice it.
            Image.MAX_IMAGE_PIXELS = self.max_pixels

    def read_rgb(self, path: str) -> np.ndarray:
        """The file as ``uint8`` RGB, or :class:`BadImageError`."""
        return load_image_file(path, self.background, self.max_pixels,
                               self.min_size, self.max_file_bytes,
                               self.data_root, self.allow_symlinks_out_of_root,
                               self.backend_args)

    def check(self, path: str) -> Optional[str]:
        """``None`` when the file decodes, else the reason it does not."""
        try:
            self.read_rgb(path)
        except BadImageError as err:
            return err.reason
        return None

    def check_array(self, img) -> np.ndarray:
        """An already decoded image as ``uint8`` BGR ``[H, W, 3]``, or a
        ``ValueError`` saying what is wrong with it."""
        if not isinstance(img, np.ndarray):
            raise ValueError(f'{type(self).__name__} got results["img"] of '
                             f'type {type(img).__name__} and no "img_path"; '
                             f'pass an image path or a numpy array.')
        if img.ndim == 2 or img.ndim == 3 and img.shape[2] == 1:  # grey
            img = np.repeat(img.reshape(img.shape[:2] + (1, )), 3, axis=2)
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(
                f'Image array of shape {img.shape}: expected [H, W, 3] BGR '
                f'(as mmcv.imread returns) or [H, W] grey. Convert RGBA '
                f'arrays to BGR first (e.g. cv2.cvtColor(img, '
                f'cv2.COLOR_RGBA2BGR)).')
        if img.dtype != np.uint8:
            raise ValueError(
                f'Image array of dtype {img.dtype}: expected uint8 (0-255). '
                f'CI2P models scale to [0, 1] in their data preprocessor.')
        if min(img.shape[:2]) < self.min_size:
            raise ValueError(
                f'Image array of {img.shape[1]}x{img.shape[0]} pixels: a '
                f'side is below min_size={self.min_size}.')
        return img

    def transform(self, results: dict) -> dict:
        path = results.get('img_path')
        if path is None and 'img' not in results:
            raise ValueError(f'{type(self).__name__} needs results["img_path"]'
                             f' (a file) or results["img"] (a decoded '
                             f'array); got keys {sorted(results)}.')
        if path is None:
            img = np.ascontiguousarray(self.check_array(results['img']))
        else:
            img = np.ascontiguousarray(self.read_rgb(path)[..., ::-1])
        if self.to_float32:
            img = img.astype(np.float32)
        results.update(
            img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
        return results


@TRANSFORMS.register_module()
class LoadImageRGB(SafeLoadImageFromFile):
    """Deprecated name of :class:`SafeLoadImageFromFile` (same arguments,
    same output, which is **BGR** despite this name). Kept so that configs,
    and the configs recorded in checkpoints, that name it still build."""

    def __init__(self, *args, **kwargs):
        warnings.warn(
            "The transform 'LoadImageRGB' is deprecated: it returns BGR, as "
            "mmcv's LoadImageFromFile does; write "
            "dict(type='SafeLoadImageFromFile', ...) instead (same "
            "arguments).",
            FutureWarning,
            stacklevel=2)
        super().__init__(*args, **kwargs)
