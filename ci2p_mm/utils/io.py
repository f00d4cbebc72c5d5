"""Files written and read whole: atomic saves and torch's safe loading.

Every checkpoint this project writes goes through :func:`save_atomic` (or
:func:`replace_atomically` for files another library writes), so a run
killed mid-save leaves the previous file intact. Every local torch file it
reads goes through :func:`load_torch_file`: ``torch.load(weights_only=True)``
after a check of the zip records' declared sizes (no "zip bomb" reaches
torch) and of their CRCs, with errors that name the file. Safety is never
switched off; mmengine's own checkpoint types are allow-listed in
:mod:`ci2p_mm.engine.checkpoint`.
"""
import hashlib
import os
import os.path as osp
import zipfile
from typing import Any, Callable, Optional

import torch


def _fsync(path: str, directory: bool = False) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_atomically(tmp: str, final: str) -> None:
    """Flush ``tmp`` to disk, then rename it over ``final``."""
    _fsync(tmp)
    os.replace(tmp, final)
    _fsync(osp.dirname(osp.abspath(final)), directory=True)


def write_bytes_atomically(path: str, data: bytes) -> None:
    """Write ``data`` to ``path.tmp``, then rename it over ``path``."""
    tmp = f'{path}.tmp'
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
        replace_atomically(tmp, path)
    finally:
        if osp.exists(tmp):  # a failed write (disk full) leaves no litter
            os.remove(tmp)


def write_text_atomically(path: str, text: str) -> None:
    """:func:`write_bytes_atomically` of ``text`` as UTF-8."""
    write_bytes_atomically(path, text.encode('utf-8'))


def save_atomic(obj: Any, path: str) -> None:
    """``torch.save`` to a temporary file, then rename it over ``path``."""
    tmp = f'{path}.tmp{os.getpid()}'
    try:
        torch.save(obj, tmp)
        replace_atomically(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def file_sha256(path: str) -> str:
    """The SHA-256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def failed_crc(path: str) -> Optional[str]:
    """The first record of a torch zip file whose CRC-32 does not match.

    torch does not check CRCs when loading, so flipped bits in tensor data
    would load silently. Records saved without a CRC (0) are not checked;
    files that are not whole zip archives are left to ``torch.load``.
    """
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.CRC == 0:
                    continue
                try:
                    with archive.open(info) as f:
                        while f.read(1 << 24):
                            pass
                except zipfile.BadZipFile:
                    return info.filename
    except (zipfile.BadZipFile, OSError):
        return None
    return None


#: torch writes every record of its zip files uncompressed, so a record's
#: declared size is what it stores. Records someone recompressed may
#: declare more than the file holds, by this much in all (256 MiB); above
#: it, the file is refused before torch allocates what they declare.
MAX_INFLATED_BYTES = 256 * 2**20
#: DEFLATE cannot expand a byte to more than about 1032 bytes.
_DEFLATE_MAX_RATIO = 1032


def oversized_record(
        path: str,
        max_inflated_bytes: int = MAX_INFLATED_BYTES) -> Optional[str]:
    """Why a torch zip file's records declare more bytes than it can hold,
    or None: read from its central directory alone, before any record is
    decompressed or allocated.

    Refused: an uncompressed record whose declared and stored sizes
    differ; a compressed record declaring more than DEFLATE can produce; a
    record reaching past the end of the file; records that together store
    more bytes than the file has (they overlap, so each is allocated again);
    and records that declare more than the file's size plus
    ``max_inflated_bytes`` in all. Files that are not zip archives are left
    to ``torch.load``.
    """
    if not zipfile.is_zipfile(path):
        return None
    size = osp.getsize(path)
    try:
        with zipfile.ZipFile(path) as archive:
            records = archive.infolist()
    except (zipfile.BadZipFile, OSError):
        return None
    declared = stored = 0
    for info in records:
        what = f'its record {info.filename}'
        if (info.compress_type == zipfile.ZIP_STORED
                and info.file_size != info.compress_size):
            return (f'{what} is stored uncompressed in {info.compress_size} '
                    f'bytes but declares {info.file_size}')
        if info.file_size > _DEFLATE_MAX_RATIO * max(info.compress_size, 1):
            return (f'{what} declares {info.file_size} bytes from '
                    f'{info.compress_size} compressed bytes, more than '
                    f'DEFLATE can produce')
        if info.header_offset + info.compress_size > size:
            return (f'{what} reaches past the end of the file ({size} '
                    f'bytes)')
        declared += info.file_size
        stored += info.compress_size
    if stored > size:
        return (f'its {len(records)} records store {stored} bytes in all in '
                f'a file of {size} bytes: they overlap, so loading would '
                f'allocate the same bytes many times')
    if declared > size + max_inflated_bytes:
        return (f'its {len(records)} records declare {declared} bytes in '
                f'all, {declared - size} more than the file\'s own {size} '
                f'bytes (the cap is {max_inflated_bytes}; torch writes its '
                f'records uncompressed)')
    return None


def unreadable_message(what: str, err: Exception) -> str:
    """One line saying why ``torch.load`` refused ``what`` (a file)."""
    text = str(err)
    if 'Weights only load failed' in text and ('global' in text.lower()):
        first = next((line for line in text.splitlines()
                      if 'GLOBAL' in line or 'global' in line), text)
        return (f'{what} holds Python objects that torch\'s safe loading '
                f'(weights_only=True) refuses: {first.strip()} CI2P-MM never '
                f'switches safe loading off. If you trust the file, re-save '
                f'only its tensors in a trusted environment, e.g. '
                f'torch.save({{"state_dict": ckpt["state_dict"]}}, new_file).')
    return (
        f'{what} cannot be read ({type(err).__name__}: '
        f'{text.splitlines()[0] if text else ""}). Is it truncated (copied '
        f'or killed while being written) or not a PyTorch file?')


def load_torch_file(path: str,
                    error: Callable[[str], Exception] = RuntimeError,
                    what: Optional[str] = None,
                    map_location='cpu',
                    max_inflated_bytes: int = MAX_INFLATED_BYTES) -> Any:
    """Load a local torch file safely, raising ``error(message)`` on failure.

    The message names the file (``what``, default ``'File PATH'``) and the
    reason: missing, not a regular file, empty, records that declare more
    than the file holds (see :func:`oversized_record`; checked before
    anything is allocated), failed CRC, refused by safe unpickling, or not
    readable as a torch file.
    """
    what = what or f'File {path}'
    local = osp.expanduser(str(path))
    if not osp.exists(local):
        raise error(f'{what} does not exist.')
    if not osp.isfile(local):  # a FIFO would block, a device never end
        raise error(f'{what} is not a regular file (a folder, FIFO, device '
                    f'or socket); not read.')
    if osp.getsize(local) == 0:
        raise error(f'{what} is empty (0 bytes): probably a save that was '
                    f'interrupted.')
    oversized = oversized_record(local, max_inflated_bytes)
    if oversized:
        raise error(f'{what} is refused before loading: {oversized}. Loading '
                    f'it would allocate that much memory (a "zip bomb"). If '
                    f'you trust the file, re-save it with torch.save in a '
                    f'trusted environment (torch writes records '
                    f'uncompressed).')
    damaged = failed_crc(local)
    if damaged:
        raise error(f'{what} is corrupt: its record {damaged} fails the '
                    f'CRC-32 check (damaged on disk or in a copy).')
    try:
        return torch.load(local, map_location=map_location, weights_only=True)
    except Exception as err:
        raise error(unreadable_message(what, err)) from err
