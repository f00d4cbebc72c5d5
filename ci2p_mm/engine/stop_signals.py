"""SIGTERM and SIGINT as a request to stop training cleanly.

Slurm sends SIGTERM (at the time limit, ``scancel``, preemption) and gives
``KillWait`` seconds (30 by default) before SIGKILL; Ctrl-C sends SIGINT.
Python's defaults would end the run wherever it is. :class:`StopSignals`
records the signal instead; the training loop then finishes the current
iteration, saves a checkpoint and stops, and ``--resume`` continues exactly
(see :class:`~ci2p_mm.engine.ResumableEpochBasedTrainLoop`).

The first signal restores the previous handlers, so a second one acts as it
would have (SIGINT: ``KeyboardInterrupt``; SIGTERM: the process ends):
pressing Ctrl-C twice still stops at once, and the atomic saves keep the
checkpoints on disk whole either way.

Data-loader workers are forked after the handlers are installed and so
inherit them: a SIGTERM that slurm sends to every process of the job only
sets a flag in each worker, instead of killing the workers under the main
process mid-batch. torch's worker loop replaces the inherited SIGTERM
handler by its own, which ends the worker on a SIGTERM its parent did not
send; :func:`keep_stop_signals` (the ``worker_init_fn`` of the runner's
loaders) makes the worker leave SIGTERM to its parent while training runs.
"""
import multiprocessing
import os
import signal
import threading
from functools import partial
from typing import Callable, Optional

#: The signals a scheduler or a terminal sends to stop a job.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Install with ``with StopSignals() as stop:``; ``stop.signum`` is the
    first signal received, or None."""

    def __init__(self):
        self.signum: Optional[int] = None
        self._previous = {}
        # Shared with the data workers forked inside the block: whether
        # the block still runs (see keep_stop_signals).
        self._running = multiprocessing.RawValue('b', 0)

    def _handle(self, signum, frame) -> None:
        self.signum = signum
        self.restore()

    def __enter__(self) -> 'StopSignals':
        # Python runs handlers in the main thread only, and only the main
        # thread may install them.
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        self._running.value = 1
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            # None: a handler installed outside Python; the default is
            # the closest we can restore.
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        self._previous = {}

    def __exit__(self, *exc) -> None:
        self.restore()
        self._running.value = 0

    @staticmethod
    def keep_in_workers(loader) -> None:
        """Give ``loader``'s workers :func:`keep_stop_signals`."""
        if getattr(loader, 'num_workers', 0) > 0:
            loader.worker_init_fn = partial(keep_stop_signals,
                                            loader.worker_init_fn)


def keep_stop_signals(worker_init_fn: Optional[Callable],
                      worker_id: int) -> None:
    """A DataLoader worker's ``worker_init_fn``: a worker forked inside a
    :class:`StopSignals` block leaves SIGTERM to its parent while the block
    runs, then ``worker_init_fn(worker_id)``."""
    stop = getattr(signal.getsignal(signal.SIGTERM), '__self__', None)
    if isinstance(stop, StopSignals):
        signal.signal(signal.SIGTERM, partial(_sigterm_in_worker, stop))
    if worker_init_fn is not None:
        worker_init_fn(worker_id)


def _sigterm_in_worker(stop: StopSignals, signum, frame) -> None:
    # After the parent's block (the loader's shutdown at exit), end as
    # torch's own worker handler ends on its parent's SIGTERM.
    if not stop._running.value:
        os._exit(0)
