"""CPU inference throughput of onnxruntime against PyTorch eager.

Each runner is called on the same prepared batch: first ``warmup`` untimed
calls of every runner, then ``repeats`` timed rounds in which every runner
runs once in turn (round-robin), so a change in machine load hits all of
them alike; the median round gives img/s. PyTorch runs the exported module
in eval mode under ``torch.inference_mode()``; onnxruntime runs the file
with its CPU provider. Both use the same number of intra-op threads; the
load averages before and after say how busy the machine was.
"""
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Hashable, List, Optional, Tuple

import torch

RUNTIMES = ('pytorch', 'onnxruntime')


@dataclass
class Timing:
    """Seconds per call of one runner."""
    name: str
    batch: int
    seconds: List[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def img_per_s(self) -> float:
        return self.batch / self.median

    @property
    def spread(self) -> float:
        """(slowest - fastest) / median of the repeats."""
        return (max(self.seconds) - min(self.seconds)) / self.median


def pytorch_runner(graph: torch.nn.Module,
                   x: torch.Tensor) -> Callable[[], object]:
    """One eager forward of ``graph`` on ``x``."""
    graph.eval()

    def run():
        with torch.inference_mode():
            return graph(x)

    return run


def onnxruntime_runner(session, x: torch.Tensor) -> Callable[[], object]:
    """One ``session.run`` on ``x``."""
    feed = {session.get_inputs()[0].name: x.numpy()}

    def run():
        return session.run(None, feed)

    return run


def time_runners(runners: Dict[Hashable, Callable[[], object]],
                 batch: int,
                 warmup: int = 2,
                 repeats: int = 5) -> Tuple[Dict[Hashable, Timing], str]:
    """Warm up every runner, then time ``repeats`` round-robin rounds.

    Returns the timings and the machine's load averages before and after
    the timed rounds (:func:`describe_machine`).
    """
    for _ in range(warmup):
        for run in runners.values():
            run()
    timings = {name: Timing(str(name), batch) for name in runners}
    before = _loadavg()
    for _ in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            timings[name].seconds.append(time.perf_counter() - start)
    return timings, describe_machine(before, _loadavg())


def _loadavg() -> Optional[float]:
    try:
        return os.getloadavg()[0]
    except OSError:  # not on this platform
        return None


def describe_machine(before: Optional[float], after: Optional[float]) -> str:
    """``'x86_64, 2 logical CPUs, 1-min load average 5.2 -> 6.1'``: how busy
    the machine was (this process counts too: about the thread count)."""
    load = ('' if before is None or after is None else
            f', 1-min load average {before:.1f} -> {after:.1f}')
    return f'{platform.machine()}, {os.cpu_count()} logical CPUs{load}'
