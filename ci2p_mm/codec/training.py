"""Train or fine-tune a CompressAI zoo codec for CI2P's patch embedding
(``tools/train_codec.py``; docs/codec.md is the user's guide).

The codec is trained for rate-distortion on an image folder as
CompressAI's ``examples/train.py`` does (:mod:`ci2p_mm.codec.model`), by
the project's runner (``CI2PRunner``): atomic checkpoints, exact resume
(also after SIGKILL), SIGTERM stop, the work-dir lock, a stop on a
non-finite loss. The presets are configs (``configs/codec/``); options
given on the command line override their ``codec_recipe``. The run leaves
mmengine's files in ``--work-dir`` and ``codec_final.pth``, CompressAI's
checkpoint format after ``update()`` (:func:`save_final`), which
``CI2PPatchEmbed(pretrained=PATH)`` and CompressAI's model classes load.
"""
import argparse
import math
import os
import os.path as osp
from typing import List, Optional

import numpy as np
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.hooks import Hook
from mmengine.registry import RUNNERS
from mmpretrain.registry import HOOKS

from ci2p_mm.utils.cli import torch_device
from ci2p_mm.utils.errors import UserError
from ci2p_mm.utils.image_files import image_size, split_images
from ci2p_mm.utils.io import find_resumable_checkpoint, save_atomic
from ci2p_mm.utils.model_config import bare_model, read_config
from ci2p_mm.utils.package_files import configs_root
from . import metric  # noqa: F401  (registers RateDistortionMetric)
from .model import data_init, final_record
from .zoo import (CodecWeightsError, canonical_codec_name, check_supported,
                  codec_args, read_checkpoint)

#: Lambdas of CompressAI's zoo models, by quality (CompressAI's zoo docs;
#: the MSE list is also ``compressai.models.vbr.ScaleHyperpriorVbr.lmbda``).
ZOO_LAMBDAS = {
    'mse': (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800),
    'ms-ssim': (2.40, 4.58, 8.73, 16.64, 31.73, 60.50, 115.37, 220.00),
}
FINAL = 'codec_final.pth'


class CodecTrainingError(UserError, ValueError):
    """A problem with the data or options, explained in one line."""


