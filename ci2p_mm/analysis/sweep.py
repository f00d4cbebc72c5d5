"""``benchmark.py --batch-sizes 128 256 512 1024``: a mode once per batch.

The mode (model steps or ``--end-to-end``) runs once per batch size, each
with the command line it would have alone (``--batch-size N``, so the
memory probes of the step mode measure that batch). A batch size that runs
out of device memory is recorded as such and the larger ones are skipped.
The JSON (``--out``) holds every run's own report and a table of img/s
and peak memory per model and batch size.

The learning rate of a larger batch is the config's business, not this
tool's (it times steps): the configs state the rule (linear scaling from
``auto_scale_lr.base_batch_size``; ``tools/train.py --auto-scale-lr``).
"""
import datetime
import gc
from typing import Callable, Dict, List, Sequence

import torch

from .timing import MIB, TOOL, write_report

#: Options a sweep sets per run (value count), removed from the command.
PER_RUN_OPTIONS = {'--batch-sizes': '+', '--batch-size': 1, '--out': 1}


def add_arguments(parser):
    group = parser.add_argument_group('--batch-sizes (a sweep)')
    group.add_argument(
        '--batch-sizes',
        type=int,
        nargs='+',
        help='run the mode once per batch size (e.g. 128 256 512 1024) and '
        'tabulate img/s and peak memory; a batch size that runs out of '
        'device memory ends the sweep (see ci2p_mm/analysis/sweep.py)')


def without_options(argv: Sequence[str], options: Dict) -> List[str]:
    """``argv`` without ``options`` (``{'--name': count or '+'}``) and
    their values, in both ``--name v`` and ``--name=v`` forms."""
    out, i = [], 0
    argv = list(argv)
    while i < len(argv):
        name = argv[i].split('=', 1)[0]
        if name not in options:
            out.append(argv[i])
            i += 1
            continue
        i += 1
        if '=' in argv[i - 1]:
            continue
        count = options[name]
        if count == '+':
            while i < len(argv) and not argv[i].startswith('--'):
                i += 1
        else:
            i += count
    return out


def _cells(report: Dict) -> Dict[str, str]:
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


def format_table(runs: List[Dict]) -> str:
    names = []
    for run in runs:
        for name in _cells(run['report']) if 'report' in run else {}:
            if name not in names:
                names.append(name)
    width = max([34] + [len(n) + 2 for n in names])
    lines = [
        f'{"model":<{width}}' +
        ''.join(f'{"batch " + str(r["batch_size"]):>30}' for r in runs)
    ]
    lines.append('-' * len(lines[0]))
    for name in names:
        line = f'{name:<{width}}'
        for run in runs:
            cell = (
                _cells(run['report']).get(name, '-')
                if 'report' in run else 'out of memory')
            line += f'{cell:>30}'
        lines.append(line)
    lines.append('img/s (peak MiB) per model and batch size; the runs\' own '
                 'tables are in the JSON')
    return '\n'.join(lines)


def run(args, argv: Sequence[str], parse_args: Callable,
        run_mode: Callable) -> Dict:
    """Run ``run_mode(args, argv)`` once per ``args.batch_sizes``."""
    base = without_options(argv, PER_RUN_OPTIONS)
    runs = []
    for batch_size in args.batch_sizes:
        run_argv = base + ['--batch-size', str(batch_size)]
        print(
            f'=== batch size {batch_size}: {TOOL} {" ".join(run_argv)}',
            flush=True)
        try:
            report = run_mode(parse_args(run_argv), run_argv)
        except torch.OutOfMemoryError as err:
            reason = str(err).splitlines()[0]
            print(
                f'batch size {batch_size}: out of device memory ({reason})'
                f'; larger batch sizes skipped',
                flush=True)
            runs.append(dict(batch_size=batch_size, out_of_memory=reason))
            break
        finally:
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        runs.append(
            dict(batch_size=batch_size, command=run_argv, report=report))
    table = format_table(runs)
    print(table, flush=True)
    result = dict(
        date=datetime.datetime.now().isoformat(timespec='seconds'),
        command=' '.join([TOOL] + list(argv)),
        sweep='batch_size',
        runs=runs,
        table=table)
    if args.out:
        write_report(args.out, result)
    return result
