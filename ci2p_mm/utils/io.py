"""Files written and read whole: the one atomic writer and torch's safe
loading.

Every file this project writes goes through :func:`atomic_output` (or
:func:`write_bytes_atomically`, :func:`write_text_atomically`,
:func:`save_atomic` on top of it): a run killed mid-save leaves the previous
file intact; a device, a FIFO or ``/dev/stdout`` is written through, never
replaced; a full disk is one line naming the file. Every local torch file it
reads goes through :func:`load_torch_file`: ``torch.load(weights_only=True)``
after a check of the zip records' declared sizes (no "zip bomb" reaches
torch) and of their CRCs, with errors that name the file. Safety is never
switched off; mmengine's own checkpoint types are allow-listed in
:mod:`ci2p_mm.engine.checkpoint`.
"""
import contextlib
import errno
import glob
import hashlib
import io
import itertools
import os
import os.path as osp
import re
import shutil
import stat
import sys
import tempfile
import zipfile
from typing import Any, BinaryIO, Callable, Iterator, List, Optional, Tuple

import torch

from .errors import UserError
from .locks import is_abandoned, try_flock

#: Names the writer's temporaries: ``NAME.ci2p-tmp-PID.N`` beside ``NAME``.
TMP_MARK = '.ci2p-tmp-'
_tmp_numbers = itertools.count()
_cleaned_dirs = set()
#: Failures that are the output's, not the caller's (reported as such).
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES,
                 errno.EPERM, errno.EFBIG, errno.EIO, errno.ENOTDIR,
                 errno.ENAMETOOLONG)


class OutputError(UserError, OSError):
    """An output that cannot be written: a folder, a FIFO that no process
    reads, a full disk, a read-only file system, the input itself."""


def _fsync(path: str) -> None:
    # Best effort (some file systems cannot); a file or a folder.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _inherited_fd(path: str) -> Optional[int]:
    """N when ``path`` leads through links to ``/proc/self/fd/N`` or
    ``/dev/fd/N`` (``/dev/stdout`` is such a link): this process's own
    descriptor, written with its offset and mode as they are."""
    for _ in range(40):  # the kernel's own limit on link chains
        found = re.fullmatch(rf'/(proc/(self|{os.getpid()})|dev)/fd/(\d+)',
                             path)
        if found:
            return int(found[3])
        if not osp.islink(path):
            return None
        path = osp.join(osp.dirname(osp.abspath(path)), os.readlink(path))
    return None


#: What a file that is not a regular one is, by its ``st_mode``.
_KINDS = ((stat.S_ISDIR, 'a folder'), (stat.S_ISCHR, 'a character device'),
          (stat.S_ISFIFO, 'a named pipe (FIFO)'),
          (stat.S_ISBLK, 'a block device'), (stat.S_ISSOCK, 'a socket'))


def file_kind(mode: int) -> Optional[str]:
    """``'a folder'``, ``'a character device'``, ... for an ``st_mode``
    that is not a regular file's; None for a regular file."""
    return next((kind for test, kind in _KINDS if test(mode)), None)


class NotARegularFile(OSError):
    """Raised by :func:`fdopen_regular`; ``mode`` is the ``st_mode``."""

    def __init__(self, mode: int):
        super().__init__(file_kind(mode) or 'not a regular file')
        self.mode = mode


def fdopen_regular(fd: int) -> Tuple[BinaryIO, os.stat_result]:
    """The descriptor ``fd`` as a binary file, with its ``fstat``, if it is a
    regular file; else it is closed and :class:`NotARegularFile` raised.

    Checked on the descriptor, before ``os.fdopen``: that raises
    ``IsADirectoryError`` for a folder and keeps the descriptor open. The
    readers of untrusted files (images, annotation files) open with
    ``O_NONBLOCK`` (a FIFO does not wait for a writer) and come here.
    """
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise NotARegularFile(info.st_mode)
    return os.fdopen(fd, 'rb'), info


def output_kind(path: str) -> Optional[str]:
    """:func:`file_kind` of ``path`` (links followed); None when it is a
    regular file or missing."""
    try:
        return file_kind(os.stat(path).st_mode)
    except OSError:
        return None