@HOOKS.register_module()
class CodecTrainingHook(Hook):
    """Validation every ``val_interval`` iterations, ``--data-init``, and
    the codec recorded in every checkpoint.

    Validation runs before iterations ``0, val_interval, ...`` (the first is
    the baseline the training improves on) and at the end, before the last
    checkpoint. The last one is kept in the message hub (``codec_val``,
    saved in checkpoints), so a resumed run does not repeat it.

    Args:
        val_interval (int): Iterations between validations.
        data_init (bool): :func:`~ci2p_mm.codec.model.data_init` on a batch
            of training crops before a new run. Defaults to False.
    """

    def __init__(self, val_interval: int, data_init: bool = False):
        self.val_interval, self.data_init = val_interval, data_init

    def before_train(self, runner) -> None:
        if self.data_init and runner.iter == 0:
            dataset = runner.train_dataloader.dataset
            model = bare_model(runner.model)
            batch = pseudo_collate(
                [dataset[i] for i in range(min(32, len(dataset)))])
            x = model.data_preprocessor(batch, False)['inputs']
            runner.logger.info(data_init(model.codec, x))

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if runner.iter % self.val_interval == 0:
            self._validate(runner)

    def after_train_epoch(self, runner) -> None:
        self._validate(runner)

    def _validate(self, runner) -> None:
        last = runner.message_hub.get_info('codec_val') or {}
        if runner.val_loop is None or last.get('iter') == runner.iter:
            return
        metrics = runner.val_loop.run()  # keys codec/loss, ...
        runner.model.train()
        last = {k.split('/')[-1]: v for k, v in metrics.items()}
        runner.message_hub.update_info('codec_val',
                                       dict(last, iter=runner.iter))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        model = bare_model(runner.model)
        checkpoint['meta']['codec'] = [model.codec_name, model.quality]

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Refuse a checkpoint of another codec; a finished run given more
        ``--iters`` continues its pass (the position is the iteration)."""
        meta, model = checkpoint.get('meta') or {}, bare_model(runner.model)
        saved = tuple(meta.get('codec') or (model.codec_name, model.quality))
        if saved != (model.codec_name, model.quality):
            raise CodecTrainingError(
                f'The checkpoint trains {saved[0]!r} quality {saved[1]}, not '
                f'{model.codec_name!r} quality {model.quality}: pass the same '
                f'--codec and --quality to resume.')
        if 'iter' in meta:
            meta['epoch'] = int(meta['iter'] >= runner.max_iters)


#: The presets (configs/codec/), by (--quick, --finetune or --init).
PRESETS = {
    (False, False):
    'bmshj2018-factorized_1xb16-adam-100e_images-256px',
    (True, False):
    'bmshj2018-factorized_1xb8-adam-400it-quick_images-64px',
    (False, True):
    'bmshj2018-factorized_1xb16-adam-100e-finetune_images-256px',
    (True, True):
    'bmshj2018-factorized_1xb8-adam-400it-quick-finetune_images-64px',
}


def preset(args) -> str:
    """The preset config for ``--quick`` and ``--finetune``/``--init``."""
    name = PRESETS[args.quick, bool(args.finetune or args.init)]
    return osp.join(configs_root(), 'codec', f'{name}.py')


def parse_args(argv=None) -> argparse.Namespace:
    """The options (docs/codec.md explains each); those without a default
    take the preset's ``codec_recipe``."""
    parser = argparse.ArgumentParser(
        description="Train or fine-tune a CompressAI zoo codec whose g_a "
        "becomes CI2P's patch embedding. Options without a default take the "
        "preset's (configs/codec/: CompressAI's recipe; --quick; "
        '--finetune or --init); docs/codec.md explains each.')
    add = parser.add_argument
    add('image_dir', help='training images (searched recursively)')
    add('--work-dir', required=True, help='checkpoints, logs, final codec')
    add('--codec', default='bmshj2018-factorized', help='CompressAI zoo name')
    add('--quality', type=int, default=5, help='zoo quality (default 5)')
    add('--metric', default='mse', choices=['mse', 'ms-ssim'])
    add('--lambda', dest='lmbda', type=float, help="default: the zoo's")
    add('--patch-size', type=int, help='square crops, a multiple of 16')
    add('--batch-size', type=int)
    length = parser.add_mutually_exclusive_group()
    length.add_argument('--iters', type=int, help='in all, counting resumed')
    length.add_argument('--epochs', type=float, help='passes over the images')
    add('--lr', type=float, help='Adam lr of the network')
    add('--aux-lr', type=float, help='Adam lr of the quantiles (aux loss)')
    add('--lr-schedule', choices=['plateau', 'cosine', 'constant'])
    add('--warmup-iters', type=int, help='linear lr warmup')
    add('--lr-patience', type=int, default=10, help='plateau (default 10)')
    add('--clip-max-norm', type=float, default=1.0, help='0: off (default 1)')
    val = parser.add_mutually_exclusive_group()
    val.add_argument('--val-dir', help='default: a --val-ratio share')
    val.add_argument('--val-ratio', type=float, default=0.1)
    add('--val-interval', type=int, help='and checkpoint (default: epoch)')
    add('--log-interval', type=int, default=10)
    add('--resume', nargs='?', const='auto', help="default: work dir's last")
    start = parser.add_mutually_exclusive_group()
    start.add_argument('--finetune', action='store_true', help='zoo weights')
    start.add_argument('--init', metavar='PATH', help='a codec checkpoint')
    add('--data-init', action=argparse.BooleanOptionalAction)
    add('--quick', action='store_true', help='a small codec, CPU minutes')
    add('--seed', type=int, default=0)
    add('--num-workers', type=int, help='data loading processes')
    add('--device',
        type=torch_device,
        help="cuda, cuda:1, cpu (default: mmengine's)")
    add('--no-progress', action='store_true', help='no effect: log lines')
    args = parser.parse_args(argv)

    args.cfg = read_config(preset(args))  # build_config fills it in
    recipe = args.cfg.codec_recipe
    if args.iters is None and args.epochs is None:
        args.iters = recipe.iters
        args.epochs = None if recipe.iters else recipe.epochs
    if args.num_workers is None:
        args.num_workers = min(recipe.num_workers, os.cpu_count() or 1)
    for key, value in recipe.items():
        if getattr(args, key) is None and key != 'epochs':
            setattr(args, key, value)
    return args


