"""Export a config's classifier (or its backbone's feature maps) to ONNX,
check it against PyTorch with onnxruntime, and time both.

    python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT \
        --out model.onnx [--shape H W] [--dynamic-batch] [--opset N] \
        [--features] [--normalize-in-graph] [--verify] [--benchmark]

``CHECKPOINT`` is a file of ``tools/train.py`` (or ``publish_model.py``),
loaded safely and checked to fit the model, or ``none`` for the model's own
initialisation (random weights; add ``--no-pretrained`` for a random CI2P
codec offline). The graph, its input contract and its outputs are
described in :mod:`ci2p_mm.deployment.graph` and docs/deployment.md.
"""
import argparse
import inspect
import json
import os
import os.path as osp
import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple, Type

import torch
import torch.nn as nn
from mmengine.utils import to_2tuple

from ci2p_mm.utils.cli import DefaultsHelpFormatter, at_least
from ci2p_mm.utils.errors import UserError
from ci2p_mm.utils.io import atomic_output, check_output_path, printable_path
from ci2p_mm.utils.timing import tool_options
from .export import check_opset, export_graph, write_metadata
from .graph import (INPUT_NAME, ExportGraph, InputContract, as_tuple,
                    input_contract, output_names)
from .model import (NO_CHECKPOINT, ExportError, build_export_model,
                    load_export_config)
from .parity import (DEFAULT_ATOL, DEFAULT_RTOL, OutputParity, check_parity,
                     graph_input, import_onnxruntime, random_images)
from .timing import export_options, runtime_runners, time_runners

#: What a classifier graph outputs, for the file's metadata and the log.
LOGITS = ("class scores before softmax (mmpretrain's pred_score is "
          'softmax(logits))')
#: The largest input an export builds and checks: H x W of one image
#: (``--shape``), and batch x H x W (``--verify-batch``,
#: ``--benchmark-batch``). Beyond, the example images alone take GBs
#: (16000 x 16000: 3 GB as float32, before the model runs).
MAX_PIXELS = 2048 * 2048
MAX_BATCH = (8, 2048)  # (images, side): 8 images of 2048 x 2048


@dataclass
class ExportResult:
    """An exported file and what it holds."""
    path: str
    model: nn.Module
    graph: ExportGraph
    contract: InputContract
    input_hw: Tuple[int, int]
    outputs: List[Tuple[str, list]]  # (name, shape with 'batch')
    opset: int
    exporter: str
    seconds: float
    parity: List[OutputParity] = field(default_factory=list)

    @property
    def parity_ok(self) -> bool:
        return all(p.ok for p in self.parity)


def default_input_hw(cfg) -> Tuple[int, int]:
    """The size the config tests at: the last crop or resize of its test
    pipeline, else the backbone's ``img_size``, else 224."""
    pipeline = (cfg.get('test_dataloader') or {}).get(
        'dataset', {}).get('pipeline') or cfg.get('test_pipeline') or []
    for step in reversed(pipeline):
        size = step.get('crop_size') if 'Crop' in str(step.get('type')) \
            else step.get('scale') if step.get('type') == 'Resize' else None
        if size is not None:
            w, h = to_2tuple(size)
            return int(h), int(w)  # mmcv sizes are (w, h)
    h, w = to_2tuple(cfg.model.get('backbone', {}).get('img_size', 224))
    return int(h), int(w)


