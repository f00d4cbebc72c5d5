"""Files written and read whole: atomic saves and torch's safe loading.

Every checkpoint this project writes goes through :func:`save_atomic` (or
:func:`replace_atomically` for files another library writes), so a run
killed mid-save leaves the previous file intact. Every local torch file it
reads goes through :func:`load_torch_file`: ``torch.load(weights_only=True)``
after a CRC check, with errors that name the file. Safety is never switched
off; mmengine's own checkpoint types are allow-listed in
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


def write_text_atomically(path: str, text: str) -> None:
    tmp = f'{path}.tmp'
    try:
        with open(tmp, 'w') as f:
            f.write(text)
        replace_atomically(tmp, path)
    finally:
        if osp.exists(tmp):  # a failed write (disk full) leaves no litter
            os.remove(tmp)


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
    return (f'{what} cannot be read ({type(err).__name__}: '
            f'{text.splitlines()[0] if text else ""}). Is it truncated (copied '
            f'or killed while being written) or not a PyTorch file?')


def load_torch_file(path: str,
                    error: Callable[[str], Exception] = RuntimeError,
                    what: Optional[str] = None,
                    map_location='cpu') -> Any:
    """Load a local torch file safely, raising ``error(message)`` on failure.

    The message names the file (``what``, default ``'File PATH'``) and the
    reason: missing, empty, failed CRC, refused by safe unpickling, or not
    readable as a torch file.
    """
    what = what or f'File {path}'
    local = osp.expanduser(str(path))
    if not osp.isfile(local):
        raise error(f'{what} does not exist.')
    if osp.getsize(local) == 0:
        raise error(f'{what} is empty (0 bytes): probably a save that was '
                    f'interrupted.')
    damaged = failed_crc(local)
    if damaged:
        raise error(f'{what} is corrupt: its record {damaged} fails the '
                    f'CRC-32 check (damaged on disk or in a copy).')
    try:
        return torch.load(local, map_location=map_location, weights_only=True)
    except Exception as err:
        raise error(unreadable_message(what, err)) from err
