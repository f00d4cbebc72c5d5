"""One training run per work dir, held by an OS file lock.

Two runs writing ``last_checkpoint``, ``epoch_N.pth`` and the mid-epoch
files of one work dir would resume from and delete each other's
checkpoints. A run holds ``WORK_DIR/train.lock`` with ``flock`` for its
lifetime; a second run is refused, naming the first (pid, host, start time,
command line, as the holder wrote them into the file). The kernel releases
the lock when its holder exits in any way, SIGKILL included, so the file a
killed run leaves behind never blocks the next one.

``flock`` locks are local to a machine on some network file systems (old
NFS setups, some FUSE mounts); there, two runs on different hosts are not
kept apart.
"""
import datetime
import fcntl
import json
import os
import os.path as osp
import socket
import sys
from typing import Optional

from ci2p_mm.utils.errors import UserError

LOCK_FILE = 'train.lock'


class WorkDirBusyError(UserError, RuntimeError):
    """Another live run holds the work dir."""


def describe_holder(path: str) -> str:
    """What the holder wrote into the lock file, as words."""
    try:
        with open(path) as f:
            holder = json.load(f)
        return (f'pid {holder["pid"]} on host {holder["host"]}, started '
                f'{holder["started"]} ({holder["command"]})')
    except (OSError, ValueError, KeyError, TypeError):
        return 'a run that has not yet written who it is'


class WorkDirLock:
    """``with WorkDirLock(work_dir):`` holds the work dir or raises
    :class:`WorkDirBusyError` naming the run that does."""

    def __init__(self, work_dir: str):
        self.path = osp.join(work_dir, LOCK_FILE)
        self._file = None

    def acquire(self) -> 'WorkDirLock':
        os.makedirs(osp.dirname(self.path), exist_ok=True)
        f = open(self.path, 'a+')  # no truncation before we hold it
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            raise WorkDirBusyError(
                f'Work dir {osp.dirname(self.path)} is in use by another '
                f'training run: {describe_holder(self.path)}. Two runs in '
                f'one work dir would overwrite and delete each other\'s '
                f'checkpoints. Wait for it to end or stop it, or pass '
                f'another --work-dir. (Lock: {self.path}; a lock left by a '
                f'killed run does not block.)') from None
        f.seek(0)
        f.truncate()
        json.dump(dict(pid=os.getpid(), host=socket.gethostname(),
                       started=datetime.datetime.now().isoformat(
                           timespec='seconds'),
                       command=' '.join([osp.basename(sys.executable)] +
                                        sys.argv)), f)
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        if self._file is not None:
            # Unlock, but keep the file: deleting it would let a run that
            # opened it just before lock a file no longer in the folder.
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> 'WorkDirLock':
        return self.acquire()

    def __exit__(self, *exc) -> Optional[bool]:
        self.release()
        return None
