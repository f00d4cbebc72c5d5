"""Opening image files someone else made: read safely, decode faithfully.

The one place where CI2P-MM reads an image file and decodes it (the
training pipelines' :class:`~ci2p_mm.datasets.SafeLoadImageFromFile`,
``verify_dataset.py``, the codec tools' image folders (:func:`list_images`,
:func:`split_images`), the ISIC converter and ``demo/image_demo.py`` all
come here). It is in ``utils``, the lowest
layer, so every package can use it.

Reading (:func:`read_image_file`)
    Only a regular file is read: a FIFO would block the reader forever,
    ``/dev/zero`` never ends, a folder or socket is not an image. The file
    is opened with ``O_NONBLOCK`` (opening a FIFO does not wait for a
    writer) and ``O_NOFOLLOW``, checked with ``fstat`` on the open
    descriptor, and read up to ``max_file_bytes`` (default 256 MiB, the size
    of an uncompressed 8-bit RGB image at Pillow's pixel limit). A file
    that is itself a symbolic link is followed only when its target is
    inside the data root (when one is known), unless
    ``allow_symlinks_out_of_root=True``; links to folders are followed (data
    sets are often linked into ``data/``).

Decoding (:func:`decode_image`)
    Pillow decodes by content, through whichever of its plugins recognises
    the bytes. Some plugins hand the file to other programs (the EPS
    plugin runs Ghostscript on PostScript), so only the formats of
    :data:`ALLOWED_FORMATS` are ever tried: a PostScript file named
    ``x.jpg`` is refused as "EPS, not an allowed format" without any other
    plugin seeing it.

Errors are :class:`BadImageError`: the file, the reason and the fix. They
never quote the file's bytes (a link to a private file would put them in
the log).

What is decoded how:

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
any extension, any case       decoded by content, not by name, if the
                              content is an allowed format
another format (EPS, PDF,     rejected, named; no other plugin sees it
PSD, ICO, ...)
zero-byte file                rejected
truncated / corrupt data      rejected (Pillow's ``LOAD_TRUNCATED_IMAGES``
                              must stay False, its default)
a JPEG of more than           rejected unread (each scan is a pass over the
``MAX_JPEG_SCANS`` scans      whole image: one scan repeated 2,000 times
                              stalls a decode for 20 s and more)
PNG text/ICC chunks over      rejected, named (Pillow's ``MAX_TEXT_CHUNK``,
Pillow's limits               1 MiB a chunk, ``MAX_TEXT_MEMORY`` in all)
not an image (HTML, text...)  rejected
float images (mode F), other  rejected
modes without a defined range
a side below ``min_size``     rejected (placeholders, tracking pixels)
more than ``max_pixels``      rejected (decompression-bomb guard)
FIFO, device, socket, folder  rejected, never read
larger than ``max_file_bytes``  rejected, never read
link out of the data root     rejected (unless allowed)
============================  ===============================================

Colour profiles (ICC) are ignored, as OpenCV and torchvision do.

Memory: a decode holds the file's bytes, the decoded image (Pillow keeps
4 bytes a pixel for RGB, RGBA, CMYK and 32-bit grey) and the RGB result (3
bytes a pixel); conversions run over stripes of ``STRIPE_PIXELS`` pixels,
so their temporaries stay a few MB. Peak beyond the file's bytes: 7 bytes
a pixel (2.4 times the RGB result), 8 with an EXIF rotation (done in place,
briefly two copies), 10 for a progressive JPEG without chroma subsampling
(libjpeg holds every coefficient, 2 bytes each, while it decodes): at most
0.9 GB at ``DEFAULT_MAX_PIXELS``. Figures: docs/security.md (issue 27).
"""
import contextlib
import errno
import functools
import io
import os
import os.path as osp
import random
import stat
from typing import Callable, List, Optional, Sequence, Tuple, Type

import numpy as np
from mmengine import fileio
from PIL import (Image, ImageFile, ImageOps, PngImagePlugin,
                 UnidentifiedImageError)

from .errors import UserError
from .io import NotARegularFile, fdopen_regular

