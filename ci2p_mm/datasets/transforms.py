"""Decoding messy image files to RGB, or refusing them with a reason.

Folders scraped from the web (Animals-10 is one) hold every kind of file
that a viewer shows as a picture, and some that it does not. mmcv's
``LoadImageFromFile`` decodes with OpenCV, which drops transparency
(transparent pixels keep whatever colour they happen to store, often
black), clips 16-bit grey images, and decodes truncated JPEGs into a grey
bottom half without an error. :class:`LoadImageRGB` decodes with Pillow
instead and decides every case explicitly:

============================  ===============================================
input                         result
============================  ===============================================
RGB, progressive JPEG         decoded as is
grey (L, 1-bit)               grey copied to R, G and B
palette (P)                   its colours; transparent entries composited
RGBA, LA, palette + tRNS      composited on ``background`` (white)
CMYK / YCbCr JPEG             Pillow's conversion (Adobe-inverted CMYK too)
16-bit RGB(A)                 high byte (Pillow's own 16 -> 8 bit reading)
16-bit grey (I;16*, I)        scaled by 255/65535 (not clipped at 255)
EXIF orientation 2-8          rotated/flipped as a viewer shows it
animated GIF/WebP, TIFF pages the first frame
any extension, any case       decoded by content, not by name
zero-byte file                rejected
truncated / corrupt data      rejected (Pillow's ``LOAD_TRUNCATED_IMAGES``
                              must stay False, its default)
not an image (HTML, text...)  rejected
float images (mode F), other  rejected
modes without a defined range
a side below ``min_size``     rejected (placeholders, tracking pixels)
more than ``max_pixels``      rejected (decompression-bomb guard)
============================  ===============================================

Colour profiles (ICC) are ignored, as OpenCV and torchvision do.
"""
import io
import os.path as osp
from typing import Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio
from mmpretrain.registry import TRANSFORMS
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from ci2p_mm.utils.errors import UserError

#: Pillow's own default limit (about 89.5 megapixels, 0.25 GB as RGB).
DEFAULT_MAX_PIXELS = 89_478_485
#: Smaller sides are placeholders or tracking pixels, not photographs.
DEFAULT_MIN_SIZE = 8

_FIX_REPLACE = ('re-download or re-export the file, or delete it and '
                'rewrite the annotation files (for Animals-10: '
                'tools/dataset_converters/prepare_animals10.py)')
_HOW_TO_SKIP = ('To skip such files instead (replaced by the next readable '
                'sample in training, left out of evaluation, counted in the '
                'log), set skip_bad_images=True on the dataset, e.g. '
                '--cfg-options train_dataloader.dataset.skip_bad_images=True. '
                'List all bad files first with tools/misc/verify_dataset.py '
                'CONFIG.')


class BadImageError(UserError, ValueError):
    """An image file that cannot be used, with the reason and the fix."""

    def __init__(self, path: str, reason: str, fix: str = _FIX_REPLACE):
        self.path = path
        self.reason = reason
        self.fix = fix
        super().__init__(f'Bad image {path}: {reason}. Fix: {fix}. '
                         f'{_HOW_TO_SKIP}')


def _composite(img: Image.Image, background: Sequence[int]) -> Image.Image:
    rgba = img.convert('RGBA')
    canvas = Image.new('RGBA', rgba.size, tuple(background) + (255, ))
    return Image.alpha_composite(canvas, rgba).convert('RGB')


def _has_alpha(img: Image.Image) -> bool:
    return (img.mode in ('RGBA', 'LA', 'La', 'RGBa', 'PA')
            or (img.mode == 'P' and 'transparency' in img.info))