def check_output_path(path: str, *inputs: str, what: str = 'Output') -> bool:
    """Refuse, before any work, an output that no writer may use: a folder,
    a block device or a socket, one of ``inputs`` (:func:`check_not_input`),
    or a place whose nearest existing folder cannot be written. ``what``
    names it in the message (``'--out'``, ``'DST'``). Returns whether the
    output is written through (a device, a FIFO, ``/dev/stdout``)."""
    kind = output_kind(path)
    if kind in ('a folder', 'a block device', 'a socket'):
        raise OutputError(f'{what} {path} is {kind}; refusing to write over '
                          f'it. Name a file instead.')
    check_not_input(path, *inputs, what=what)
    if kind is not None or _inherited_fd(path) is not None:
        return True
    folder = osp.dirname(osp.abspath(path))
    while not osp.exists(folder):  # the folders that will be created
        folder = osp.dirname(folder)
    if not osp.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f'{what} {path} cannot be written ({folder} is '
                          f'not a writable folder). Name another place.')
    return False


def check_not_input(output: str, *inputs: str, what: str = 'Output') -> None:
    """Refuse an output that is one of the inputs, however it is reached
    (links, linked folders, ``..``, hard links): writing it would overwrite
    the input. The one such check of every tool taking SRC and DST."""
    for source in inputs:
        try:
            same = osp.samefile(source, output)
        except OSError:  # one of them does not exist (yet)
            same = osp.realpath(source) == osp.realpath(output)
        if same:
            raise OutputError(
                f'{what} {output} is the input {source} (the same file, '
                f'through a link or another path); writing it would '
                f'overwrite the input. Name another output file.')


def check_writable_dir(path: str, what: str = 'Folder') -> None:
    """Create the folder ``path`` if needed and check that a file can be
    written in it (a read-only file system, no permission: one line)."""
    if osp.exists(path) and not osp.isdir(path):  # makedirs: 'File exists'
        raise OutputError(f'{what} {path} is a file, not a folder: pass a '
                          f'folder.')
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise OutputError(
            f'{what} {path} cannot be written ({err.strerror or err}): pass '
            f'a folder on a writable file system.') from None


def remove_abandoned_temporaries(directory: str) -> None:
    """Delete the temporaries of :func:`atomic_output` in ``directory``
    whose writer died (SIGKILL, a second SIGTERM during a save, a crash):
    files named ``*.ci2p-tmp-*`` that no live process holds locked. Never
    anything else, never a live writer's. Once per folder and process."""
    if directory in _cleaned_dirs:
        return
    _cleaned_dirs.add(directory)
    pattern = osp.join(glob.escape(directory), f'*{TMP_MARK}*')
    for path in glob.glob(pattern, include_hidden=True):  # [] when unreadable
        if is_abandoned(path):
            with contextlib.suppress(OSError):
                os.remove(path)


def printable_path(path: str) -> str:
    """``path`` as text that can be printed and written as UTF-8: bytes of
    a name that is not UTF-8 shown as ``\\xe9``."""
    return os.fsencode(path).decode('utf-8', 'backslashreplace')


def size_text(num_bytes: float) -> str:
    """``'1.50 GiB'``, ``'0.5 MiB'``, ``'2.0 KiB'``."""
    if num_bytes >= 2**30:
        return f'{num_bytes / 2**30:.2f} GiB'
    if num_bytes >= 2**20 / 10:
        return f'{num_bytes / 2**20:.1f} MiB'
    return f'{num_bytes / 2**10:.1f} KiB'


def _error(path: str, err: OSError, needed: int) -> OutputError:
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        directory = osp.dirname(osp.abspath(path))
        try:
            free = f', {size_text(shutil.disk_usage(directory).free)} free'
        except OSError:
            free = ''
        return OutputError(f'No space left on device writing {path} (needs '
                           f'about {size_text(needed)}{free}). Free some '
                           f'space or write elsewhere.')
    return OutputError(f'Cannot write {path}: {err.strerror or err}.')