#: Pillow formats that are decoded: what photo data sets hold (JPEG, whose
#: plugin also opens cameras' multi-picture MPO files, PNG, BMP, WebP, TIFF,
#: GIF) and netpbm (PPM, PGM: the codec tools' folders). No other Pillow
#: plugin is ever tried.
ALLOWED_FORMATS = ('JPEG', 'PNG', 'BMP', 'WEBP', 'TIFF', 'GIF', 'PPM')
#: Pillow's own default limit (about 89.5 megapixels, 0.25 GB as RGB).
DEFAULT_MAX_PIXELS = 89_478_485
#: Larger files are not read: 256 MiB, an uncompressed 8-bit RGB image at
#: ``DEFAULT_MAX_PIXELS`` (a photo is a few MB).
DEFAULT_MAX_FILE_BYTES = 256 * 2**20
#: Smaller sides are placeholders or tracking pixels, not photographs.
DEFAULT_MIN_SIZE = 8
#: Encoders write about 10 scans (libjpeg's progression: 10 for colour, 6
#: for grey); each is a pass over the whole image, so more are refused.
MAX_JPEG_SCANS = 100
#: Conversions to RGB run over stripes of rows of about this many pixels.
STRIPE_PIXELS = 1 << 18

_FIX_REPLACE = ('re-download or re-export the file, or delete it and '
                'rewrite the annotation files (for Animals-10: '
                'tools/dataset_converters/prepare_animals10.py)')
_HOW_TO_SKIP = ('To skip such files instead (replaced by the next readable '
                'sample in training, left out of evaluation, counted in the '
                'log), set skip_bad_images=True on the dataset, e.g. '
                '--cfg-options train_dataloader.dataset.skip_bad_images=True. '
                'List all bad files first with tools/misc/verify_dataset.py '
                'CONFIG.')
_FIX_NOT_A_FILE = ('an image must be a regular file: delete it (and rewrite '
                   'the annotation files), or replace it by the image itself')


class BadImageError(UserError, ValueError):
    """An image file that cannot be used, with the reason and the fix."""

    def __init__(self, path: str, reason: str, fix: str = _FIX_REPLACE):
        self.path = path
        self.reason = reason
        self.fix = fix
        super().__init__(f'Bad image {path}: {reason}. Fix: {fix}. '
                         f'{_HOW_TO_SKIP}')


@contextlib.contextmanager
def bad_image_as(error: Type[Exception], what: str, fix: Optional[str] = None):
    """Raise a refused image as ``error('Cannot use WHAT: REASON. FIX')``,
    for the tools that have their own error (``fix``: the reader's own
    when None)."""
    try:
        yield
    except BadImageError as err:
        raise error(f'Cannot use {what}: {err.reason}. '
                    f'{fix or f"Fix: {err.fix}."}') from None


# ---- reading ------------------------------------------------------------


def is_inside(path: str, root: str) -> bool:
    """Whether ``path`` (resolved) lies inside ``root`` (resolved)."""
    root = osp.realpath(root)
    return osp.commonpath([root, osp.realpath(path)]) == root


def file_too_big(path: str, size_words: str,
                 max_file_bytes: int) -> BadImageError:
    """``size_words`` says how big, e.g. ``'314572800 bytes'``."""
    return BadImageError(
        path, f'{size_words}, more than max_file_bytes={max_file_bytes} (the '
        f'cap on one image file); not read',
        're-encode or downscale it, or raise max_file_bytes of the image '
        'loader')


