"""``tools/analysis_tools/lever_table.py``: what each speed lever buys.

    python tools/analysis_tools/lever_table.py BASELINE.json LEVER.json ... \
        [--out levers.md]

Reads reports of ``benchmark.py`` (model steps, ``--end-to-end``, and
``--batch-sizes`` sweeps of either), names each run's settings where they
differ from the first file's (batch size, precision, compile mode,
optimizer implementation, channels_last), and
tabulates per model the training throughput (train step img/s, or end to
end img/s), its ratio to the same model in the reference run (the first
run of the same measure and batch size, e.g. a sweep's batch-512 run for a
lever measured at 512), and the peak memory. One lever per file, each
measured on its own, so a row says what that lever buys; a combined run is
one more file.
"""
import argparse
import json
import os.path as osp
from typing import Dict, Iterator, List, Optional, Tuple

from ci2p_mm.utils.cli import output_file
from ci2p_mm.utils.errors import UserError
from ci2p_mm.utils.io import write_text_atomically
from ci2p_mm.utils.timing import format_table
from .timing import MIB


class LeverTableError(UserError, ValueError):
    """A file that is not a benchmark.py report."""


def read_report(path: str) -> dict:
    try:
        with open(path) as f:
            report = json.load(f)
    except (OSError, ValueError) as err:
        raise LeverTableError(f'{path}: cannot read a benchmark.py JSON '
                              f'report ({err}).') from None
    if not isinstance(report, dict) or not ('results' in report
                                            or 'runs' in report):
        raise LeverTableError(
            f'{path}: not a benchmark.py report (no results or runs); write '
            f'one with benchmark.py ... --out FILE.json.')
    return report


def runs_of(report: dict) -> List[dict]:
    """The single-batch reports in a report (one, or a sweep's runs)."""
    if 'runs' not in report:
        return [report]
    return [run['report'] for run in report['runs'] if 'report' in run]


def settings(report: dict) -> Dict[str, str]:
    """The levers a report was measured with, as comparable text."""
    meta = report.get('meta', report)
    compiled = meta.get('compile_kwargs')
    if compiled is None and meta.get('compile'):
        compiled = {}
    options = ', '.join(f'{k}={v}' for k, v in (compiled or {}).items())
    return dict(
        measure='end to end' if 'meta' not in report else 'train step',
        batch=str(meta.get('batch_size')),
        precision=str(meta.get('precision', '')).split(',')[0],
        compile='eager' if compiled is None else 'compile' +
        (f' ({options})' if options else ''),
        optimizer=str(meta.get('optimizer_impl', 'config')),
        channels_last='channels_last' if meta.get('channels_last') else 'NCHW')


def model_rows(
    report: dict
) -> Iterator[Tuple[str, float, Optional[float], Optional[float]]]:
    """``(model, train img/s, infer img/s, peak MiB)`` per model."""
    for row in report['results']:
        if 'img_per_s' in row:  # end to end
            yield row['name'], row['img_per_s'], None, row.get('peak_mib')
            continue
        train, infer = row.get('train') or {}, row.get('infer') or {}
        memory = (train or infer).get('memory')
        yield (row['name'], train.get('img_per_s'), infer.get('img_per_s'),
               memory['peak_bytes'] / MIB if memory else None)


def lever_table(paths: List[str]) -> str:
    """Rows per run and model; each run is compared with the first run of
    the same measure and batch size (so a lever at batch 512 is compared
    with the batch-512 run of a sweep, not with its batch 128), else with
    the very first run."""
    reports = [(p, r, settings(r)) for p in paths
               for r in runs_of(read_report(p))]
    if not reports:
        raise LeverTableError('no runs in the given reports')
    references = {}
    for _, report, own in reports:
        references.setdefault((own['measure'], own['batch']), (report, own))
    rows = []
    for path, report, own in reports:
        reference, theirs = references[(own['measure'], own['batch'])]
        if reference is report:  # the batch's own reference: vs the first
            reference, theirs = reports[0][1:]
        # the lever: the settings that differ from the reference's
        label = ', '.join(f'{k} {v}' if k == 'batch' else v
                          for k, v in own.items()
                          if theirs.get(k) != v) or 'baseline'
        baseline = {name: (t, i) for name, t, i, _ in model_rows(reference)}
        for name, train, infer, peak in model_rows(report):
            cells = [label, name]
            for value, base in zip((train, infer),
                                   baseline.get(name, (None, None))):
                cells.append('-' if value is None else f'{value:,.1f}')
                cells.append(f'{value / base:.2f}x' if value and base else '-')
            rows.append(
                cells +
                ['-' if peak is None else f'{peak:,.0f}',
                 osp.basename(path)])
    first = ', '.join(f'{k} {v}' for k, v in reports[0][2].items())
    return format_table(
        [
            'lever (vs its reference run)', 'model', 'train img/s', 'x',
            'infer img/s', 'x', 'peak MiB', 'file'
        ],
        rows,
        markdown=True) + (
            f'\n\nx = vs the same model in the reference run: the first run '
            f'of the same measure and batch size (for those, the first '
            f'run: {first}). The lever column names what differs from '
            f'the reference.')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description='Tabulate what each speed lever buys from '
        'benchmark.py JSON reports (the first is the baseline).')
    parser.add_argument('reports', nargs='+', help='benchmark.py --out files')
    parser.add_argument(
        '--out', type=output_file, help='also write the table (Markdown) here')
    args = parser.parse_args(argv)
    table = lever_table(args.reports)
    print(table)
    if args.out:
        write_text_atomically(args.out, table + '\n')
    return 0
