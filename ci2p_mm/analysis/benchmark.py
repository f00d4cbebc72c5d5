"""``tools/analysis_tools/benchmark.py``: speed and memory of config models.

This module parses the command line and hands it to a mode:

* default: model steps on a batch in memory, inference and training, with
  peak memory (:mod:`.step`);
* ``--end-to-end``: training iterations with the config's data loading
  from files, latent stores encoded once (:mod:`.end_to_end`);
* ``--latent-storage``: latent store formats side by side
  (:mod:`.latent_storage`).

Around the first two: ``--batch-sizes 128 256 512 1024`` runs the mode once
per batch size (:func:`sweep`), each with the command line it would have
alone (``--batch-size N``, so the memory probes of the step mode measure
that batch). A batch size that runs out of device memory is recorded as
such and the larger ones are skipped. The JSON (``--out``) holds every
run's own report and a table of img/s and peak memory per model and batch
size. The learning rate of a larger batch is the config's business, not
this tool's (it times steps): the configs state the rule (linear scaling
from ``auto_scale_lr.base_batch_size``; ``tools/train.py
--auto-scale-lr``).

``--profile`` and ``--report-sdpa`` profile the models after timing
(:mod:`.profile`). The speed levers every mode applies alike (precision,
``--compile-mode``, ``--optimizer-impl``, channels_last) are in
:mod:`.timing`; the timer itself, torch.utils.benchmark's, and the options,
tables and JSON the measuring tools share, in :mod:`ci2p_mm.utils.timing`.
"""
import argparse
import datetime
import gc
import sys
from typing import Dict, List, Sequence

import torch

from ci2p_mm.utils.cli import DefaultsHelpFormatter, at_least
from ci2p_mm.utils.timing import format_table, tool_options, write_json
from . import end_to_end, latent_storage, profile, step
from .timing import COMPILE_MODES, MIB, OPTIMIZER_IMPLS, TOOL, check_input_size

#: Options a sweep sets per run (value count), removed from the command.
PER_RUN_OPTIONS = {'--batch-sizes': '+', '--batch-size': 1, '--out': 1}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Throughput (img/s) and peak memory of models built '
        'from configs; ratios against the first config.',
        formatter_class=DefaultsHelpFormatter,
        parents=[
            tool_options('configs', '--batch-size', '--no-pretrained',
                         '--cfg-options', '--repeats', '--warmup', '--threads',
                         '--seed', '--out')
        ])
    add = parser.add_argument
    add('--img-size', type=at_least(1), default=256, help='square input size')
    add('--device',
        choices=['cpu', 'cuda'],
        default='cuda' if torch.cuda.is_available() else 'cpu')
    add('--amp',
        choices=['bf16', 'fp16'],
        help='autocast dtype (default: fp32). CUDA training uses '
        "mmengine's AmpOptimWrapper (loss scaling); CPU uses torch.autocast "
        'with the plain OptimWrapper.')
    add('--channels-last',
        action='store_true',
        help='channels_last memory format: CI2P configs get '
        'patch_cfg.channels_last=True (the encoder and reshape convs run '
        'NHWC); other models are converted with '
        'model.to(memory_format=torch.channels_last) and NHWC input')
    add('--compile',
        action='store_true',
        help="torch.compile the model's forward (as tools/train.py "
        '--compile does)')
    add('--compile-mode',
        choices=COMPILE_MODES,
        help='torch.compile mode (with --compile): reduce-overhead replays '
        'CUDA graphs (static shapes), max-autotune-no-cudagraphs tunes '
        'kernels without them')
    add('--compile-backend',
        default='inductor',
        help="torch.compile backend (with --compile); 'eager' or "
        "'aot_eager' check tracing without code generation")
    add('--optimizer-impl',
        choices=OPTIMIZER_IMPLS,
        default='config',
        help="the optimizer's implementation: as the config says (torch picks "
        "foreach on CUDA), foreach (multi-tensor kernels) or fused (torch's "
        'fused kernel; optim_wrapper.optimizer.fused=True in a config)')
    add('--memory',
        choices=['probe', 'in-process', 'none'],
        default='probe',
        help='peak memory of the step mode: a fresh process per model and '
        'mode (probe), or on CUDA in this process (weights, optimizer '
        'state and batch + the step\'s rise; cheap, for sweeps)')
    add('--batch-sizes',
        type=at_least(1),
        nargs='+',
        help='run the mode once per batch size (e.g. 128 256 512 1024) and '
        'tabulate img/s and peak memory; a batch size that runs out of '
        'device memory ends the sweep (see ci2p_mm/analysis/benchmark.py)')
    step.add_arguments(parser)
    end_to_end.add_arguments(parser)
    latent_storage.add_arguments(parser)
    profile.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.memory == 'in-process' and args.device != 'cuda':
        parser.error('--memory in-process needs --device cuda (CPU peaks '
                     'need a fresh process: --memory probe)')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda but CUDA is not available')
    if args.img_size % 32:
        parser.error('--img-size must be a multiple of 32 (CI2P needs it)')
    for batch in args.batch_sizes or [args.batch_size]:
        check_input_size(f'--img-size {args.img_size} --batch-size {batch}',
                         (args.img_size, args.img_size), batch)
    if args.compile and args.warmup < 3:
        # First calls compile, and eval/train switches recompile once.
        print(f'--compile: raising --warmup from {args.warmup} to 3')
        args.warmup = 3
    return args


