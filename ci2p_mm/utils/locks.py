"""A file lock held by one live process, naming its holder.

``flock`` on a file that the holder fills with who it is (pid, host, start
time, command line). The kernel releases the lock when the holder exits in
any way, SIGKILL included, so a file a killed process leaves behind never
blocks the next one. ``flock`` locks are local to a machine on some network
file systems (old NFS setups, some FUSE mounts).
"""
import datetime
import fcntl
import json
import os
import os.path as osp
import socket
import sys
from typing import Optional


class LockBusy(Exception):
    """Another live process holds the lock; ``holder`` says who."""

    def __init__(self, path: str, holder: str):
        super().__init__(f'{path} is held by {holder}')
        self.path = path
        self.holder = holder


def describe_holder(path: str) -> str:
    """What the holder wrote into the lock file, as words."""
    try:
        with open(path) as f:
            holder = json.load(f)
        return (f'pid {holder["pid"]} on host {holder["host"]}, started '
                f'{holder["started"]} ({holder["command"]})')
    except (OSError, ValueError, KeyError, TypeError):
        return 'a process that has not yet written who it is'


class ProcessLock:
    """``with ProcessLock(path):`` holds ``path`` or raises
    :class:`LockBusy`."""

    def __init__(self, path: str):
        self.path = path
        self._file = None

    def acquire(self) -> 'ProcessLock':
        os.makedirs(osp.dirname(osp.abspath(self.path)), exist_ok=True)
        f = open(self.path, 'a+')  # no truncation before we hold it
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            raise LockBusy(self.path, describe_holder(self.path)) from None
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

    def __exit__(self, *exc) -> Optional[bool]:
        self.release()
        return None
