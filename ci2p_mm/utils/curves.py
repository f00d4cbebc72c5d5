"""Per-epoch training curves from mmengine work dirs."""
import glob
import json
import logging
import os.path as osp
from collections import defaultdict
from typing import Dict, List

from mmengine.logging import print_log

from .errors import listing


def read_json_lines(path: str) -> List[dict]:
    """The JSON objects of a JSON-lines log, one a line.

    A line that is not one is skipped, and the skipped lines are named in
    one warning: the last line of a run stopped by a crash or a full disk
    is cut short, and the lines before it are still good.
    """
    entries, broken = [], []
    with open(path, 'rb') as f:
        for number, line in enumerate(f, 1):
            try:
                entry = json.loads(line)
            except ValueError:  # JSON or UTF-8 errors
                entry = None
            if isinstance(entry, dict):
                entries.append(entry)
            elif line.strip():
                broken.append(number)
    if broken:
        print_log(
            f'{path}: skipped {len(broken)} line(s) that are not JSON '
            f'records (line {listing(broken)}); a crash or a full disk '
            f'leaves the last line of a log cut short.',
            logger='current',
            level=logging.WARNING)
    return entries


def load_curves(work_dir: str,
                metric: str = 'accuracy/top1') -> Dict[str, List[float]]:
    """Mean train loss and validation ``metric`` per epoch.

    Reads every ``<timestamp>/vis_data/scalars.json`` under ``work_dir`` in
    time order, so a resumed run continues its earlier logs (a later entry
    for the same epoch replaces an earlier one); lines cut short are skipped
    with a warning (:func:`read_json_lines`), non-regular files (a FIFO)
    passed over.

    Returns:
        dict: ``loss_epochs``, ``loss``, ``val_epochs``, ``val``.
    """
    files = sorted(
        p for p in glob.glob(
            osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
        if osp.isfile(p))
    if not files:
        raise FileNotFoundError(
            f'No training logs in {work_dir}: expected '
            f'{work_dir}/<timestamp>/vis_data/scalars.json as written by '
            f'tools/train.py.')
    losses, vals = defaultdict(list), {}
    for path in files:
        run_losses = defaultdict(list)
        for entry in read_json_lines(path):
            if 'loss' in entry and 'epoch' in entry:
                run_losses[entry['epoch']].append(entry['loss'])
            elif metric in entry:
                vals[entry['step']] = entry[metric]
        losses.update(run_losses)
    loss_epochs = sorted(losses)
    val_epochs = sorted(vals)
    return dict(
        loss_epochs=loss_epochs,
        loss=[sum(losses[e]) / len(losses[e]) for e in loss_epochs],
        val_epochs=val_epochs,
        val=[vals[e] for e in val_epochs])