@contextlib.contextmanager
def atomic_output(path: str, size: Optional[int] = None) -> Iterator[str]:
    """``with atomic_output(PATH) as tmp:`` write the file ``tmp``; on
    leaving, its content becomes ``PATH``'s. The one writer.

    * A regular or missing ``PATH`` (links followed to the file they name,
      the folder created if needed): ``tmp`` lies beside it
      (``NAME.ci2p-tmp-PID.N``), is flushed to disk and renamed over it, so
      a kill leaves the old file or the new one, never a part.
    * A character device or a FIFO (``/dev/null``, a pipe), or
      ``/dev/stdout``: the content is written through it; renaming over it
      would replace the device (as root, ``/dev/null`` for every process).
      A FIFO that no process reads is refused instead of waiting forever.
    * A folder, a block device or a socket: refused before anything runs.
    * Delete ``tmp`` inside the block to write nothing.
    * A failure (disk full, quota, read-only file system) removes ``tmp``
      and raises :class:`OutputError`: which file, why, and for a full disk
      how much it needs (``size``, or what was written before it failed).

    ``tmp`` is locked while it is written; temporaries whose writer died
    are deleted when the next write in that folder starts
    (:func:`remove_abandoned_temporaries`).
    """
    through = check_output_path(path)
    fd = _inherited_fd(path)
    target = path if through else osp.realpath(path)
    directory = tempfile.gettempdir() if through else osp.dirname(target)
    # The name in UTF-8: some writers (torch's ONNX exporter) take no other.
    tmp = osp.join(
        directory, f'{printable_path(osp.basename(target))}{TMP_MARK}'
        f'{os.getpid()}.{next(_tmp_numbers)}')
    held = None
    try:
        os.makedirs(directory, exist_ok=True)
        remove_abandoned_temporaries(directory)
        held = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try_flock(held)
        yield tmp
        if not osp.exists(tmp):
            return
        if through:
            _write_through(tmp, path, fd)
        else:
            _fsync(tmp)
            os.replace(tmp, target)
            _fsync(directory)
    except OSError as err:
        if isinstance(err, UserError) or err.errno not in _WRITE_ERRNOS:
            raise
        written = osp.getsize(tmp) if osp.exists(tmp) else 0
        if held is not None:  # its blocks are freed once nothing holds it
            os.close(held)
            held = None
        with contextlib.suppress(OSError):
            os.remove(tmp)  # before the free space is measured
        raise _error(path, err, size or written) from err
    finally:
        if held is not None:
            os.close(held)
        if osp.exists(tmp):  # a failed write leaves no litter
            os.remove(tmp)


def _write_through(tmp: str, path: str, fd: Optional[int]) -> None:
    """Copy ``tmp`` into the device, FIFO or inherited descriptor."""
    if fd is None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as err:
            if err.errno != errno.ENXIO:
                raise
            raise OutputError(
                f'Output {path} is a FIFO that no process reads; start its '
                f'reader first, or name a file.') from None
        os.set_blocking(fd, True)
    else:
        sys.stdout.flush()  # what was printed before comes first
        fd = os.dup(fd)
    with open(tmp, 'rb') as source, open(fd, 'wb') as out:
        shutil.copyfileobj(source, out)