def check_args(args) -> None:
    args.codec = canonical_codec_name(args.codec)
    codec_args(args.codec, args.quality)  # or CodecSettingError, one line
    if args.lmbda is None:
        if not 1 <= args.quality <= len(ZOO_LAMBDAS[args.metric]):
            raise CodecTrainingError(
                f'No zoo lambda for quality {args.quality}; pass --lambda.')
        args.lmbda = ZOO_LAMBDAS[args.metric][args.quality - 1]
    if args.data_init and (args.finetune or args.init):
        raise CodecTrainingError(
            '--data-init is for codecs trained from scratch; it would '
            'rescale the weights given by --finetune/--init.')
    if args.patch_size < 16 or args.patch_size % 16:
        raise CodecTrainingError(
            f'--patch-size must be a multiple of 16 (the codec downsamples '
            f'by 16); got {args.patch_size}.')
    if args.metric == 'ms-ssim' and args.patch_size <= 160:
        raise CodecTrainingError(
            'MS-SSIM needs crops larger than 160 px (4 downsamplings of an '
            '11-px window); use --patch-size 176 or more, or --metric mse.')
    # Refused here, in one line, rather than by the DataLoader, Adam or a
    # scheduler (a traceback), or not at all (a negative --lr-patience).
    positive = ('batch_size', 'iters', 'val_interval', 'log_interval',
                'epochs', 'lr', 'aux_lr', 'lmbda')
    at_least_0 = ('warmup_iters', 'lr_patience', 'num_workers',
                  'clip_max_norm')
    for name in positive + at_least_0:
        value = getattr(args, name)
        if value is None:
            continue
        if not (value > 0 if name in positive else value >= 0):  # or NaN
            flag = '--lambda' if name == 'lmbda' else '--' + name.replace(
                '_', '-')
            rule = 'positive' if name in positive else '0 or more'
            raise CodecTrainingError(f'{flag} must be {rule}; got {value}.')
    if args.val_dir is None and not 0 <= args.val_ratio < 1:
        raise CodecTrainingError(
            f'--val-ratio must be at least 0 (0: no validation) and below '
            f'1; got {args.val_ratio}.')


def check_resume(args) -> None:
    """``--resume`` has a checkpoint of a codec run to continue."""
    if args.resume == 'auto':
        # The runner's own choice (CI2PRunner.from_cfg): without a usable
        # pointer, the newest complete *.pth, as for a classifier run.
        if find_resumable_checkpoint(args.work_dir) is None:
            raise CodecTrainingError(
                f'--resume: {args.work_dir} has no last_checkpoint and no '
                f'complete *.pth (nothing to resume; drop --resume to start '
                f'a new run).')
        return
    ckpt = read_checkpoint(args.resume)
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    if not isinstance(meta, dict) or 'iter' not in meta:
        raise CodecTrainingError(
            f'{args.resume} is not a checkpoint of a codec run (no training '
            f'state): start from its weights with --init {args.resume} '
            f'instead of --resume.')


def lr_schedulers(args, total: int) -> List[dict]:
    """mmengine's schedulers for ``--warmup-iters`` and ``--lr-schedule``."""
    warmup = min(args.warmup_iters, total)
    schedulers = [
        dict(
            type='LinearLR',
            start_factor=1 / warmup,
            by_epoch=False,
            end=warmup)  # from iteration 0
    ] if warmup else []
    if args.lr_schedule == 'plateau':
        schedulers.append(
            dict(
                type='ReduceOnPlateauLR',
                monitor='codec/loss',
                factor=0.5,
                patience=args.lr_patience))
    elif args.lr_schedule == 'cosine' and total > warmup:
        schedulers.append(
            dict(
                type='CosineAnnealingLR',
                eta_min_ratio=0.01,
                by_epoch=False,
                begin=warmup,
                end=total))
    return schedulers


def build_config(args, n_train: int, n_val: int) -> Config:
    """The runner's config: the preset (read by :func:`parse_args`),
    filled in from ``args``."""
    cfg = args.cfg
    batch, total = args.batch_size, run_length(args, n_train)
    cfg.work_dir, cfg.randomness.seed = args.work_dir, args.seed
    cfg.model.update(
        codec=args.codec,
        quality=args.quality,
        metric=args.metric,
        lmbda=args.lmbda,
        pretrained=False
        if args.resume else args.finetune or args.init or False)
    data = dict(
        image_dir=args.image_dir,
        val_dir=args.val_dir,
        val_ratio=args.val_ratio,
        seed=args.seed)
    for split, samples in (('train', total * batch), ('val', None)):
        loader = cfg[f'{split}_dataloader']
        loader.update(
            batch_size=batch,
            num_workers=args.num_workers,
            persistent_workers=args.num_workers > 0)
        loader.dataset.update(data, num_samples=samples)
        loader.dataset.pipeline[1].crop_size = args.patch_size
    if not n_val:
        cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.optim_wrapper.net.optimizer.lr = args.lr
    cfg.optim_wrapper.aux.optimizer.lr = args.aux_lr
    cfg.optim_wrapper.net.clip_grad = dict(
        max_norm=args.clip_max_norm) if args.clip_max_norm > 0 else None
    cfg.param_scheduler.net = lr_schedulers(args, total)
    val_interval = args.val_interval or math.ceil(n_train / batch)
    cfg.default_hooks.logger.interval = args.log_interval
    cfg.log_processor.window_size = args.log_interval
    cfg.default_hooks.checkpoint.iter_interval = val_interval
    for hook in cfg.custom_hooks:
        if hook.type == 'CodecTrainingHook':
            hook.update(val_interval=val_interval, data_init=args.data_init)
    cfg.resume = bool(args.resume)
    cfg.load_from = None if args.resume in (None, 'auto') else args.resume
    return cfg