def read_image_file(path: str,
                    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
                    data_root: Optional[str] = None,
                    allow_symlinks_out_of_root: bool = False,
                    backend_args: Optional[dict] = None) -> bytes:
    """The bytes of an image file, or :class:`BadImageError`.

    Refuses (before reading anything) what is not a regular file, files
    over ``max_file_bytes``, and a file that is a symbolic link to a place
    outside ``data_root`` (when given, unless
    ``allow_symlinks_out_of_root``). See this module's docstring.

    With ``backend_args`` (mmengine file backend arguments) or a URL, the
    file is fetched by mmengine whole and then size-checked.
    """
    path = str(path)
    remote = backend_args is not None or '://' in path
    try:
        data = fileio.get(path, backend_args=backend_args) if remote else b''
        link = not remote and stat.S_ISLNK(os.lstat(path).st_mode)
    except FileNotFoundError:
        raise BadImageError(
            path, 'file not found',
            'restore the file, or rewrite the annotation files so they list '
            'only existing files') from None
    except Exception as err:  # an OSError, or any storage backend's error
        reason = getattr(err, 'strerror', None) or type(err).__name__
        raise BadImageError(path, f'cannot be read ({reason})',
                            'check the path and its permissions') from None
    if remote:
        if len(data) > max_file_bytes:
            raise file_too_big(path, f'{len(data)} bytes', max_file_bytes)
        return data
    target, via = path, ''
    if link:
        target = osp.realpath(path)
        via = f' (it is a symbolic link to {target})'
        if (data_root is not None and not allow_symlinks_out_of_root
                and not is_inside(target, data_root)):
            raise BadImageError(
                path, f'a symbolic link to {target}, outside the data root '
                f'{osp.realpath(data_root)}',
                'replace the link by the image it should be, or, if you '
                'trust every link in this data set, set '
                'allow_symlinks_out_of_root=True on the image loader')
    try:  # not inherited by child processes (PEP 446)
        fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as err:
        if err.errno == errno.ENOENT:
            raise BadImageError(
                path, f'file not found{via}',
                'restore the file or the link target, or '
                'rewrite the annotation files') from None
        if err.errno == errno.ELOOP:  # replaced by a link since the lstat
            raise BadImageError(
                path, 'changed into a symbolic link while '
                'being opened', _FIX_NOT_A_FILE) from None
        raise BadImageError(path, f'cannot be opened{via} ({err.strerror})',
                            'check the path and its permissions') from None
    try:
        f, info = fdopen_regular(fd)
    except NotARegularFile as err:
        fix = ('fix the annotation file'
               if stat.S_ISDIR(err.mode) else _FIX_NOT_A_FILE)
        raise BadImageError(path, f'{err}, not a regular file{via}; not read',
                            fix) from None
    with f:
        if info.st_size > max_file_bytes:
            raise file_too_big(path, f'{info.st_size} bytes{via}',
                               max_file_bytes)
        try:
            data = f.read(max_file_bytes + 1)
        except OSError as err:
            raise BadImageError(path, f'cannot be read{via} '
                                f'({err.strerror})',
                                'check the file and the disk') from None
    if len(data) > max_file_bytes:  # grew, or a file that lies about size
        raise file_too_big(path, 'holds more bytes than it said',
                           max_file_bytes)
    return data


# ---- decoding -----------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _registered_allowed_formats() -> Tuple[str, ...]:
    """The allowed formats this Pillow can read (WebP needs libwebp)."""
    Image.init()
    return tuple(f for f in ALLOWED_FORMATS if f in Image.OPEN)


def identify_other_format(data: bytes) -> Optional[str]:
    """The Pillow format that would claim ``data`` if every plugin were
    tried, among those not allowed; found with each plugin's signature
    check alone (a look at the first 16 bytes; nothing is opened)."""
    Image.init()
    prefix = data[:16]
    for name in Image.ID:
        if name in ALLOWED_FORMATS:
            continue
        _, accept = Image.OPEN[name]
        try:
            claimed = accept is not None and accept(prefix)
        except Exception:  # a plugin's check that needs more bytes
            continue
        if claimed and not isinstance(claimed, str):  # str: a warning
            return name
    return None


def _looks_like_text(data: bytes) -> bool:
    try:
        text = data[:512].decode('utf-8')
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in '\r\n\t' for c in text)


def _not_an_image(data: bytes) -> str:
    allowed = ', '.join(_registered_allowed_formats())
    other = identify_other_format(data)
    if other is not None:
        return (f'not an image in an allowed format: its content is '
                f'{other} (Pillow format), which CI2P-MM does not decode '
                f'(allowed: {allowed})')
    what = ('text, e.g. an HTML page or an error message saved as an image'
            if _looks_like_text(data) else 'no image format Pillow knows')
    return f'not an image: its content is {what} (allowed: {allowed})'