def write_bytes_atomically(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through :func:`atomic_output`."""
    with atomic_output(path, len(data)) as tmp:
        with open(tmp, 'wb') as f:
            f.write(data)


def write_text_atomically(path: str, text: str) -> None:
    """:func:`write_bytes_atomically` of ``text`` as UTF-8."""
    write_bytes_atomically(path, text.encode('utf-8'))


def torch_bytes(obj: Any) -> memoryview:
    """``torch.save(obj)``'s bytes, made in memory: a full disk then fails
    in the writer, which knows the size (torch's own file writer fails with
    ``basic_ios::clear`` or ``unexpected pos``)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getbuffer()


def save_atomic(obj: Any, path: str) -> None:
    """``torch.save(obj, path)`` through :func:`atomic_output`."""
    write_bytes_atomically(path, torch_bytes(obj))


def file_sha256(path: str) -> str:
    """The SHA-256 hex digest of a file."""
    with open(path, 'rb') as f:
        return hashlib.file_digest(f, 'sha256').hexdigest()


#: torch writes every record of its zip files uncompressed, so a record's
#: declared size is what it stores. Records someone recompressed may
#: declare more than the file holds, by this much in all (256 MiB); above
#: it, the file is refused before torch allocates what they declare.
MAX_INFLATED_BYTES = 256 * 2**20
#: DEFLATE cannot expand a byte to more than about 1032 bytes.
_DEFLATE_MAX_RATIO = 1032

#: URI schemes that mmengine's CheckpointLoader resolves itself.
REMOTE_URI = re.compile(r'^[A-Za-z][A-Za-z0-9+.-]*://')


def is_complete_checkpoint(path: str) -> bool:
    """Cheap check that a local file is a whole torch zip archive."""
    path = osp.expanduser(path)
    return (osp.isfile(path) and osp.getsize(path) > 0
            and zipfile.is_zipfile(path))


def find_resumable_checkpoint(work_dir: str,
                              notes: Optional[List[str]] = None
                              ) -> Optional[str]:
    """``last_checkpoint``'s file, or the newest complete ``*.pth`` (best
    checkpoints excluded) when that one is missing or incomplete, or the
    pointer is empty, cut or not UTF-8 text; ``notes`` gets a line saying
    which was taken instead."""
    pointed = None
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer, 'rb') as f:
            text = f.read(4096)  # a path; a longer file is not a pointer
        with contextlib.suppress(UnicodeDecodeError):
            pointed = text.decode('utf-8').strip().strip('\0') or None
    if pointed is not None and not osp.exists(pointed) and \
            osp.exists(osp.join(work_dir, osp.basename(pointed))):
        pointed = osp.join(work_dir, osp.basename(pointed))  # moved dir
    if pointed is not None and (REMOTE_URI.match(pointed)
                                or is_complete_checkpoint(pointed)):
        return pointed
    newest_first = sorted(
        glob.glob(osp.join(glob.escape(work_dir), '*.pth')),
        key=osp.getmtime,
        reverse=True)
    path = next(
        (p for p in newest_first if not osp.basename(p).startswith('best_')
         and is_complete_checkpoint(p)), None)
    if path is not None and notes is not None:
        why = (f'points to {pointed}, which is missing or incomplete'
               if pointed else 'is missing, empty or not UTF-8 text')
        notes.append(f'{pointer} {why}; resuming from {path}, the newest '
                     f'complete checkpoint in {work_dir}.')
    return path


def zip_problem(path: str,
                max_inflated_bytes: int = MAX_INFLATED_BYTES) -> Optional[str]:
    """Why a torch zip file must not be loaded, or None: its records
    declare more bytes than it can hold (from its central directory alone,
    before any record is decompressed or allocated), or one of them fails
    its CRC-32.

    Refused as oversized: an uncompressed record whose declared and stored
    sizes differ; a compressed record declaring more than DEFLATE can
    produce; a record reaching past the end of the file; records that
    together store more bytes than the file has (they overlap, so each is
    allocated again); and records that declare more than the file's size
    plus ``max_inflated_bytes`` in all.

    torch does not check CRCs when loading, so flipped bits in tensor data
    would load silently. Records saved without a CRC (0) are not checked;
    files that are not whole zip archives are left to ``torch.load``.
    """
    try:  # BadZipFile: not a whole zip archive
        with zipfile.ZipFile(path) as archive:
            oversized = _oversized(archive.infolist(), osp.getsize(path),
                                   max_inflated_bytes)
            if oversized:
                return (f'is refused before loading: {oversized}. Loading it '
                        f'would allocate that much memory (a "zip bomb"). If '
                        f'you trust the file, re-save it with torch.save in '
                        f'a trusted environment (torch writes records '
                        f'uncompressed)')
            for info in archive.infolist():
                if info.CRC == 0:
                    continue
                try:
                    with archive.open(info) as f:
                        while f.read(1 << 24):
                            pass
                except zipfile.BadZipFile:
                    return (f'is corrupt: its record {info.filename} fails '
                            f'the CRC-32 check (damaged on disk or in a copy)')
    except (zipfile.BadZipFile, OSError):
        return None
    return None


def _oversized(records: list, size: int,
               max_inflated_bytes: int) -> Optional[str]:
    """Why ``records`` declare more than a file of ``size`` bytes can hold
    (see :func:`zip_problem`), or None."""
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
    than the file holds (see :func:`zip_problem`; checked before
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
    problem = zip_problem(local, max_inflated_bytes)
    if problem:
        raise error(f'{what} {problem}.')
    try:
        return torch.load(local, map_location=map_location, weights_only=True)
    except Exception as err:
        raise error(unreadable_message(what, err)) from err