def export_config(config: str,
                  checkpoint: str,
                  out: str,
                  shape: Optional[Sequence[int]] = None,
                  dynamic_batch: bool = False,
                  opset: Optional[int] = None,
                  exporter: str = 'torchscript',
                  features: bool = False,
                  normalize_in_graph: bool = False,
                  cfg_options: Optional[dict] = None,
                  no_pretrained: bool = False,
                  verify: bool = False,
                  verify_batch: int = 3,
                  atol: float = DEFAULT_ATOL,
                  rtol: float = DEFAULT_RTOL,
                  seed: int = 0) -> ExportResult:
    """Build, export and (``verify``) check one model; see the module
    docstring. ``out`` is written atomically, and only when the check (if
    asked for) passes.

    Raises:
        ExportError: a setting or module that cannot be exported, naming
            the option to change.
    """
    opset = check_opset(exporter, opset)
    check_output_path(out, config, checkpoint, what='--out')
    import_onnxruntime()  # fail before the minutes of building and export

    cfg = load_export_config(config, cfg_options, features, no_pretrained)
    hw = tuple(shape) if shape else default_input_hw(cfg)
    check_input_size(f'--shape {hw[0]} {hw[1]}', hw,
                     verify_batch if verify and dynamic_batch else 1)
    model, classes = build_export_model(cfg, checkpoint, features)
    try:
        contract = input_contract(model, normalize_in_graph)
    except ValueError as err:
        raise ExportError(f'{config}: {err}') from err
    graph = ExportGraph(model, features, contract).eval()

    example = graph_input(model, random_images(1, hw, seed), contract)
    try:
        with torch.no_grad():
            outputs = as_tuple(graph(example))
    except ValueError as err:  # the model's own input checks
        raise ExportError(
            f'--shape {hw[0]} {hw[1]}: the model refuses this input '
            f'size. {err}') from err
    names = output_names(outputs, hw, features)
    batch = 'batch' if dynamic_batch else 1
    described = [(n, [batch, *o.shape[1:]]) for n, o in zip(names, outputs)]

    start = time.perf_counter()
    with atomic_output(out) as tmp:
        export_graph(graph, example, tmp, INPUT_NAME, names, opset,
                     dynamic_batch, exporter)
        seconds = time.perf_counter() - start
        metadata = graph_metadata(config, checkpoint, contract, described,
                                  features, classes)
        written = write_metadata(tmp, metadata, doc_string=metadata['model'])
        if written != opset:
            raise ExportError(
                f'--opset {opset}: the {exporter} exporter wrote opset '
                f'{written} instead. Use --opset {written}, or --exporter '
                f'torchscript for opsets up to 20.')
        result = ExportResult(out, model, graph, contract, hw, described,
                              opset, exporter, seconds)
        if verify:
            batches = [1, verify_batch] if dynamic_batch else [1]
            result.parity = check_parity(model, tmp, contract, features, hw,
                                         batches, atol, rtol, seed)
        if not result.parity_ok:
            os.remove(tmp)  # nothing is written
    return result


def check_input_size(flags: str,
                     hw: Sequence[int],
                     batch: int = 1,
                     max_batch: Tuple[int, int] = MAX_BATCH,
                     task: str = 'an export builds, checks and times',
                     error: Type[UserError] = ExportError) -> None:
    """Refuse with ``error``, naming ``flags`` (the options and their values)
    and ``task`` (what allocates), an input beyond :data:`MAX_PIXELS` per
    image or ``max_batch`` (images, side) per batch, before anything is
    allocated; :mod:`ci2p_mm.analysis.timing` gives its own bound."""
    h, w = hw
    if h * w > MAX_PIXELS:
        raise error(f'{flags}: {h} x {w} is {h * w} pixels, more than the '
                    f'{MAX_PIXELS} (2048 x 2048) per image {task}; choose '
                    f'a smaller size.')
    images, side = max_batch
    if batch * h * w > images * side * side:
        raise error(f'{flags}: a batch of {batch} at {h} x {w} is '
                    f'{batch * h * w} pixels, more than the '
                    f'{images * side * side} ({images} x {side} x {side}) '
                    f'{task}; choose a smaller batch.')


def graph_metadata(config: str, checkpoint: str, contract: InputContract,
                   outputs: List[Tuple[str, list]], features: bool,
                   classes: Optional[Sequence[str]]) -> dict:
    """The ONNX file's ``metadata_props``: where it came from and how to
    feed and read it (paths that are not UTF-8 with ``\\xe9`` escapes)."""
    what = ('feature outputs of model.backbone'
            if features else "logits of model(inputs, mode='tensor')")
    metadata = dict(
        model=f'{printable_path(osp.basename(config))}: {what}',
        config=printable_path(config),
        checkpoint=printable_path(osp.basename(checkpoint)),
        **contract.metadata(),
        outputs='; '.join(f'{name} {shape}' for name, shape in outputs) +
        ('' if features else f': {LOGITS}'))
    if classes:
        metadata['classes'] = json.dumps(list(classes))
    return metadata