def _composite(img: Image.Image, background: Sequence[int]) -> Image.Image:
    rgba = img.convert('RGBA')
    canvas = Image.new('RGBA', rgba.size, tuple(background) + (255, ))
    return Image.alpha_composite(canvas, rgba).convert('RGB')


#: Transparent pixels are composited on white unless told otherwise.
WHITE = (255, 255, 255)


def _rgb_converter(img: Image.Image, path: str,
                   background: Sequence[int]) -> Callable:
    """How a part (a stripe) of ``img`` becomes ``uint8`` RGB."""
    mode = img.mode
    if (mode in ('RGBA', 'LA', 'La', 'RGBa', 'PA')
            or mode == 'P' and 'transparency' in img.info):
        return lambda part: np.asarray(_composite(part, background))
    if mode.startswith('I;16') or mode == 'I':
        low, high = img.getextrema()
        if low < 0 or high > 65535:
            raise BadImageError(
                path, f'{mode} image with values in [{low}, {high}], outside '
                f'the 16-bit range', 'convert it to an 8-bit RGB JPEG or PNG')
        return _grey16_to_rgb
    if mode in ('1', 'L', 'P', 'RGB', 'RGBX', 'CMYK', 'YCbCr'):
        return lambda part: np.asarray(part.convert('RGB'))
    raise BadImageError(
        path, f'unsupported pixel mode {mode!r} (e.g. floating point, with '
        f'no defined 0-255 range)', 'convert it to an 8-bit RGB JPEG or PNG')