def to_rgb(img: Image.Image, path: str,
           background: Sequence[int] = (255, 255, 255)) -> np.ndarray:
    """A decoded Pillow image as ``uint8`` RGB ``[H, W, 3]``."""
    mode = img.mode
    if _has_alpha(img):
        return np.asarray(_composite(img, background))
    if mode.startswith('I;16') or mode == 'I':
        grey = np.asarray(img).astype(np.int64)
        if grey.size and (grey.min() < 0 or grey.max() > 65535):
            raise BadImageError(
                path, f'{mode} image with values in [{grey.min()}, '
                f'{grey.max()}], outside the 16-bit range',
                'convert it to an 8-bit RGB JPEG or PNG')
        grey = ((grey * 255 + 32767) // 65535).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode in ('1', 'L', 'P', 'RGB', 'RGBX', 'CMYK', 'YCbCr'):
        return np.asarray(img.convert('RGB'))
    raise BadImageError(
        path, f'unsupported pixel mode {mode!r} (e.g. floating point, with '
        f'no defined 0-255 range)', 'convert it to an 8-bit RGB JPEG or PNG')


def decode_image(data: bytes,
                 path: str,
                 background: Sequence[int] = (255, 255, 255),
                 max_pixels: int = DEFAULT_MAX_PIXELS,
                 min_size: int = DEFAULT_MIN_SIZE) -> np.ndarray:
    """Decode image bytes to ``uint8`` RGB ``[H, W, 3]`` as a viewer shows
    them, or raise :class:`BadImageError` naming ``path`` and the reason."""
    if not data:
        raise BadImageError(path, 'empty file (0 bytes)')
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise BadImageError(
            path, f'not an image: Pillow recognises no image format (it '
            f'starts with {data[:16]!r})') from None
    except (Image.DecompressionBombError,
            Image.DecompressionBombWarning) as err:
        raise BadImageError(
            path, f'too many pixels ({err})',
            'downscale the file, or raise max_pixels of LoadImageRGB') from err
    except Exception as err:
        raise BadImageError(
            path, f'truncated or corrupt header ({type(err).__name__}: '
            f'{err})') from err
    width, height = img.size
    if width * height > max_pixels:
        raise BadImageError(
            path, f'{width}x{height} = {width * height} pixels, more than '
            f'max_pixels={max_pixels} (decompression-bomb guard)',
            'downscale the file, or raise max_pixels of LoadImageRGB')
    if min(width, height) < min_size:
        raise BadImageError(
            path, f'{width}x{height} pixels: a side is below min_size='
            f'{min_size} (a placeholder or tracking pixel, not a photo)',
            'delete it, or lower min_size of LoadImageRGB')
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise BadImageError(
            path, 'PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True in this '
            'process, so truncated files would decode to grey without an '
            'error', 'find the code that sets it and remove that line')
    try:
        img.load()  # decodes everything: truncated data fails here
    except Exception as err:
        raise BadImageError(
            path, f'truncated or corrupt image data ({type(err).__name__}: '
            f'{err})') from err
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block: viewers ignore it too
        pass
    return to_rgb(img, path, background)


@TRANSFORMS.register_module()
class LoadImageRGB(BaseTransform):
    """Load an image with Pillow, robustly; a drop-in for mmcv's
    ``LoadImageFromFile``.

    Output is like ``LoadImageFromFile``'s: ``results['img']`` is a
    ``uint8`` **BGR** array ``[H, W, 3]`` (the data preprocessor converts
    to RGB), with ``img_shape`` and ``ori_shape``. What is decoded how, and
    what is refused, is listed in this module's docstring; a refused file
    raises :class:`BadImageError`, which names the file, the reason and
    the fix (or the dataset skips it, with ``skip_bad_images=True``).

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
        backend_args (dict, optional): mmengine file backend arguments.
    """

    def __init__(self,
                 to_float32: bool = False,
                 background: Sequence[int] = (255, 255, 255),
                 max_pixels: int = DEFAULT_MAX_PIXELS,
                 min_size: int = DEFAULT_MIN_SIZE,
                 backend_args: Optional[dict] = None):
        if len(background) != 3 or not all(0 <= c <= 255
                                           for c in background):
            raise ValueError(f'background must be an RGB triple in 0-255; '
                             f'got {background}')
        self.to_float32 = to_float32
        self.background = tuple(int(c) for c in background)
        self.max_pixels = int(max_pixels)
        self.min_size = int(min_size)
        self.backend_args = backend_args
        if (Image.MAX_IMAGE_PIXELS is not None
                and self.max_pixels > Image.MAX_IMAGE_PIXELS):
            # Pillow warns above its limit and refuses above twice it.
            Image.MAX_IMAGE_PIXELS = self.max_pixels

    def read_rgb(self, path: str) -> np.ndarray:
        """The file as ``uint8`` RGB, or :class:`BadImageError`."""
        try:
            data = fileio.get(path, backend_args=self.backend_args)
        except FileNotFoundError:
            raise BadImageError(
                path, 'file not found',
                'restore the file, or rewrite the annotation files so they '
                'list only existing files') from None
        except Exception as err:
            if osp.isdir(path):
                raise BadImageError(path, 'a folder, not a file',
                                    'fix the annotation file') from err
            raise BadImageError(
                path, f'cannot be read ({type(err).__name__}: {err})',
                'check the path and its permissions') from err
        return decode_image(data, path, self.background, self.max_pixels,
                            self.min_size)

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
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[..., 0]
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
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
        if results.get('img_path') is None and 'img' in results:
            img = np.ascontiguousarray(self.check_array(results['img']))
        elif results.get('img_path') is not None:
            img = np.ascontiguousarray(
                self.read_rgb(results['img_path'])[..., ::-1])
        else:
            raise ValueError(f'{type(self).__name__} needs results["img_path"]'
                             f' (a file) or results["img"] (a decoded '
                             f'array); got keys {sorted(results)}.')
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(to_float32={self.to_float32}, '
                f'background={self.background}, max_pixels={self.max_pixels}'
                f', min_size={self.min_size}, '
                f'backend_args={self.backend_args})')
