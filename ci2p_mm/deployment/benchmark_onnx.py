"""onnxruntime against PyTorch on the CPU for several configs in one run.

    python tools/deployment/benchmark_onnx.py \
        configs/vit/vit-b-p16_1xb128-ci2p-adam-300e_animals10.py \
        configs/ci2p_vit/ci2p-vit-b_1xb128-adam-300e_animals10.py \
        --no-pretrained --batch-size 8 --repeats 7 --out onnx_cpu.json

Each config is exported with a dynamic batch (as pytorch2onnx.py
``--dynamic-batch`` does) and checked against PyTorch at batch 1 and at the
timed batch; then every model runs in both runtimes, all interleaved
round-robin (:mod:`ci2p_mm.deployment.timing`). The table gives img/s,
onnxruntime/PyTorch per model, and each model against the first config
within each runtime (list the baseline first).
"""
import argparse
import os.path as osp
import tempfile
from contextlib import nullcontext
from typing import List, Optional

import torch

from ci2p_mm.utils.cli import DefaultsHelpFormatter, at_least
from ci2p_mm.utils.timing import format_table, tool_options, write_json
from .export import DEFAULT_OPSET
from .model import NO_CHECKPOINT, ExportError
from .parity import import_onnxruntime
from .pytorch2onnx import export_config
from .timing import RUNTIMES, export_options, runtime_runners, time_runners


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='CPU img/s of onnxruntime and PyTorch eager for '
        'configs, with ratios.',
        formatter_class=DefaultsHelpFormatter,
        parents=[
            tool_options('configs', '--batch-size', '--out'),
            export_options()
        ])
    parser.add_argument(
        '--checkpoints',
        nargs='+',
        metavar='CHECKPOINT',
        help='one per config, or "none" (default: none for all)')
    parser.add_argument(
        '--shape',
        type=at_least(1),
        nargs=2,
        metavar=('H', 'W'),
        default=(256, 256))
    parser.add_argument(
        '--work-dir',
        help='keep the .onnx files here (default: a temporary folder, '
        'deleted)')
    args = parser.parse_args(argv)
    if args.checkpoints and len(args.checkpoints) != len(args.configs):
        parser.error(f'--checkpoints: give one per config '
                     f'({len(args.configs)}), or none')
    return args


def benchmark(args, work_dir: str) -> dict:
    checkpoints = args.checkpoints or [NO_CHECKPOINT] * len(args.configs)
    threads = args.threads or torch.get_num_threads()
    runners, models = {}, []
    for config, checkpoint in zip(args.configs, checkpoints):
        name = osp.splitext(osp.basename(config))[0]
        if any(m['name'] == name for m in models):
            raise ExportError(f'{config}: two configs named {name}; copy '
                              f'one under another name.')
        result = export_config(
            config,
            checkpoint,
            osp.join(work_dir, f'{name}.onnx'),
            shape=args.shape,
            dynamic_batch=True,
            opset=args.opset,
            exporter=args.exporter,
            cfg_options=args.cfg_options,
            no_pretrained=args.no_pretrained and checkpoint == NO_CHECKPOINT,
            verify=True,
            verify_batch=args.batch_size)
        worst = max(result.parity, key=lambda p: p.max_abs)
        if not result.parity_ok:
            raise ExportError(f'{config}: onnxruntime and PyTorch differ '
                              f'({worst.describe()}); not timed.')
        for runtime, runner in runtime_runners(result, args.batch_size,
                                               threads).items():
            runners[(name, runtime)] = runner
        models.append(
            dict(
                name=name,
                config=config,
                checkpoint=checkpoint,
                max_abs_diff=worst.max_abs,
                max_rel_diff=max(p.max_rel for p in result.parity),
                onnx_mib=osp.getsize(result.path) / 2**20))
        print(
            f'{name}: exported ({models[-1]["onnx_mib"]:.0f} MiB, '
            f'{result.seconds:.1f} s); max abs diff {worst.max_abs:.1e} '
            f'at batch 1 and {args.batch_size}',
            flush=True)
    timings, machine = time_runners(runners, args.batch_size, args.warmup,
                                    args.repeats)
    for model in models:
        for runtime in RUNTIMES:
            t = timings[(model['name'], runtime)]
            model[runtime] = dict(
                img_per_s=t.img_per_s, seconds=t.seconds, spread=t.spread)
    return dict(
        batch_size=args.batch_size,
        shape=list(args.shape),
        threads=threads,
        repeats=args.repeats,
        warmup=args.warmup,
        exporter=args.exporter,
        opset=args.opset or DEFAULT_OPSET[args.exporter],
        machine=machine,
        versions=dict(
            torch=torch.__version__,
            onnxruntime=import_onnxruntime().__version__),
        models=models)


def results_table(results: dict) -> str:
    first = results['models'][0]
    h, w = results['shape']
    rows = []
    for model in results['models']:
        rates = [model[runtime]['img_per_s'] for runtime in RUNTIMES]
        rows.append([model['name']] + [
            f'{rate:.2f} ({rate / first[runtime]["img_per_s"]:.2f}x)'
            for rate, runtime in zip(rates, RUNTIMES)
        ] + [f'{rates[1] / rates[0]:.2f}x', f'{model["max_abs_diff"]:.1e}'])
    return '\n'.join([
        f'CPU inference, fp32, batch {results["batch_size"]} at {h}x{w}, '
        f'{results["threads"]} threads, median of {results["repeats"]} '
        f'round-robin rounds; PyTorch {results["versions"]["torch"]} eager, '
        f'onnxruntime {results["versions"]["onnxruntime"]} '
        f'({results["exporter"]} exporter, opset {results["opset"]})',
        results['machine'],
        format_table([
            'model', 'PyTorch img/s', 'ORT img/s', 'ORT/PyTorch', 'max |diff|'
        ], rows), f'(in brackets: against {first["name"]} in the same '
        f'runtime)'
    ])


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with (nullcontext(args.work_dir) if args.work_dir else
          tempfile.TemporaryDirectory(prefix='ci2p-onnx-')) as work_dir:
        results = benchmark(args, work_dir)
    print(results_table(results))
    write_json(args.out, results)
    return 0
