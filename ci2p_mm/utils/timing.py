"""The one timer of every benchmark: ``torch.utils.benchmark``.

Model steps and end-to-end iterations (:mod:`ci2p_mm.analysis`), the
downstream models and the ONNX runtimes (:mod:`ci2p_mm.deployment`) are all
timed by :func:`interleave`: one :class:`torch.utils.benchmark.Timer` per
statement (torch's timer synchronises the accelerator at both ends of a
block; the thread count is the process's), ``warmup`` untimed rounds, then
``repeats`` timed rounds, round-robin over the statements, so that a change
in machine load hits all of them alike. A statement's blocks make one
:class:`~torch.utils.benchmark.Measurement` (median, IQR, per-call times);
:class:`Timing` adds what the tables print (img/s, the spread) and how many
CPU cores other processes used during each block (:class:`OtherLoad`).

The measuring tools (``benchmark.py``, ``downstream_timing.py``,
``get_flops.py``, ``benchmark_onnx.py``, ``pytorch2onnx.py``) also share
here their common options (:func:`tool_options`, a ``parents=`` parser),
their tables (:func:`format_table`), the machine line and the JSON report
(:func:`write_json`).
"""
import argparse
import json
import os
import os.path as osp
import platform
import resource
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Hashable, List, Optional, Sequence

import torch
from mmengine.config import DictAction
from torch.utils.benchmark import Measurement, Timer

from .cli import at_least, output_file
from .io import write_text_atomically


class BlockTimer(Timer):
    """torch's ``Timer``, one block at a time.

    ``Timer.timeit`` makes two untimed calls before every block, too dear
    for training steps timed in rounds; the benchmarks warm up once, up
    front (``--warmup``), so a round is one block of ``Timer._timeit``
    (as in ``timeit``, Python's garbage collector is off inside a block).

    Args:
        fn (Callable): The statement, called without arguments.
        setup (Callable, optional): Called before every block, untimed
            (e.g. the model's train/eval switch). Defaults to None.
        label (str): The statement's name in torch's Measurement.
            Defaults to ''.
    """

    def __init__(self,
                 fn: Callable[[], object],
                 setup: Optional[Callable[[], object]] = None,
                 label: str = ''):
        super().__init__(
            'fn()',
            setup='setup()' if setup else 'pass',
            globals=dict(fn=fn, setup=setup),
            label=label,
            num_threads=torch.get_num_threads())

    def block(self, number: int = 1) -> float:
        """Seconds per call over ``number`` calls between two
        synchronisations."""
        return self._timeit(number) / number


@dataclass(repr=False)
class Timing(Measurement):
    """One statement's timed blocks: torch's Measurement (seconds per call
    per block; its ``median``, ``iqr``, ``label``, ...) and more.

    Args:
        batch (int): Images per call, for img/s. Defaults to 1.
        other_cores (list): CPU cores other processes used during each
            block (None where unknown). Defaults to none.
    """
    batch: int = 1
    other_cores: List[Optional[float]] = field(default_factory=list)

    @property
    def seconds(self) -> List[float]:
        return self.times

    @property
    def img_per_s(self) -> float:
        return self.batch / self.median

    @property
    def spread(self) -> float:
        """(slowest - fastest) / median of the blocks."""
        return (max(self.seconds) - min(self.seconds)) / self.median


def interleave(statements: Dict[Hashable, Callable[[], object]],
               repeats: int,
               warmup: int = 0,
               number: int = 1,
               batch: int = 1,
               setups: Optional[Dict[Hashable, Callable[[], object]]] = None,
               report: Optional[Callable] = None) -> Dict[Hashable, Timing]:
    """Time ``statements`` in rounds, round-robin (see the module
    docstring).

    Args:
        statements (dict): Name to a statement called without arguments.
        repeats (int): Timed rounds (0: warm up only).
        warmup (int): Untimed rounds first, one call each. Defaults to 0.
        number (int): Calls per timed block. Defaults to 1.
        batch (int): Images per call. Defaults to 1.
        setups (dict, optional): Name to what runs untimed before each of
            that statement's blocks. Defaults to None.
        report (Callable, optional): Called after every block, warm-up
            included, as ``report(name, round, seconds, other_cores)``.
            Defaults to None.

    Returns:
        dict: Name to its :class:`Timing`, in the order of ``statements``.
    """
    timers = {
        name: BlockTimer(fn, (setups or {}).get(name), str(name))
        for name, fn in statements.items()
    }
    seconds = {name: [] for name in statements}
    others = {name: [] for name in statements}
    meter = OtherLoad()
    for index in range(warmup + repeats):
        for name, timer in timers.items():
            before = meter.snapshot()
            block = timer.block(1 if index < warmup else number)
            other = OtherLoad.cores(before, meter.snapshot())
            if report:
                report(name, index, block, other)
            if index >= warmup:
                seconds[name].append(block)
                others[name].append(other)
    return {
        name: Timing(1, seconds[name], timer._task_spec, None, batch,
                     others[name])
        for name, timer in timers.items()
    }


