"""Training, testing and resuming a config the way the libraries' own
``tools/train.py`` / ``tools/test.py`` do: ``Runner.from_cfg(cfg)``, then
``runner.train()``; a new runner with ``load_from=<checkpoint>`` for
``runner.test()``; and ``resume=True`` for a longer schedule (mmdet's,
mmpose's and mmseg's scripts set ``cfg.load_from`` and ``cfg.resume``
exactly so).
"""
import copy
import glob
import math
import os.path as osp
from typing import Dict, List

import numpy as np
from mmengine.hooks import Hook


class IterationCounter(Hook):
    """Counts the training iterations a runner actually runs."""

    def __init__(self):
        self.count = 0

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        self.count += 1


def logged_losses(runner) -> List[float]:
    """Every ``train/loss`` value the run logged (one per iteration)."""
    values, _ = runner.message_hub.get_scalar('train/loss').data
    return [float(v) for v in values]


def assert_loss_falls(losses: List[float], k: int = 5, factor: float = 0.9):
    """The mean of the last ``k`` losses is below ``factor`` x the mean of
    the first ``k``, and all are finite."""
    assert len(losses) >= 2 * k, losses
    assert all(math.isfinite(v) for v in losses), losses
    first, last = np.mean(losses[:k]), np.mean(losses[-k:])
    assert last < factor * first, (
        f'loss did not fall: first {k} mean {first:.4f}, last {k} mean '
        f'{last:.4f}; all: {np.round(losses, 4).tolist()}')


def assert_metrics(metrics: Dict, keys: List[str]):
    for key in keys:
        assert key in metrics, f'{key} not in {sorted(metrics)}'
        assert isinstance(metrics[key],
                          (int, float, np.floating)), (key, metrics[key])
        assert math.isfinite(float(metrics[key])), (key, metrics[key])


def train_test_resume(cfg,
                      name: str,
                      metric_keys: List[str],
                      longer: Dict,
                      factor: float = 0.9) -> Dict:
    """Train ``cfg`` from scratch, check the loss fell and a checkpoint was
    written, test that checkpoint with the library's metric, then resume
    from the work dir with ``train_cfg`` updated by ``longer``.

    No validation while training: the test runner scores the checkpoint,
    and scoring the same model twice would only cost CI time.

    Returns ``dict(losses=..., metrics=..., resumed_from=..., runner=...)``
    (``runner``: the resumed one).
    """
    from mmengine.runner import Runner

    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.experiment_name = f'{name}_train'
    runner = Runner.from_cfg(cfg)
    runner.train()
    losses = logged_losses(runner)
    assert_loss_falls(losses, factor=factor)
    last = osp.join(cfg.work_dir, 'last_checkpoint')
    assert osp.isfile(last), glob.glob(osp.join(cfg.work_dir, '*'))
    with open(last) as f:
        checkpoint = f.read().strip()
    assert osp.isfile(checkpoint), checkpoint
    done_iters = runner.iter

    tested = copy.deepcopy(cfg)  # tools/test.py: load_from=<checkpoint>
    tested.experiment_name = f'{name}_test'
    tested.load_from = checkpoint
    metrics = Runner.from_cfg(tested).test()
    assert_metrics(metrics, metric_keys)

    resumed = copy.deepcopy(cfg)
    resumed.experiment_name = f'{name}_resume'
    resumed.resume = True
    resumed.load_from = None  # the work dir's last checkpoint
    resumed.train_cfg.update(longer)
    runner2 = Runner.from_cfg(resumed)
    counter = IterationCounter()
    runner2.register_hook(counter, priority='LOWEST')
    runner2.train()
    # it started where the first run ended (a fresh start would run all
    # runner2.iter iterations) and restored the logs
    assert runner2.iter > done_iters
    assert counter.count == runner2.iter - done_iters, (counter.count,
                                                        runner2.iter)
    assert logged_losses(runner2)[:len(losses)] == losses
    with open(last) as f:
        assert f.read().strip() != checkpoint
    return dict(
        losses=losses,
        metrics=metrics,
        resumed_from=checkpoint,
        runner=runner2)
