"""One training run per work dir, held by an OS file lock.

Two runs writing ``last_checkpoint``, ``epoch_N.pth`` and the mid-epoch
files of one work dir would resume from and delete each other's
checkpoints. A run holds ``WORK_DIR/train.lock`` (a
:class:`~ci2p_mm.utils.locks.ProcessLock`) for its lifetime; a second run is
refused, naming the first (pid, host, start time, command line). A lock
left by a killed run never blocks.
"""
import os.path as osp

from ci2p_mm.utils.errors import UserError
from ci2p_mm.utils.locks import LockBusy, ProcessLock

LOCK_FILE = 'train.lock'


class WorkDirBusyError(UserError, RuntimeError):
    """Another live run holds the work dir."""


class WorkDirLock(ProcessLock):
    """``with WorkDirLock(work_dir):`` holds the work dir or raises
    :class:`WorkDirBusyError` naming the run that does."""

    def __init__(self, work_dir: str):
        super().__init__(osp.join(work_dir, LOCK_FILE))

    def acquire(self) -> 'WorkDirLock':
        try:
            return super().acquire()
        except LockBusy as busy:
            raise WorkDirBusyError(
                f'Work dir {osp.dirname(self.path)} is in use by another '
                f'training run: {busy.holder}. Two runs in one work dir '
                f'would overwrite and delete each other\'s checkpoints. Wait '
                f'for it to end or stop it, or pass another --work-dir. '
                f'(Lock: {self.path}; a lock left by a killed run does not '
                f'block.)') from None
