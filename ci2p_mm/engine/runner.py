"""``CI2PRunner``: mmengine's Runner with safe checkpoints and exact resume.

What it changes, for every entry point (``tools/train.py``,
``tools/test.py``, ``load_from``, ``--resume``, ``init_cfg=Pretrained``):

* Loading: files are read with torch's safe loading, and every failure
  names the file (missing, empty, truncated, not a checkpoint, objects that
  safe loading refuses). Before anything is loaded, the weights must fit
  the model exactly (no missing, extra or differently shaped keys, after
  the model's own adaptations such as resizing ``pos_embed``), and a CI2P
  checkpoint's codec and quality must be the model's. mmengine would load
  with ``strict=False`` and only warn, so a test on a checkpoint of another
  architecture would silently evaluate a half-random model.
* Saving: every local checkpoint goes through the one atomic writer
  (:func:`~ci2p_mm.utils.io.atomic_output`, by way of mmengine's file
  backend :class:`~ci2p_mm.engine.hooks.AtomicLocalBackend`), so a kill
  while saving leaves the previous file intact, never a truncated one.
  Checkpoints also record the random number generators' states and the
  CI2P codecs.
* Resuming: ``--resume`` without a file takes ``last_checkpoint``, or, when
  that is missing, unreadable or incomplete, the newest complete checkpoint
  in the work dir (resolved in :meth:`CI2PRunner.from_cfg`). Epoch-based
  training resumes in the middle of an epoch where the checkpoint was saved
  (see ``SafeCheckpointHook(iter_interval=...)``), with the data order and
  random state of an uninterrupted run.

Exact resume needs, besides this runner: ``randomness=dict(seed=S)``
(``deterministic=True`` on GPUs), the ``ResumableSampler`` (the configs'
default; any ``num_workers``, persistent or not), and the same number of
processes and batch size as before. With mmengine's ``DefaultSampler`` the
order is still exact but random augmentation is only reproduced with
``num_workers=0``.
"""
import contextlib
import copy
import math
import os.path as osp
import random
import signal
from typing import Optional

import numpy as np
import torch
from mmengine.device import get_device
from mmengine.dist import (all_reduce, broadcast_object_list, is_distributed,
                           is_main_process, master_only)
from mmengine.model import BaseTTAModel
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.runner import EpochBasedTrainLoop, Runner
from mmpretrain.registry import LOOPS, RUNNERS
from torch.utils.data import BatchSampler, DataLoader

from ci2p_mm.latents import build_device_latent_loader, resident_options
from ci2p_mm.models.utils import codec_fetch_deferred, load_pending_codecs
from ci2p_mm.utils.config_text import read_config_text
from ci2p_mm.utils.errors import ConfigError, UserError, listing
from ci2p_mm.utils.io import (OutputError, check_writable_dir,
                              find_resumable_checkpoint)
from ci2p_mm.utils.locks import ProcessLock
from ci2p_mm.utils.model_config import bare_model
from .checkpoint import (CheckpointError, describe_model_config,
                         load_checked_checkpoint, model_codecs,
                         read_checkpoint_file)
from .hooks import SafeCheckpointHook
from .stop_signals import StopSignals

# ---- random number generator states -------------------------------------


def get_rng_state() -> dict:
    """Python's, NumPy's and torch's generator states (NumPy's array is
    allow-listed for ``weights_only=True``, see :mod:`.checkpoint`)."""
    state = dict(
        python=random.getstate(),
        numpy=np.random.get_state(),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state['python'])
    np_state = state['numpy']
    if isinstance(np_state, dict):  # checkpoints of CI2P-MM before 2026-05
        np_state = (np_state['kind'],
                    np_state['keys'].numpy().astype(np.uint32),
                    np_state['pos'], np_state['has_gauss'], np_state['gauss'])
    np.random.set_state(np_state)
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


