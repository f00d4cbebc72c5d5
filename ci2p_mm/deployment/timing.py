"""CPU inference throughput of onnxruntime against PyTorch eager.

Each runner is called on the same prepared batch: first ``warmup`` untimed
calls of every runner, then ``repeats`` timed rounds in which every runner
runs once in turn (round-robin), so a change in machine load hits all of
them alike; the median round gives img/s. PyTorch runs the exported module
in eval mode under ``torch.inference_mode()``; onnxruntime runs the file
with its CPU provider. Both use the same number of intra-op threads. The
cores that other processes took meanwhile are measured as
``tools/analysis_tools/benchmark.py`` measures them.
"""
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Hashable, List, Optional, Tuple

import torch

from ci2p_mm.analysis.timing import OtherLoad, cpu_name

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


def time_runners(
        runners: Dict[Hashable, Callable[[], object]],
        batch: int,
        warmup: int = 2,
        repeats: int = 5) -> Tuple[Dict[Hashable, Timing], Optional[float]]:
    """Warm up every runner, then time ``repeats`` round-robin rounds.

    Returns the timings and the CPU cores that *other* processes used on
    average during the timed rounds (None where unknown), as the
    benchmark tool measures them (:class:`ci2p_mm.analysis.timing.
    OtherLoad`).
    """
    for _ in range(warmup):
        for run in runners.values():
            run()
    timings = {name: Timing(str(name), batch) for name in runners}
    meter = OtherLoad()
    start_load = meter.snapshot()
    for _ in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            timings[name].seconds.append(time.perf_counter() - start)
    return timings, OtherLoad.cores(start_load, meter.snapshot())


def describe_machine(other_cores: Optional[float]) -> str:
    """The CPU, and how busy the rest of the machine was while timing."""
    busy = ('' if other_cores is None else
            f'; other processes used {other_cores:.1f} cores meanwhile')
    return f'{cpu_name()}, {os.cpu_count()} logical CPUs{busy}'
