"""Per-epoch training curves from mmengine work dirs."""
import glob
import json
import os.path as osp
from collections import defaultdict
from typing import Dict, List


def load_curves(work_dir: str,
                metric: str = 'accuracy/top1') -> Dict[str, List[float]]:
    """Mean train loss and validation ``metric`` per epoch.

    Reads every ``<timestamp>/vis_data/scalars.json`` under ``work_dir`` in
    time order, so a resumed run continues its earlier logs (a later entry
    for the same epoch replaces an earlier one).

    Returns:
        dict: ``loss_epochs``, ``loss``, ``val_epochs``, ``val``.
    """
    files = sorted(
        glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise FileNotFoundError(
            f'No training logs in {work_dir}: expected '
            f'{work_dir}/<timestamp>/vis_data/scalars.json as written by '
            f'tools/train.py.')
    losses, vals = defaultdict(list), {}
    for path in files:
        run_losses = defaultdict(list)
        with open(path) as f:
            for line in f:
                entry = json.loads(line)
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