# --------------------------------------------------------------- command ---
def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export a classifier (or its backbone) to ONNX and '
        'check it against PyTorch with onnxruntime.',
        formatter_class=DefaultsHelpFormatter,
        parents=[export_options(), tool_options('--seed')])
    add = parser.add_argument
    add('config', help='config file')
    add('checkpoint',
        help='checkpoint file, or "none" for the model\'s own '
        'initialisation (random weights)')
    add('--out', required=True, help='the .onnx file')
    add('--shape',
        type=at_least(1),
        nargs=2,
        metavar=('H', 'W'),
        help="input size (default: the config's test size)")
    add('--dynamic-batch',
        action='store_true',
        help='a dynamic batch axis (default: batch 1)')
    add('--features',
        action='store_true',
        help="export model.backbone's feature outputs (for mmdet/mmseg) "
        'instead of the logits')
    add('--normalize-in-graph',
        action='store_true',
        help="take RGB pixels in [0, 255] and apply the data preprocessor's "
        'mean/std inside the graph')
    add('--verify',
        action='store_true',
        help='compare onnxruntime with PyTorch; exit 1 and '
        'write nothing when they differ')
    add('--verify-batch',
        type=at_least(1),
        default=3,
        help='with --dynamic-batch, the second batch size '
        '--verify checks (the first is 1)')
    add('--atol', type=float, default=DEFAULT_ATOL)
    add('--rtol', type=float, default=DEFAULT_RTOL)
    add('--benchmark',
        action='store_true',
        help='time onnxruntime against PyTorch eager on the CPU')
    add('--benchmark-batch',
        type=at_least(1),
        help='batch for --benchmark (default: 8 with --dynamic-batch, else 1)')
    args = parser.parse_args(argv)
    if args.checkpoint != NO_CHECKPOINT and args.no_pretrained:
        parser.error('--no-pretrained is for CHECKPOINT none: a checkpoint '
                     'brings its own codec weights')
    return args


def print_export(result: ExportResult, config: str, checkpoint: str) -> None:
    size = osp.getsize(result.path) / 2**20 if osp.exists(result.path) \
        else 0.
    h, w = result.input_hw
    batch = result.outputs[0][1][0]
    print(f'{printable_path(config)} (checkpoint '
          f'{printable_path(checkpoint)}) -> {printable_path(result.path)}: '
          f'opset {result.opset}, {result.exporter} exporter, {size:.1f} MiB, '
          f'{result.seconds:.1f} s')
    print(f'  input   {INPUT_NAME:<10} {[batch, 3, h, w]}  '
          f'{result.contract.describe()}')
    for name, shape in result.outputs:
        note = f'  {LOGITS}' if name.startswith('logits') else ''
        print(f'  output  {name:<10} {shape}{note}')


def print_parity(result: ExportResult, atol: float, rtol: float) -> None:
    print(f'Parity: onnxruntime {import_onnxruntime().__version__} CPU vs '
          f'PyTorch {torch.__version__} eager, fp32, |diff| <= {atol:g} + '
          f'{rtol:g} * |torch|:')
    for row in result.parity:
        print(f'  {row.describe()}')
    if not result.parity_ok:
        print(f'  not written: {printable_path(result.path)} (rerun without '
              f'--verify to keep it for inspection)')


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    # Every option of export_config has its command-line name.
    options = inspect.signature(export_config).parameters
    result = export_config(**{
        k: v
        for k, v in vars(args).items() if k in options
    })
    print_export(result, args.config, args.checkpoint)
    if args.verify:
        print_parity(result, args.atol, args.rtol)
        if not result.parity_ok:
            return 1
    if args.benchmark:
        benchmark_export(result, args)
    return 0


def benchmark_export(result: ExportResult, args) -> None:
    """``--benchmark``: the exported file against the PyTorch model."""
    dynamic = result.outputs[0][1][0] == 'batch'
    batch = args.benchmark_batch or (8 if dynamic else 1)
    if batch != 1 and not dynamic:
        raise ExportError(f'--benchmark-batch {batch} needs --dynamic-batch '
                          f'(the graph was exported for batch 1).')
    h, w = result.input_hw
    check_input_size(f'--shape {h} {w}', (h, w), batch)
    threads = args.threads or torch.get_num_threads()
    timings, machine = time_runners(
        runtime_runners(result, batch, threads), batch, args.warmup,
        args.repeats)
    torch_rate = timings['pytorch'].img_per_s
    print(f'Speed, CPU, batch {batch}, {threads} threads, fp32, median of '
          f'{args.repeats} ({machine}):')
    for name, timing in timings.items():
        print(f'  {name:<12} {timing.img_per_s:8.2f} img/s  '
              f'({timing.img_per_s / torch_rate:.2f}x PyTorch, spread '
              f'{100 * timing.spread:.0f}%)')
