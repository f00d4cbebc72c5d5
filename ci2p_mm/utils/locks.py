"""The one lock: a file held by one live process, naming its holder.

``flock`` on a file that the holder fills with who it is (pid, host, start
time, command line). The kernel releases the lock when the holder exits in
any way, SIGKILL included, so a file a killed process leaves behind never
blocks the next one. ``flock`` locks are local to a machine on some network
file systems (old NFS setups, some FUSE mounts).

Used for a training run's work dir (``WORK_DIR/train.lock``), a latent
store being encoded (``encode.lock``) and the temporaries of the atomic
writer (:func:`ci2p_mm.utils.io.atomic_output`: a temporary whose lock is
free belongs to a writer that died).
"""
import datetime
import fcntl
import json
import os
import os.path as osp
import socket
import sys
from typing import Callable, Optional, Type

from .errors import UserError


class LockBusy(UserError, RuntimeError):
    """Another live process holds the lock."""


def describe_holder(path: str) -> str:
    """What the holder wrote into the lock file, as words."""
    try:
        with open(path) as f:
            holder = json.load(f)
        return (f'pid {holder["pid"]} on host {holder["host"]}, started '
                f'{holder["started"]} ({holder["command"]})')
    except (OSError, ValueError, KeyError, TypeError):
        return 'a process that has not yet written who it is'


def try_flock(fd: int) -> Optional[bool]:
    """Take an exclusive ``flock`` on ``fd`` without waiting: True when
    taken, False when a live process holds it, None when the file system
    cannot tell (no ``flock`` support)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return None
    return True


def is_abandoned(path: str) -> bool:
    """Whether ``path`` exists and no live process holds its lock (its
    writer died). False when unsure."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        return try_flock(fd) is True  # closing the fd drops it again
    finally:
        os.close(fd)


class ProcessLock:
    """``with ProcessLock(path):`` holds ``path`` or raises ``error``.

    Args:
        path (str): The lock file (created, with its folder, if missing).
        busy (callable, optional): ``busy(holder)`` says what is busy and
            what to do; the lock's path and the note that a killed holder
            never blocks follow. Defaults to None (``'PATH is held by
            HOLDER.'``).
        error (type): The exception raised with that message. Defaults to
            :class:`LockBusy`.
    """

    def __init__(self,
                 path: str,
                 busy: Optional[Callable[[str], str]] = None,
                 error: Type[Exception] = LockBusy):
        self.path = path
        self.busy = busy or (lambda holder: f'{path} is held by {holder}.')
        self.error = error
        self._file = None

    def acquire(self) -> 'ProcessLock':
        os.makedirs(osp.dirname(osp.abspath(self.path)), exist_ok=True)
        f = open(self.path, 'a+')  # no truncation before we hold it
        if not try_flock(f.fileno()):
            f.close()
            raise self.error(
                f'{self.busy(describe_holder(self.path))} (Lock: '
                f'{self.path}; a lock left by a killed run does not '
                f'block.)')
        f.seek(0)
        f.truncate()
        json.dump(
            dict(
                pid=os.getpid(),
                host=socket.gethostname(),
                started=datetime.datetime.now().isoformat(timespec='seconds'),
                command=' '.join([osp.basename(sys.executable)] + sys.argv)),
            f)
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        if self._file is not None:
            # Unlock, but keep the file: deleting it would let a process
            # that opened it just before lock a file no longer in the folder.
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> 'ProcessLock':
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