def run_mode(args, argv):
    """Run the one mode ``args`` asks for; return its report."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.probe:
        return step.run_probe(args)
    if args.end_to_end:
        return end_to_end.run(args, argv)
    if args.latent_storage:
        return latent_storage.run(args, argv)
    return step.run(args, argv)


def without_options(argv: Sequence[str], options: Dict) -> List[str]:
    """``argv`` without ``options`` (``{'--name': count or '+'}``) and
    their values, in both ``--name v`` and ``--name=v`` forms (argparse
    keeps what it does not know, in order)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for name, count in options.items():
        parser.add_argument(name, nargs=count)
    return parser.parse_known_args(list(argv))[1]


def sweep_cells(report: Dict) -> Dict[str, str]:
    """``{model: 'img/s (peak MiB)'}`` of one run's report."""
    cells = {}
    for row in report['results']:
        if 'img_per_s' in row:  # end to end
            peak = row.get('peak_mib')
            cells[row['name']] = (f'{row["img_per_s"]:.1f}' +
                                  ('' if peak is None else f' ({peak:.0f})'))
            continue
        parts = []
        for mode in ('train', 'infer'):
            if mode not in row:
                continue
            mem = row[mode].get('memory')
            parts.append(f'{mode} {row[mode]["img_per_s"]:.1f}' +
                         (f' ({mem["peak_bytes"] / MIB:.0f})' if mem else ''))
        cells[row['name']] = ', '.join(parts)
    return cells


def sweep(args, argv: Sequence[str]) -> Dict:
    """Run the mode once per ``args.batch_sizes`` (see the module
    docstring)."""
    base = without_options(argv, PER_RUN_OPTIONS)
    runs = []
    for batch_size in args.batch_sizes:
        run_argv = base + ['--batch-size', str(batch_size)]
        print(f'=== batch size {batch_size}: {TOOL} {" ".join(run_argv)}')
        try:
            report = run_mode(parse_args(run_argv), run_argv)
        except torch.OutOfMemoryError as err:
            reason = str(err).splitlines()[0]
            print(f'batch size {batch_size}: out of device memory ({reason})'
                  f'; larger batch sizes skipped')
            runs.append(dict(batch_size=batch_size, out_of_memory=reason))
            break
        finally:
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        runs.append(
            dict(
                batch_size=batch_size,
                command=run_argv,
                report=report,
                cells=sweep_cells(report)))
    names = list(dict.fromkeys(n for r in runs for n in r.get('cells', {})))
    table = format_table(
        ['model'] + [f'batch {r["batch_size"]}' for r in runs], [[name] + [
            r['cells'].get(name, '-') if 'cells' in r else 'out of memory'
            for r in runs
        ] for name in names])
    table += ('\nimg/s (peak MiB) per model and batch size; the runs\' own '
              'tables are in the JSON')
    for run in runs:
        run.pop('cells', None)
    print(table)
    result = dict(
        date=datetime.datetime.now().isoformat(timespec='seconds'),
        command=' '.join([TOOL] + list(argv)),
        sweep='batch_size',
        runs=runs,
        table=table)
    write_json(args.out, result)
    return result


def run(argv=None):
    """Run what ``argv`` asks for (a mode, or a sweep of it); return the
    report."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.batch_sizes and not args.probe:
        return sweep(args, argv)
    return run_mode(args, argv)


def main(argv=None) -> int:
    run(argv)
    return 0


if __name__ == '__main__':  # the memory probes run this module
    from ci2p_mm.utils.cli import run as run_cli
    run_cli(main)
