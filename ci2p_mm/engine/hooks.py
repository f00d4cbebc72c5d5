"""Hooks for long runs: safe checkpoints, non-finite losses, skipped files."""
import logging
import math
import os.path as osp
import re
from glob import glob
from typing import Optional

import torch
from mmengine.dist import all_reduce, is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook, Hook
from mmpretrain.registry import HOOKS

from ci2p_mm.utils.io import replace_atomically, write_text_atomically


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook``, safe against kills, plus mid-epoch
    checkpoints.

    * Every file is written to ``NAME.tmp`` and renamed over ``NAME``
      (by :class:`CI2PRunner`, or here with another runner), and
      ``last_checkpoint`` is replaced the same way once the file is
      complete. mmengine writes both in place.
    * Outdated checkpoints (``max_keep_ckpts``) are deleted only after the
      new one is complete; mmengine deletes first, so with
      ``max_keep_ckpts=1`` a kill while saving left no checkpoint at all.
    * ``iter_interval=N`` (epoch-based runs) also saves ``iter_{i}.pth``
      every N iterations inside an epoch, so a kill loses at most N
      iterations; ``ResumableEpochBasedTrainLoop`` resumes inside the epoch.
      Only the newest mid-epoch file is kept, and it is deleted once a later
      epoch checkpoint exists.

    Args:
        iter_interval (int, optional): Mid-epoch checkpoint interval in
            iterations (epoch-based runs only). Defaults to None (off).
        **kwargs: ``CheckpointHook``'s arguments.
    """

    def __init__(self, *args, iter_interval: Optional[int] = None, **kwargs):
        super().__init__(*args, **kwargs)
        if iter_interval is not None and iter_interval < 1:
            raise ValueError(f'iter_interval must be >= 1; got '
                             f'{iter_interval}.')
        self.iter_interval = iter_interval
        self._mid_epoch_ckpts = []

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if self.by_epoch and self.iter_interval and isinstance(
                self.file_backend, LocalBackend):
            # Mid-epoch files of an earlier (killed) run in this work dir.
            self._mid_epoch_ckpts = sorted(
                (p for p in glob(osp.join(self.out_dir, 'iter_*.pth'))
                 if re.fullmatch(r'iter_\d+\.pth', osp.basename(p))),
                key=lambda p: int(re.findall(r'\d+', osp.basename(p))[0]))

    def _write(self, runner, filename: str, meta: dict,
               by_epoch: bool) -> None:
        own = (not getattr(runner, 'saves_atomically', False)
               and isinstance(self.file_backend, LocalBackend))
        runner.save_checkpoint(
            self.out_dir,
            f'{filename}.tmp' if own else filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if own and is_main_process():
            replace_atomically(osp.join(self.out_dir, f'{filename}.tmp'),
                               osp.join(self.out_dir, filename))

    def _point_to(self, runner, path: str) -> None:
        if is_main_process():
            write_text_atomically(
                osp.join(runner.work_dir, 'last_checkpoint'), path)

    def _remove(self, path: str) -> None:
        if not is_main_process():
            return
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):
            self.file_backend.rmtree(path)

    def _save_checkpoint_with_step(self, runner, step, meta):
        outdated = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        self._write(runner, filename, meta, self.by_epoch)
        if not is_main_process():
            return
        self._point_to(runner, self.last_ckpt)
        if outdated is not None and outdated != step:
            self._remove(
                self.file_backend.join_path(
                    self.out_dir, self.filename_tmpl.format(outdated)))
        if self.by_epoch:
            for path in self._mid_epoch_ckpts:
                self._remove(path)
            self._mid_epoch_ckpts = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        super().after_train_iter(runner, batch_idx, data_batch, outputs)
        if not (self.by_epoch and self.iter_interval):
            return
        if not self.every_n_train_iters(runner, self.iter_interval):
            return
        if batch_idx + 1 >= len(runner.train_dataloader):
            return  # the epoch checkpoint follows right away
        self.save_mid_epoch(runner, batch_idx)

    def save_mid_epoch(self, runner, batch_idx: int,
                       step: Optional[int] = None) -> str:
        """Save ``iter_{step}.pth`` after batch ``batch_idx``; return its
        path. ``step`` (iterations done) defaults to ``runner.iter + 1``, as
        in ``after_train_iter``.

        Also used when training stops on a signal (the file is not written
        twice when the interval saved it just before)."""
        step = runner.iter + 1 if step is None else step
        filename = f'iter_{step}.pth'
        path = self.file_backend.join_path(self.out_dir, filename)
        if self._mid_epoch_ckpts == [path]:
            return path
        runner.logger.info(f'Saving a mid-epoch checkpoint at iteration '
                           f'{step} (epoch {runner.epoch + 1}, batch '
                           f'{batch_idx + 1}/{len(runner.train_dataloader)})')
        self._write(runner, filename, dict(epoch=runner.epoch, iter=step),
                    by_epoch=False)
        self._point_to(runner, path)
        for old in self._mid_epoch_ckpts:
            if old != path:
                self._remove(old)
        self._mid_epoch_ckpts = [path]
        return path


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training when a loss is NaN or infinite, saying where.

    Runs right after each training iteration, before the checkpoint hook,
    so no checkpoint of the broken state is written; the last checkpoint
    on disk is from before it.
    """

    priority = 'ABOVE_NORMAL'

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if not isinstance(outputs, dict):
            return
        bad = {}
        for key, value in outputs.items():
            if 'loss' not in key:
                continue
            value = value.detach().float().mean().item() if isinstance(
                value, torch.Tensor) else value
            if isinstance(value, (int, float)) and not math.isfinite(value):
                bad[key] = value
        if not bad:
            return
        values = ', '.join(f'{k}={v}' for k, v in bad.items())
        last = runner.message_hub.get_info('last_ckpt')
        raise FloatingPointError(
            f'Non-finite loss at iteration {runner.iter + 1} (epoch '
            f'{runner.epoch + 1}, batch {batch_idx + 1} of '
            f'{len(runner.train_dataloader)}): {values}. Training stopped; '
            f'no checkpoint of this state was saved'
            f'{f" (the last one is {last})" if last else ""}. Usual causes: '
            f'a learning rate too high (lower optim_wrapper.optimizer.lr or '
            f'set optim_wrapper.clip_grad), fp16 overflow with --amp, or '
            f'bad input data. Fix it, then continue with --resume.')