# ---- the loop -----------------------------------------------------------


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` that resumes in the middle of an epoch.

    mmengine's loop restarts a resumed epoch from its first batch, so a
    checkpoint saved mid-epoch would train on part of the epoch twice. This
    loop continues with the batch after the checkpoint: with a
    :class:`~ci2p_mm.datasets.ResumableSampler` it skips the done part in
    the sampler (no data is loaded), otherwise it loads and discards those
    batches. Then it restores the random states saved with the checkpoint,
    right before the first new iteration. A stop inside an epoch (a signal,
    see :class:`CI2PRunner`) skips that epoch's validation.
    """

    #: Set by :class:`CI2PRunner` when resuming.
    resume_rng_state: Optional[dict] = None

    def run_epoch(self) -> None:
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        per_epoch = len(self.dataloader)
        done = self._iter - self._epoch * per_epoch
        if not 0 <= done <= per_epoch:
            self.runner.logger.warning(
                f'Resumed at iteration {self._iter} of epoch '
                f'{self._epoch + 1}, which does not match {per_epoch} '
                f'iterations per epoch (another batch size or number of '
                f'processes?); restarting the epoch from its first batch.')
            done = 0
        batches = self._start_epoch(done)
        if self.resume_rng_state is not None:
            set_rng_state(self.resume_rng_state)
            self.resume_rng_state = None
        stop_requested = getattr(self.runner, 'stop_requested', None)
        for idx, data_batch in enumerate(batches, start=done):
            self.run_iter(idx, data_batch)
            if stop_requested is not None and stop_requested():
                self.runner.stop_after(idx)
                # mmengine's run() validates once run_epoch returns; an
                # epoch cut short is not one to validate.
                self.stop_training, self.val_begin = True, math.inf
                return
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

    def _start_epoch(self, done: int):
        if done == 0:
            return iter(self.dataloader)
        sampler = self.dataloader.sampler
        batch_sampler = self.dataloader.batch_sampler
        epoch = self._epoch + 1
        if (hasattr(sampler, 'skip') and type(batch_sampler) is BatchSampler
                and batch_sampler.sampler is sampler):
            sampler.skip(done * batch_sampler.batch_size)
            self.runner.logger.info(
                f'Resuming inside epoch {epoch}: its first {done} batches '
                f'were trained before the checkpoint; continuing with batch '
                f'{done + 1}.')
            return iter(self.dataloader)
        self.runner.logger.info(
            f'Resuming inside epoch {epoch}: loading and discarding its '
            f'first {done} batches (the sampler cannot skip; use '
            f'ResumableSampler to skip without loading).')
        batches = iter(self.dataloader)
        for _ in range(done):
            next(batches)
        return batches


# ---- the runner ---------------------------------------------------------


@RUNNERS.register_module()
class CI2PRunner(Runner):
    """mmengine's Runner, with checked loading, atomic saving and exact
    resume (see this module's docstring).

    It changes mmengine's public methods only, but for one private one:
    ``_maybe_compile`` (no public hook chooses what ``cfg.compile``
    compiles; see there).
    """

    @classmethod
    def from_cfg(cls, cfg) -> 'CI2PRunner':
        """mmengine's ``from_cfg``; ``resume=True`` without ``load_from``
        takes :func:`find_resumable_checkpoint`'s file (mmengine's would
        follow ``last_checkpoint`` blindly), or starts afresh when the work
        dir has none. A work dir that cannot be written (a read-only file
        system) is refused in one line."""
        check_writable_dir(cfg.work_dir, 'Work dir')
        notes, auto = [], cfg.get('resume') and cfg.get('load_from') is None
        if auto:
            cfg = copy.deepcopy(cfg)
            cfg.load_from = find_resumable_checkpoint(
                osp.abspath(cfg.work_dir), notes)
            cfg.resume = cfg.load_from is not None
        runner = super().from_cfg(cfg)
        for note in notes:
            runner.logger.warning(note)
        if auto:
            runner.logger.info(
                f'Auto-resuming from {cfg.load_from}.' if cfg.resume else
                f'--resume: no checkpoint in {cfg.work_dir} yet; starting '
                f'from the beginning.')
        return runner

    # -- building --
    @staticmethod
    def build_dataloader(dataloader, seed=None, diff_rank_seed=False):
        """mmengine's DataLoader, with a generator of its own; or, for a
        latent config with ``device_resident=True``, a
        :class:`~ci2p_mm.latents.DeviceLatentLoader` (the store in device
        memory, same sampler and batches)."""
        if isinstance(dataloader, dict) and 'device_resident' in dataloader:
            dataloader = copy.copy(dataloader)
            options = resident_options(dataloader.pop('device_resident'))
            if options is not None:
                return build_device_latent_loader(
                    dataloader,
                    get_device(),
                    seed=seed,
                    diff_rank_seed=diff_rank_seed,
                    **options)
        loader = Runner.build_dataloader(
            dataloader, seed=seed, diff_rank_seed=diff_rank_seed)
        if isinstance(loader, DataLoader) and loader.generator is None:
            # Each new iterator draws a base seed; from the global
            # generator, that would shift dropout etc. by one draw per
            # epoch and validation, which a resumed run cannot replay.
            loader.generator = torch.Generator().manual_seed(
                0 if seed is None else int(seed))
        StopSignals.keep_in_workers(loader)
        return loader

    def build_train_loop(self, loop):
        """mmengine's, with :class:`ResumableEpochBasedTrainLoop` for
        epoch-based training and ``max_epochs``/``max_iters`` checked
        (mmengine trains nothing at -1 or 0 and exits as if done), and
        ``val_interval`` (0 divided by zero after the first epoch)."""
        if isinstance(loop, dict):
            loop = copy.deepcopy(loop)
            for key in ('max_epochs', 'max_iters', 'val_interval'):
                value = loop.get(key, 1)
                if isinstance(value, bool) or not isinstance(
                        value, (int, float)) or value < 1 or value % 1:
                    raise ConfigError(
                        f'train_cfg.{key}={value!r}: must be a whole number '
                        f'of at least 1. Set it in the config or with '
                        f'--cfg-options train_cfg.{key}=N.')
            kind = loop.get('type', loop.get('by_epoch'))
            if kind in (True, 'EpochBasedTrainLoop', EpochBasedTrainLoop):
                loop.pop('by_epoch', None)
                loop['type'] = ResumableEpochBasedTrainLoop
        return super().build_train_loop(loop)

    def _maybe_compile(self, target: str) -> None:
        """``cfg.compile``: ``nn.Module.compile()`` of the model, not of
        mmengine's ``train_step``.

        A private override, because no public hook chooses what is
        compiled: mmengine compiles ``model.train_step``, so dynamo also
        traces the optimizer wrapper, its AMP context and the loss parsing.
        With ``AmpOptimWrapper`` that trace failed on an H200 with torch
        2.11 inside ``mmengine.runner.amp.autocast`` (``digit_version`` ->
        ``InternalTorchDynamoError``), so ``--amp --compile`` could not
        start. The forward is all the compute there is (AOTAutograd
        compiles its backward with it); ``Module.compile`` keeps the
        state-dict keys (no ``_orig_mod.``), so checkpoints are the same as
        without compiling, and DDP calls the compiled module.
        """
        setting = self.cfg.get('compile', None)
        if setting is None or setting is False:
            return
        if not isinstance(setting, (bool, dict)):
            raise ConfigError(
                f'compile={setting!r}: must be True, False or a dict of '
                f'torch.compile arguments, e.g. dict(backend=\'inductor\').')
        kwargs = {} if setting is True else dict(setting)
        bare_model(self.model).compile(**kwargs)
        self.logger.info(
            f'Model compiled with nn.Module.compile({kwargs or ""}) (for '
            f'{target}); the first iterations will be slow.')

    # -- loading --
    def load_checkpoint(self,
                        filename,
                        map_location='cpu',
                        strict=False,
                        revise_keys=[(r'^module.', '')]):
        checkpoint = read_checkpoint_file(filename, map_location)
        if getattr(self, '_resuming', False):
            meta = checkpoint.get('meta') if isinstance(checkpoint,
                                                        dict) else None
            if not (isinstance(meta, dict) and 'epoch' in meta
                    and 'iter' in meta):
                raise CheckpointError(
                    f'Checkpoint {filename} cannot be resumed from: it holds '
                    f'no training state (no meta epoch/iter; a weights-only '
                    f'or published file?). Start a new run from its weights '
                    f'with load_from={filename} instead of --resume.')
            defuse_legacy_config(meta)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        # The model the weights belong to: inside a TTA wrapper
        # (tools/test.py --tta) that is the wrapped classifier, as
        # mmengine's load_state_dict also loads it.
        model = bare_model(self.model)
        model = model.module if isinstance(model, BaseTTAModel) else model
        checkpoint = load_checked_checkpoint(
            model, checkpoint, filename,
            f'the model of this config ({type(model).__name__} with '
            f'{describe_model_config(self.cfg.get("model") or {})})', strict,
            revise_keys)
        self._loaded_meta = checkpoint.get('meta', {}) or {}
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    def resume(self,
               filename,
               resume_optimizer=True,
               resume_param_scheduler=True,
               map_location='default'):
        """mmengine's ``resume``, except that the config's learning rate
        wins over the checkpoint's (see :func:`apply_configured_lr`): the
        way to continue after a divergence (``NonFiniteLossHook``) is to
        lower ``optim_wrapper.optimizer.lr`` and ``--resume``."""
        # Each parameter group's base learning rate as configured (before
        # schedules: ``initial_lr`` once a scheduler is built, else ``lr``).
        configured = [[
            group.get('initial_lr', group['lr'])
            for group in optimizer.param_groups
        ] for optimizer in _optimizers(self.optim_wrapper)]
        self._resuming = True
        try:
            super().resume(filename, resume_optimizer, resume_param_scheduler,
                           map_location)
        finally:
            self._resuming = False
        if resume_optimizer and configured:
            change = apply_configured_lr(self.optim_wrapper,
                                         self.param_schedulers, configured)
            if change:
                self.logger.warning(
                    f'--resume: the config\'s learning rate differs from '
                    f'that of the checkpoint {filename}: {change}. The '
                    f'resumed run uses the config\'s.')
        sampler = getattr(self.train_dataloader, 'sampler', None)
        if getattr(sampler, 'seed', self.seed) != self.seed:
            # The sampler was built before the checkpoint's seed was known.
            sampler.seed = self.seed
        rng = self._loaded_meta.get('ci2p_rng')
        if isinstance(self.train_loop, ResumableEpochBasedTrainLoop):
            self.train_loop.resume_rng_state = rng
        elif rng is not None:
            set_rng_state(rng)

    def load_or_resume(self) -> None:
        super().load_or_resume()
        # What no checkpoint provided: CompressAI's zoo or the codec file
        # (a download error says what to do, before the first iteration).
        for name in load_pending_codecs(bare_model(self.model)):
            self.logger.info(f'Loaded the codec weights of {name}.')

    # -- training: one run per work dir, clean stop on SIGTERM/SIGINT --
    #: The signal that stopped the last ``train()`` early, or None, and
    #: the checkpoint saved then.
    stopped_by: Optional[int] = None
    _stop_checkpoint: Optional[str] = None

    def train(self) -> torch.nn.Module:
        """Train holding the work dir (:func:`work_dir_lock`); SIGTERM or
        SIGINT stops after the current iteration with a checkpoint that
        ``--resume`` continues exactly (epoch-based loops).

        ``init_cfg=Pretrained`` files are checked against their modules
        as they load (:class:`~.checkpoint.CheckedPretrainedInit`; mmengine
        loads them with ``strict=False``, warning only), and codec weights
        are fetched after ``load_from``/``--resume`` had the chance to
        provide them offline (:meth:`load_or_resume`).
        """
        self.stopped_by = None
        with self._hold_work_dir(), StopSignals() as signals, \
                codec_fetch_deferred():
            # Only a loop that checks the flag may take the signals over.
            if not isinstance(self.train_loop, ResumableEpochBasedTrainLoop):
                signals.restore()
            self._stop_signals = signals
            try:
                model = super().train()
            finally:
                self._stop_signals = None
        if self.stopped_by is not None:
            self.logger.warning(
                f'Stopped by {signal.Signals(self.stopped_by).name} at '
                f'iteration {self.iter} (epoch {self.epoch + 1}); saved '
                f'{self._stop_checkpoint}. Continue with --resume.')
        return model

    @contextlib.contextmanager
    def _hold_work_dir(self):
        """The work dir lock, taken by the main process; every process
        learns whether it was refused, so none waits on the others."""
        with contextlib.ExitStack() as held:
            refused = [None]
            if is_main_process():
                try:
                    held.enter_context(work_dir_lock(self.work_dir))
                except WorkDirBusyError as err:
                    refused = [str(err)]
            broadcast_object_list(refused)
            if refused[0]:
                raise WorkDirBusyError(refused[0])
            yield

    def stop_requested(self) -> bool:
        """Whether a stop signal arrived in any process (all processes
        must stop at the same iteration)."""
        signum = getattr(getattr(self, '_stop_signals', None), 'signum', None)
        if is_distributed():
            flag = torch.tensor(signum or 0)
            all_reduce(flag, op='max')
            signum = int(flag) or None
        if signum is not None:
            self.stopped_by = signum
        return signum is not None

    def stop_after(self, batch_idx: int) -> None:
        """Save where training stopped (called after iteration ``self.iter``
        is complete): ``iter_{i}.pth``, as the ``SafeCheckpointHook``
        writes its mid-epoch files, pointed to by ``last_checkpoint``."""
        step = self.iter
        self.logger.warning(
            f'{signal.Signals(self.stopped_by).name} received: stopping after '
            f'iteration {step} (epoch {self.epoch + 1}, batch '
            f'{batch_idx + 1}/{len(self.train_dataloader)}).')
        hook = next(
            (h for h in self.hooks if isinstance(h, SafeCheckpointHook)), None)
        if hook is None:  # no checkpoint hook configured: one for this file
            hook = SafeCheckpointHook()
            hook.before_train(self)
        self._stop_checkpoint = hook.save_mid_epoch(self, batch_idx, step)

    # -- saving --
    @master_only
    def save_checkpoint(self, out_dir, filename, *args, meta=None, **kwargs):
        """mmengine's, recording the random states and the CI2P codecs
        (local files are written by :class:`~.hooks.AtomicLocalBackend`)."""
        meta = dict(meta or {}, ci2p_rng=get_rng_state())
        meta['ci2p_codecs'] = {
            name: list(codec)
            for name, codec in model_codecs(bare_model(self.model)).items()
        }
        try:
            super().save_checkpoint(
                out_dir, filename, *args, meta=meta, **kwargs)
        except OutputError as err:  # disk full, quota, I/O error, ...
            intact = find_resumable_checkpoint(self.work_dir)
            kept = (f'the previous checkpoint, {intact}, is intact'
                    if intact else 'no earlier checkpoint exists')
            raise CheckpointSaveError(
                f'Could not save checkpoint {filename}: {err} Training '
                f'stopped; {kept}: continue with --resume once it can be '
                f'written.') from err


def work_dir_lock(work_dir: str) -> ProcessLock:
    """``WORK_DIR/train.lock``, held by a training run for its lifetime.

    Two runs writing ``last_checkpoint``, ``epoch_N.pth`` and the mid-epoch
    files of one work dir would resume from and delete each other's
    checkpoints; a second run is refused, naming the first (pid, host,
    start time, command line). A lock left by a killed run never blocks.
    """
    return ProcessLock(
        osp.join(work_dir, 'train.lock'),
        busy=lambda holder:
        (f'Work dir {work_dir} is in use by another training run: '
         f'{holder}. Two runs in one work dir would overwrite and delete '
         f'each other\'s checkpoints. Wait for it to end or stop it, or '
         f'pass another --work-dir.'),
        error=WorkDirBusyError)


class WorkDirBusyError(UserError, RuntimeError):
    """Another live run holds the work dir."""


# ---- the config's learning rate on resume ------------------------------


def _optimizers(optim_wrapper) -> list:
    """The torch optimizers inside an ``OptimWrapper`` or a dict of them."""
    if optim_wrapper is None or isinstance(optim_wrapper, dict):
        return []  # not built (a config dict): nothing to compare yet
    wrappers = (
        optim_wrapper.values()
        if hasattr(optim_wrapper, 'values') else [optim_wrapper])
    return [w.optimizer for w in wrappers if hasattr(w, 'optimizer')]


def apply_configured_lr(optim_wrapper, param_schedulers,
                        configured: list) -> str:
    """After an optimizer state was loaded: the config's learning rates
    (``configured``) replace the checkpoint's. Returns
    ``'0.0001 (checkpoint: 10)'``-style text when something changed, else
    ``''``.

    * An optimizer that a learning-rate scheduler drives: where the saved
      base rate (``initial_lr``) differs, each group's current ``lr`` is
      scaled by configured / saved, and ``initial_lr`` and the schedulers'
      ``base_values`` become the configured ones (the schedule continues
      from the new base).
    * An optimizer that none drives (say its scheduler was dropped from the
      config after a divergence): ``lr`` is the configured one. The saved
      ``lr`` carries the dropped schedule's factor, which no longer applies.
    """
    schedulers = param_schedulers or []
    if isinstance(schedulers, dict):
        schedulers = [s for group in schedulers.values() for s in group]
    # Each learning-rate scheduler: the id of the torch optimizer it drives.
    driven = {
        s: id(getattr(s.optimizer, 'optimizer', s.optimizer))
        for s in schedulers if getattr(s, 'param_name', 0) == 'lr'
    }
    ratios, changes = {}, []
    for optimizer, lrs in zip(_optimizers(optim_wrapper), configured):
        for index, (group, lr) in enumerate(zip(optimizer.param_groups, lrs)):
            if id(optimizer) not in driven.values():
                group.pop('initial_lr', None)
                saved = group['lr']
                if not math.isclose(saved, lr, rel_tol=1e-9):
                    group['lr'] = lr
                    changes.append(f'{lr:g} (checkpoint: {saved:g}; no '
                                   f'learning-rate schedule now)')
                continue
            saved = group.get('initial_lr', group['lr'])
            if math.isclose(saved, lr, rel_tol=1e-9):
                continue
            ratio = lr / saved if saved else 1.0
            group['lr'] = group['lr'] * ratio if saved else lr
            group['initial_lr'] = lr
            ratios[(id(optimizer), index)] = ratio
            changes.append(f'{lr:g} (checkpoint: {saved:g})')
    for scheduler, key in driven.items():
        for attr in ('base_values', '_last_value'):
            values = getattr(scheduler, attr, None)
            if isinstance(values, list):
                setattr(scheduler, attr, [
                    v * ratios.get((key, i), 1.0) for i, v in enumerate(values)
                ])
    return listing(sorted(set(changes)), 3)


def defuse_legacy_config(meta: dict) -> None:
    """mmengine's ``resume`` executes ``meta['config']`` (Python text, in old
    checkpoints) to read ``gpu_ids``; keep only that value, as a literal."""
    if 'config' not in meta:
        return
    gpu_ids = read_config_text(str(meta.pop('config'))).get('gpu_ids')
    if isinstance(gpu_ids,
                  (list, tuple)) and all(type(i) is int for i in gpu_ids):
        meta['config'] = f'gpu_ids = {list(gpu_ids)!r}\n'


class CheckpointSaveError(UserError, OSError):
    """A checkpoint could not be written (disk full, quota, I/O error)."""


# ``runner_type='CI2PRunner'`` is looked up before mmpretrain's scope is
# set (tools and mim call RUNNERS.build(cfg)), so the root knows it too.
if 'CI2PRunner' not in MMENGINE_RUNNERS.module_dict:
    MMENGINE_RUNNERS.register_module(module=CI2PRunner)
