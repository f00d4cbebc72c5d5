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
process mid-batch.
"""
import signal
import threading
from typing import Optional

#: The signals a scheduler or a terminal sends to stop a job.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Install with ``with StopSignals() as stop:``; ``stop.signum`` is the
    first signal received, or None."""

    def __init__(self, signals=STOP_SIGNALS):
        self.signals = tuple(signals)
        self.signum: Optional[int] = None
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        self.signum = signum
        self.restore()

    def __enter__(self) -> 'StopSignals':
        # Python runs handlers in the main thread only, and only the main
        # thread may install them.
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            # None: a handler installed outside Python; the default is
            # the closest we can restore.
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        self._previous = {}

    def __exit__(self, *exc) -> None:
        self.restore()