class OtherLoad:
    """CPU cores used by *other* processes over an interval (Linux).

    Busy time of the whole machine from ``/proc/stat`` minus this process's
    own CPU time (and its finished children's): a direct measure of how
    much the rest of the machine competed with a timed block (``loadavg``
    also counts this process).
    """

    def __init__(self):
        self.tick = os.sysconf('SC_CLK_TCK') if hasattr(os, 'sysconf') else 100
        self.ok = osp.exists('/proc/stat')

    def snapshot(self):
        if not self.ok:
            return None
        with open('/proc/stat') as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        busy = (sum(fields[:8]) - idle) / self.tick
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        mine = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
        return busy, mine, time.perf_counter()

    @staticmethod
    def cores(start, end) -> Optional[float]:
        if start is None or end is None or end[2] <= start[2]:
            return None
        other = (end[0] - start[0]) - (end[1] - start[1])
        return max(0.0, other / (end[2] - start[2]))


def loadavg() -> Optional[List[float]]:
    """The 1, 5 and 15-minute load averages (None where unknown)."""
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def describe_machine(device: str = 'cpu') -> str:
    """The GPU's name, or the CPU's model and logical CPU count."""
    if device == 'cuda':
        return torch.cuda.get_device_name()
    try:
        with open('/proc/cpuinfo') as f:
            name = next(
                line.split(':', 1)[1].strip() for line in f
                if line.startswith('model name'))
    except (OSError, StopIteration):
        name = platform.processor() or platform.machine()
    return f'{name}, {os.cpu_count()} logical CPUs'


#: The options the measuring tools share, by name (see :func:`tool_options`).
TOOL_OPTIONS = {
    'configs':
    dict(
        nargs='+',
        help='config files (the first is the baseline of the ratios)'),
    '--no-pretrained':
    dict(
        action='store_true',
        help="random CI2P codec weights instead of CompressAI's, offline "
        '(speed and FLOPs do not depend on them; a checkpoint brings its '
        'own)'),
    '--cfg-options':
    dict(nargs='+', action=DictAction, help='override config settings'),
    '--batch-size':
    dict(type=at_least(1), default=8),
    '--repeats':
    dict(type=at_least(1), default=5, help='timed rounds (median)'),
    '--warmup':
    dict(type=at_least(0), default=2, help='untimed rounds first'),
    '--threads':
    dict(
        type=at_least(1),
        help="intra-op threads of torch (and onnxruntime) (default: torch's)"),
    '--seed':
    dict(type=int, default=0),
    '--out':
    dict(type=output_file, help='write the results as JSON here'),
}


def tool_options(*names: str) -> argparse.ArgumentParser:
    """A ``parents=`` parser of the shared options ``names``
    (:data:`TOOL_OPTIONS`)."""
    parser = argparse.ArgumentParser(add_help=False)
    for name in names:
        parser.add_argument(name, **TOOL_OPTIONS[name])
    return parser


def format_table(header: Sequence[str],
                 rows: Sequence[Sequence],
                 markdown: bool = False) -> str:
    """Rows of cells as text: columns padded to their widest cell (the
    first left-aligned, the others right-aligned) under a rule, or a
    Markdown table (cells as they are)."""
    if markdown:
        lines = [f'| {" | ".join(map(str, r))} |' for r in (header, *rows)]
        return '\n'.join([lines[0], '|' + '---|' * len(header), *lines[1:]])
    rows = [list(map(str, row)) for row in rows]
    widths = [max(map(len, column)) + 2 for column in zip(header, *rows)]
    lines = [[
        c.rjust(w) if i else c.ljust(w)
        for i, (c, w) in enumerate(zip(row, widths))
    ] for row in [list(header), *rows]]
    lines.insert(1, ['-' * sum(widths)])
    return '\n'.join(''.join(line) for line in lines)


def write_json(path: Optional[str], report, quiet: bool = False) -> None:
    """A tool's results as JSON, written atomically; nothing without a
    ``path`` (the tools' ``--out`` is optional)."""
    if not path:
        return
    write_text_atomically(path, json.dumps(report, indent=2) + '\n')
    if not quiet:
        print(f'wrote {path}', flush=True)
