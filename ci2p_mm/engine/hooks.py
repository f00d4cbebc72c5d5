"""Hooks for long runs: safe checkpoints, non-finite losses, skipped files."""
import logging
import math
import os.path as osp
import re
from glob import escape, glob
from typing import List, Optional

import torch
from mmengine.dist import all_reduce, is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook, Hook
from mmpretrain.registry import HOOKS

from ci2p_mm.utils.errors import UserError, listing
from ci2p_mm.utils.io import write_bytes_atomically, write_text_atomically
from ci2p_mm.utils.model_config import bare_model


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, writing through the one atomic writer
    (:func:`~ci2p_mm.utils.io.atomic_output`); mmengine's own writes in
    place, so a kill while saving would leave a truncated checkpoint.

    Registered as mmengine's backend of local paths (``prefixes=''``), so
    every checkpoint that any runner saves into a local folder, and every
    ``mmengine.dump`` there, is written atomically without ``backend_args``."""

    def put(self, obj: bytes, filepath) -> None:
        write_bytes_atomically(str(filepath), obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        write_bytes_atomically(str(filepath), obj.encode(encoding))


register_backend('local', AtomicLocalBackend, force=True, prefixes='')


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook``, safe against kills, plus mid-epoch
    checkpoints.

    * Every file, ``last_checkpoint`` included, goes through the one atomic
      writer (:class:`AtomicLocalBackend`, with any runner, and
      :func:`~ci2p_mm.utils.io.write_text_atomically`): the previous file
      stays whole until the new one is. mmengine writes both in place.
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
                (p for p in glob(osp.join(escape(self.out_dir), 'iter_*.pth'))
                 if re.fullmatch(r'iter_\d+\.pth', osp.basename(p))),
                key=lambda p: int(re.findall(r'\d+', osp.basename(p))[0]))

    def _save(self, runner, filename: str, meta: dict, by_epoch: bool,
              outdated: List[str]) -> str:
        """Write ``filename``, point ``last_checkpoint`` to it, and only then
        delete the ``outdated`` files; return its path."""
        path = self.file_backend.join_path(self.out_dir, filename)
        runner.save_checkpoint(
            self.out_dir,
            filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if is_main_process():
            write_text_atomically(
                osp.join(runner.work_dir, 'last_checkpoint'), path)
            for old in (o for o in outdated if o != path):
                if self.file_backend.isfile(old):
                    self.file_backend.remove(old)
                elif self.file_backend.isdir(old):
                    self.file_backend.rmtree(old)  # deepspeed's checkpoints
        return path

    def _save_checkpoint_with_step(self, runner, step, meta):
        outdated = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                old = self.filename_tmpl.format(self.keep_ckpt_ids.popleft())
                outdated.append(self.file_backend.join_path(self.out_dir, old))
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        if self.by_epoch:  # an epoch checkpoint supersedes mid-epoch files
            outdated += self._mid_epoch_ckpts
            self._mid_epoch_ckpts = []
        self._save(runner, filename, meta, self.by_epoch, outdated)

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None) -> None:
        super().after_train_iter(runner, batch_idx, data_batch, outputs)
        # After the last batch, the epoch checkpoint follows right away.
        if (self.by_epoch and self.iter_interval
                and self.every_n_train_iters(runner, self.iter_interval)
                and batch_idx + 1 < len(runner.train_dataloader)):
            self.save_mid_epoch(runner, batch_idx)

    def save_mid_epoch(self,
                       runner,
                       batch_idx: int,
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
        self._save(runner, filename, dict(epoch=runner.epoch, iter=step),
                   False, self._mid_epoch_ckpts)
        self._mid_epoch_ckpts = [path]
        return path


class NonFiniteLossError(UserError, FloatingPointError):
    """Training stopped on a NaN or infinite loss or weight."""


def non_finite_tensors(named_tensors) -> List[str]:
    """Names of the floating-point tensors holding a NaN or an infinity.

    One fused max-abs reduction over all of them and one sync: cheap
    enough to run after every training iteration."""
    named = [
        (name, t.detach()) for name, t in named_tensors
        if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel()
    ]
    if not named:
        return []
    total = torch.nn.utils.get_total_norm([t for _, t in named],
                                          norm_type=float('inf'))
    if torch.isfinite(total).item():
        return []
    return [name for name, t in named if not torch.isfinite(t).all()]


def non_finite_losses(outputs) -> str:
    """``'loss=nan, loss_cls=inf'``: the losses in a model's ``outputs``
    that are NaN or infinite (tensors averaged); ``''`` when none is."""
    values = {
        key:
        value.detach().float().mean().item() if isinstance(
            value, torch.Tensor) else value
        for key, value in (outputs or {}).items() if 'loss' in key
    }
    return ', '.join(f'{k}={v}' for k, v in values.items()
                     if isinstance(v, (int, float)) and not math.isfinite(v))


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training when a loss, or the weights, go NaN or infinite, before
    any checkpoint of that state is written; say how to continue.

    * After each iteration (before the checkpoint hook): the losses, then
      every trainable weight (a single fused reduction).
    * Before a checkpoint is written (epoch end, before validation and
      ``best_*.pth``; every ``save_checkpoint``): the weights, and the loss
      they give on the last training batch (one forward pass, eval mode,
      no gradients, no random numbers drawn). An update with a huge
      learning rate can leave finite but useless weights whose next
      forward pass overflows: a checkpoint of those would make
      ``--resume`` diverge again.

    The message gives the command that continues from the last checkpoint
    with a lower learning rate: ``--resume`` applies the config's learning
    rate (:meth:`CI2PRunner.resume <ci2p_mm.engine.CI2PRunner.resume>`).
    """

    priority = 'ABOVE_NORMAL'

    _last_batch = None
    _probed_iter = None

    def before_train(self, runner) -> None:
        self._last_batch, self._probed_iter = None, None

    @staticmethod
    def _where(runner, batch_idx: int) -> str:
        return (f'iteration {runner.iter + 1} (epoch {runner.epoch + 1}, '
                f'batch {batch_idx + 1} of {len(runner.train_dataloader)})')

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None) -> None:
        self._last_batch = data_batch
        values = non_finite_losses(outputs)
        if values:
            raise NonFiniteLossError(
                f'Non-finite loss at {self._where(runner, batch_idx)}: '
                f'{values}. {self.advice(runner)}')
        weights = non_finite_tensors(
            (n, p) for n, p in bare_model(runner.model).named_parameters()
            if p.requires_grad)
        if weights:
            raise NonFiniteLossError(
                f'Non-finite weights after the update of '
                f'{self._where(runner, batch_idx)}: {listing(weights, 4)} '
                f'hold NaN or inf (the loss before it was finite). '
                f'{self.advice(runner)}')

    def after_train_epoch(self, runner) -> None:
        # Before the checkpoint hook saves epoch_N.pth and before
        # validation (which may save best_*.pth after deleting the
        # previous best).
        self._probe(runner, 'the end of epoch {}'.format(runner.epoch + 1))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        weights = non_finite_tensors((checkpoint.get('state_dict')
                                      or {}).items())
        if weights:
            raise NonFiniteLossError(
                f'Refusing to save a checkpoint at iteration {runner.iter} '
                f'(epoch {runner.epoch + 1}): its weights '
                f'{listing(weights, 4)} hold NaN or inf. {self.advice(runner)}'
            )
        self._probe(runner, f'a checkpoint save (iteration {runner.iter})')

    def _probe(self, runner, when: str) -> None:
        """Raise unless the current weights give a finite loss on the last
        training batch (once per iteration)."""
        if self._last_batch is None or self._probed_iter == runner.iter:
            return
        self._probed_iter = runner.iter
        model = bare_model(runner.model)
        training = model.training
        model.eval()  # no dropout, BatchNorm statistics untouched
        try:
            with torch.no_grad():
                data = model.data_preprocessor(self._last_batch, False)
                outputs = model(**data, mode='loss')
        except Exception as err:  # a model whose loss needs training mode
            runner.logger.warning(
                f'NonFiniteLossHook could not compute the loss of the last '
                f'batch in eval mode ({type(err).__name__}: {err}); the '
                f'checkpoint is saved with its weights checked only.')
            return
        finally:
            model.train(training)
        values = non_finite_losses(outputs)
        if values:
            raise NonFiniteLossError(
                f'Non-finite loss at {when}: the weights now give {values} '
                f'on the last training batch (the last update diverged; the '
                f'loss before it was finite). {self.advice(runner)}')

    @staticmethod
    def advice(runner) -> str:
        """What was (not) saved, and the command that continues."""
        last = runner.message_hub.get_info('last_ckpt')
        kept = (f'the last one, {last}, is from before it' if last else
                'there is none yet, so --resume starts from the beginning')
        cfg = getattr(runner, 'cfg', None) or {}
        optimizer = (cfg.get('optim_wrapper') or {}).get('optimizer') or {}
        lr = optimizer.get('lr')
        config = getattr(cfg, 'filename', None) or 'CONFIG'
        lower = raised = ''
        if isinstance(lr, (int, float)):
            # An lr of inf, NaN or 0 has no tenth worth trying: the paper's.
            finite = math.isfinite(lr) and lr > 0
            lower = (f' --cfg-options optim_wrapper.optimizer.lr='
                     f'{lr / 10 if finite else 1e-4:g}')
            get_lr = getattr(
                getattr(runner, 'optim_wrapper', None), 'get_lr', dict)
            now = [v for vs in get_lr().values() for v in vs]
            if now and not max(now) <= 10 * lr:
                raised = (f'; the param_scheduler raised the learning rate '
                          f'to {max(now):g}: fix it, or drop it with '
                          f'param_scheduler=[] in --cfg-options')
        return (f'Training stopped; no checkpoint of this state was saved '
                f'({kept}). Usual causes: a learning rate too high, fp16 '
                f'overflow with --amp, or bad input data. To continue from '
                f'the last checkpoint with a lower learning rate (--resume '
                f'then uses the config\'s learning rate instead of the '
                f'checkpoint\'s, and says so), run: python tools/train.py '
                f'{config} --work-dir {runner.work_dir} --resume{lower} '
                f'(with your other options{raised}; or clip gradients: '
                f'optim_wrapper.clip_grad=dict(max_norm=1.0)).')


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

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None) -> None:
        samples = data_batch.get('data_samples') if isinstance(
            data_batch, dict) else None
        for sample in samples or []:
            self._files += getattr(sample, 'metainfo',
                                   {}).get('skipped_bad_images') or []

    def after_train_epoch(self, runner) -> None:
        files = getattr(self, '_files', [])
        count = torch.tensor(float(len(files)))
        all_reduce(count)
        count = int(count.item())
        hub = runner.message_hub
        total = int(hub.get_info('skipped_bad_images', 0)) + count
        hub.update_info('skipped_bad_images', total)
        if not (count or getattr(runner.train_dataloader.dataset,
                                 'skip_bad_images', False)):
            return
        unique = sorted(set(files))
        named = f': {listing(unique, 20)}' if unique else ''
        runner.logger.log(
            logging.WARNING if count else logging.INFO,
            f'Epoch {runner.epoch + 1}: skipped {count} bad image(s) '
            f'(skip_bad_images=True; {total} so far), each replaced by the '
            f'next readable sample{named}')