def run_length(args, n_train: int) -> int:
    """Iterations in all: ``--iters``, or ``--epochs`` passes."""
    return args.iters or math.ceil(args.epochs * n_train / args.batch_size)


def describe(args, train_files: List[str], n_val: int) -> None:
    """Say what will be trained, on what, and anything unusual."""
    total = run_length(args, len(train_files))
    start = ('fine-tuning CompressAI weights' if args.finetune else
             f'init {args.init}' if args.init else 'from scratch')
    print(
        f'Codec {args.codec} quality {args.quality} (N, M = '
        f'{codec_args(args.codec, args.quality)}), {args.metric} lambda '
        f'{args.lmbda}, {start}.\n{len(train_files)} training / {n_val} '
        f'validation images, {args.patch_size}px crops, batch '
        f'{args.batch_size}, {total} iterations '
        f'({total * args.batch_size / len(train_files):.1f} epochs).',
        flush=True)
    try:
        check_supported(args.codec, args.quality)
    except ValueError as err:
        print(f'Note: CI2P cannot use this codec as its patch embedding: '
              f'{err}')
    probe = train_files[::max(1, len(train_files) // 200)]  # <= ~200
    small = sum(1 for f in probe if min(image_size(f)) < args.patch_size)
    if small:
        print(f'Note: {small} of {len(probe)} training images checked are '
              f'smaller than {args.patch_size}px; such images are '
              f'reflection-padded to the patch size.')


def save_final(runner, args, n_train: int) -> str:
    """``codec_final.pth``: CompressAI's format
    (:func:`~ci2p_mm.codec.model.final_record`) and how it was trained."""
    hub = runner.message_hub
    train = {
        key[len('train/'):]:
        float(hub.get_scalar(key).mean(args.log_interval))
        for key in hub.log_scalars if key.startswith('train/')
    }
    times = hub.log_scalars.get('train/time')
    final = dict(
        final_record(bare_model(runner.model)),
        iter=runner.iter,
        epoch=runner.iter * args.batch_size / n_train,
        patch_size=args.patch_size,
        train_time_s=float(np.sum(times.data[0])) if times else 0.0,
        train=train or None,
        val=hub.get_info('codec_val'))
    path = osp.join(args.work_dir, FINAL)
    save_atomic(final, path)
    last = final['val'] or final['train']
    print(f'Saved {path} after {runner.iter} iterations: loss '
          f'{last["loss"]:.4f}, bpp {last["bpp"]:.4f}, PSNR {last["psnr"]:.2f}'
          f' dB ({"validation" if final["val"] else "training"}). Use it with'
          f' CI2PPatchEmbed(pretrained={path!r}, codec={args.codec!r}, '
          f'quality={args.quality}).')
    return path


def train(args) -> Optional[str]:
    """Run the training ``args`` describe; return codec_final.pth, or None
    when a signal stopped the run (``args.stopped_by``; ``--resume``
    continues it)."""
    check_args(args)
    if args.resume:
        check_resume(args)
    train_files, val_files = split_images(args.image_dir, args.val_dir,
                                          args.val_ratio, args.seed)
    cfg = build_config(args, len(train_files), len(val_files))
    describe(args, train_files, len(val_files))
    runner = RUNNERS.build(cfg)
    if args.device:  # mmengine placed it on its default device
        runner.model.to(args.device)
    try:
        runner.train()
    except FloatingPointError as err:  # NonFiniteLossHook: our advice
        last = runner.message_hub.get_info('last_ckpt')
        then = f'continue from {last} with --resume' if last else 'start again'
        raise CodecTrainingError(
            f'{str(err).split(" Training stopped;")[0]} Training stopped; '
            f'nothing of this state was saved. Lower --lr (now {args.lr:g}) '
            f'and {then}, or keep --clip-max-norm.') from err
    except CodecWeightsError as err:
        if not args.finetune:
            raise
        raise CodecWeightsError(f'{err} With the file at hand, --init '
                                f'/path/to/it starts from it too.') from err
    args.stopped_by = getattr(runner, 'stopped_by', None)
    return None if args.stopped_by else save_final(runner, args,
                                                   len(train_files))


def main(argv=None) -> int:
    """``tools/train_codec.py``: parse ``argv`` and train; exit 128 + the
    signal when one stopped the run."""
    args = parse_args(argv)
    train(args)
    return 128 + args.stopped_by if args.stopped_by else 0
