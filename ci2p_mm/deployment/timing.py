"""CPU inference throughput of onnxruntime against PyTorch eager.

Each runner is called on the same prepared batch, timed by
:func:`ci2p_mm.utils.timing.interleave` (torch.utils.benchmark): first
``warmup`` untimed calls of every runner, then ``repeats`` timed rounds in
which every runner runs once in turn (round-robin), so a change in machine
load hits all of them alike; the median round gives img/s. PyTorch runs the
exported module in eval mode under ``torch.inference_mode()``; onnxruntime
runs the file with its CPU provider. Both use the same number of intra-op
threads; the load averages before and after say how busy the machine was.
"""
import os
import platform
from typing import Callable, Dict, Hashable, Optional, Tuple

import torch

from ci2p_mm.utils.timing import Timing, interleave, loadavg

RUNTIMES = ('pytorch', 'onnxruntime')


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
    return lambda: session.run(None, feed)


def time_runners(runners: Dict[Hashable, Callable[[], object]],
                 batch: int,
                 warmup: int = 2,
                 repeats: int = 5) -> Tuple[Dict[Hashable, Timing], str]:
    """Warm up every runner, then time ``repeats`` round-robin rounds.

    Returns the timings and the machine's load averages before and after
    the timed rounds (:func:`describe_machine`).
    """
    interleave(runners, 0, warmup)
    before = loadavg()
    timings = interleave(runners, repeats, batch=batch)
    return timings, describe_machine(before, loadavg())


def describe_machine(before: Optional[list], after: Optional[list]) -> str:
    """``'x86_64, 2 logical CPUs, 1-min load average 5.2 -> 6.1'``: how busy
    the machine was (this process counts too: about the thread count)."""
    load = ('' if before is None or after is None else
            f', 1-min load average {before[0]:.1f} -> {after[0]:.1f}')
    return f'{platform.machine()}, {os.cpu_count()} logical CPUs{load}'
