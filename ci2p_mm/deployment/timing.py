"""CPU inference throughput of onnxruntime against PyTorch eager.

Each runner is called on the same prepared batch, timed by
:func:`ci2p_mm.utils.timing.interleave` (torch.utils.benchmark): first
``warmup`` untimed calls of every runner, then ``repeats`` timed rounds in
which every runner runs once in turn (round-robin), so a change in machine
load hits all of them alike; the median round gives img/s. PyTorch runs the
exported module in eval mode under ``torch.inference_mode()``; onnxruntime
runs the file with its CPU provider. Both use the same number of intra-op
threads; the load averages before and after say how busy the machine was.

:func:`export_options` holds the options ``pytorch2onnx.py`` and
``benchmark_onnx.py`` share (a ``parents=`` parser).
"""
import argparse
from functools import partial
from typing import Callable, Dict, Hashable, Tuple

import torch

from ci2p_mm.utils.timing import (Timing, describe_machine, interleave,
                                  loadavg, tool_options)
from .export import EXPORTERS
from .parity import graph_input, ort_session, random_images

RUNTIMES = ('pytorch', 'onnxruntime')


def export_options() -> argparse.ArgumentParser:
    """``--exporter``, ``--opset`` and the shared config, weight and timing
    options of both ONNX tools."""
    parser = tool_options('--no-pretrained', '--cfg-options', '--repeats',
                          '--warmup', '--threads')
    parser.add_argument(
        '--exporter',
        choices=EXPORTERS,
        default='torchscript',
        help="torch.onnx's exporter (docs/deployment.md)")
    parser.add_argument(
        '--opset',
        type=int,
        help='ONNX opset (default: 17 torchscript, 18 dynamo)')
    return parser


def runtime_runners(result, batch: int,
                    threads: int) -> Dict[str, Callable[[], object]]:
    """The runners of an ``ExportResult`` keyed by :data:`RUNTIMES` (as the
    module docstring says) on the same ``batch`` random images, fed as the
    graph takes them."""
    x = graph_input(result.model, random_images(batch, result.input_hw),
                    result.contract)
    session = ort_session(result.path, threads)
    feed = {session.get_inputs()[0].name: x.numpy()}
    result.graph.eval()
    return dict(
        pytorch=torch.inference_mode()(partial(result.graph, x)),
        onnxruntime=lambda: session.run(None, feed))


def time_runners(runners: Dict[Hashable, Callable[[], object]],
                 batch: int,
                 warmup: int = 2,
                 repeats: int = 5) -> Tuple[Dict[Hashable, Timing], str]:
    """Warm up every runner, then time ``repeats`` round-robin rounds.

    Returns the timings and the machine with its 1-min load average before
    and after the timed rounds (``'AMD EPYC ..., 2 logical CPUs, 1-min
    load average 5.2 -> 6.1'``: this process counts too, about its thread
    count).
    """
    interleave(runners, 0, warmup)
    before = loadavg()
    timings = interleave(runners, repeats, batch=batch)
    after = loadavg()
    load = ('' if before is None or after is None else
            f', 1-min load average {before[0]:.1f} -> {after[0]:.1f}')
    return timings, describe_machine() + load