def _grey16_to_rgb(part: Image.Image) -> np.ndarray:
    grey = np.asarray(part).astype(np.int64)
    grey = ((grey * 255 + 32767) // 65535).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def to_rgb(img: Image.Image,
           path: str,
           background: Sequence[int] = WHITE) -> np.ndarray:
    """A decoded Pillow image as ``uint8`` RGB ``[H, W, 3]``, converted a
    stripe of rows at a time (memory: the image, the result and one
    stripe's temporaries)."""
    convert = _rgb_converter(img, path, background)
    width, height = img.size
    rows = max(1, STRIPE_PIXELS // max(width, 1))
    if rows >= height:
        return convert(img)
    rgb = np.empty((height, width, 3), np.uint8)
    for top in range(0, height, rows):
        rgb[top:top + rows] = convert(
            img.crop((0, top, width, min(height, top + rows))))
    return rgb


def _corrupt(what: str, err: Exception) -> Tuple[str, str]:
    """(reason, fix) for a file Pillow could not read."""
    if 'MAX_TEXT' in str(err):  # PngImagePlugin's limits on text and ICC
        return (f'its metadata is too large: a PNG text or ICC profile chunk '
                f'(tEXt, zTXt, iTXt, iCCP) beyond Pillow\'s limits '
                f'(MAX_TEXT_CHUNK={PngImagePlugin.MAX_TEXT_CHUNK} bytes a '
                f'chunk, MAX_TEXT_MEMORY={PngImagePlugin.MAX_TEXT_MEMORY} '
                f'in all)', 're-export the image without its metadata')
    detail = f': {err}' if what == 'image data' else ''
    return (f'truncated or corrupt {what} ({type(err).__name__}{detail})',
            _FIX_REPLACE)


def open_image(data: bytes, path: str) -> Image.Image:
    """``data`` opened (header only) by an allowed Pillow plugin, or
    :class:`BadImageError` naming ``path`` (a JPEG of more than
    ``MAX_JPEG_SCANS`` scans too: it is refused before it is decoded)."""
    if not data:
        raise BadImageError(path, 'empty file (0 bytes)')
    try:
        img = Image.open(
            io.BytesIO(data), formats=list(_registered_allowed_formats()))
    except UnidentifiedImageError:
        raise BadImageError(path, _not_an_image(data)) from None
    except (Image.DecompressionBombError,
            Image.DecompressionBombWarning) as err:
        raise BadImageError(
            path, f'too many pixels ({err})',
            'downscale the file, or raise max_pixels of the image loader'
        ) from None
    except Exception as err:
        raise BadImageError(path, *_corrupt('header', err)) from None
    # FF DA starts a scan (SOS); entropy-coded data never holds it, so the
    # count is exact but for such bytes in metadata: an upper bound.
    scans = data.count(b'\xff\xda') if img.format in ('JPEG', 'MPO') else 0
    if scans > MAX_JPEG_SCANS:
        img.close()
        raise BadImageError(
            path, f'a JPEG of {scans} scans, more than MAX_JPEG_SCANS='
            f'{MAX_JPEG_SCANS} (encoders write about 10; each scan is a '
            f'pass over the whole image, so decoding it would stall); not '
            f'decoded', 're-encode it (e.g. as a baseline JPEG)')
    return img


def decode_image(data: bytes,
                 path: str,
                 background: Sequence[int] = WHITE,
                 max_pixels: int = DEFAULT_MAX_PIXELS,
                 min_size: int = DEFAULT_MIN_SIZE) -> np.ndarray:
    """Decode image bytes to ``uint8`` RGB ``[H, W, 3]`` as a viewer shows
    them, or raise :class:`BadImageError` naming ``path`` and the reason."""
    img = open_image(data, path)
    width, height = img.size
    if width * height > max_pixels:
        raise BadImageError(
            path, f'{width}x{height} = {width * height} pixels, more than '
            f'max_pixels={max_pixels} (decompression-bomb guard)',
            'downscale the file, or raise max_pixels of the image loader')
    if min(width, height) < min_size:
        raise BadImageError(
            path, f'{width}x{height} pixels: a side is below min_size='
            f'{min_size} (a placeholder or tracking pixel, not a photo)',
            'delete it, or lower min_size of the image loader')
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise BadImageError(
            path, 'PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True in this '
            'process, so truncated files would decode to grey without an '
            'error', 'find the code that sets it and remove that line')
    try:
        img.load()  # decodes everything: truncated data fails here
    except Exception as err:
        raise BadImageError(path, *_corrupt('image data', err)) from None
    try:  # in place: a copy would hold the image twice
        ImageOps.exif_transpose(img, in_place=True)
    except Exception:  # a broken EXIF block: viewers ignore it too
        pass
    return to_rgb(img, path, background)


def load_image_file(path: str,
                    background: Sequence[int] = WHITE,
                    max_pixels: int = DEFAULT_MAX_PIXELS,
                    min_size: int = DEFAULT_MIN_SIZE,
                    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
                    data_root: Optional[str] = None,
                    allow_symlinks_out_of_root: bool = False,
                    backend_args: Optional[dict] = None) -> np.ndarray:
    """:func:`read_image_file` then :func:`decode_image`: a file as
    ``uint8`` RGB, or :class:`BadImageError`."""
    data = read_image_file(path, max_file_bytes, data_root,
                           allow_symlinks_out_of_root, backend_args)
    return decode_image(data, path, background, max_pixels, min_size)


# ---- image folders (the codec tools) -------------------------------------
# tools/train_codec.py and tools/analysis_tools/codec_report.py find files
# by extension (recursively, hidden ones skipped) and read them as above;
# the folder is the user's own, so links in it are followed (to regular
# files only).

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
    random.Random(seed).shuffle(files)  # list_images' own list
    n_val = min(len(files) - 1, max(1, round(len(files) * val_ratio)))
    return sorted(files[n_val:]), sorted(files[:n_val])


def load_rgb(path: str) -> Image.Image:
    """The file as an RGB PIL image, or :class:`ImageFolderError`."""
    with bad_image_as(ImageFolderError, f'image {path}', _REMOVE):
        return Image.fromarray(load_image_file(path, min_size=1))


def image_size(path: str) -> Tuple[int, int]:
    """(width, height) from the file's header (read as
    :func:`read_image_file` reads it; the pixels are not decoded), or
    :class:`ImageFolderError`."""
    with bad_image_as(ImageFolderError, f'image {path}', _REMOVE):
        with open_image(read_image_file(path), path) as img:
            return img.size