@HOOKS.register_module()
class SkippedImagesHook(Hook):
    """Log, every training epoch, how many bad images were skipped.

    Datasets with ``skip_bad_images=True`` mark the sample that replaced a
    bad file; this hook counts the marks (over all processes) and lists the
    files. The running total is kept in the message hub (and so in
    checkpoints) as ``skipped_bad_images``.
    """

    priority = 'BELOW_NORMAL'

    def before_train_epoch(self, runner) -> None:
        self._files = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        samples = data_batch.get('data_samples') if isinstance(
            data_batch, dict) else None
        for sample in samples or []:
            files = getattr(sample, 'metainfo', {}).get('skipped_bad_images')
            if files:
                self._files.extend(files)

    def after_train_epoch(self, runner) -> None:
        files = getattr(self, '_files', [])
        count = torch.tensor(float(len(files)))
        all_reduce(count)
        count = int(count.item())
        dataset = runner.train_dataloader.dataset
        total = int(runner.message_hub.get_info('skipped_bad_images', 0))
        total += count
        runner.message_hub.update_info('skipped_bad_images', total)
        if not (count or getattr(dataset, 'skip_bad_images', False)):
            return
        listing = ''
        if files:
            unique = sorted(set(files))
            listing = ': ' + ', '.join(unique[:20]) + (
                f', ... ({len(unique)} files)' if len(unique) > 20 else '')
        runner.logger.log(
            logging.WARNING if count else logging.INFO,
            f'Epoch {runner.epoch + 1}: skipped {count} bad image(s) '
            f'(skip_bad_images=True; {total} so far), each replaced by the '
            f'next readable sample{listing}')
