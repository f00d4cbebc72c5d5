"""Train or fine-tune a CompressAI zoo codec for CI2P's patch embedding.

CI2P's patch embedding is the analysis transform ``g_a`` of a learned image
codec. This tool trains that codec for rate-distortion on an image folder,
the way CompressAI's ``examples/train.py`` does, with CompressAI's own
pieces: the zoo model class, ``compressai.losses.RateDistortionLoss``, and
``compressai.optimizers.net_aux_optimizer`` (Adam on the network, a second
Adam on the entropy bottleneck's ``quantiles`` for ``aux_loss()``).

    # from scratch, the zoo's lambda for the quality (q5 MSE: 0.025)
    python tools/train_codec.py data/my_images --work-dir work_dirs/codec
    # fine-tune CompressAI's published weights on your images (online)
    python tools/train_codec.py data/my_images --work-dir work_dirs/codec \
        --finetune --iters 20000
    # a small codec in a minute or two on a free 2-core CPU (the demo's)
    python tools/train_codec.py data/my_images --work-dir work_dirs/codec \
        --quick
    # continue an interrupted run from WORK_DIR/latest.pth
    python tools/train_codec.py data/my_images --work-dir work_dirs/codec \
        --resume

Outputs in ``--work-dir``: ``latest.pth`` (resumable: codec, both
optimizers, the lr scheduler, the iteration, written atomically),
``log.json`` (one JSON object per line: training windows and validations)
and ``codec_final.pth``, CompressAI's format after ``model.update()``::

    {'state_dict': ..., 'codec': 'bmshj2018-factorized', 'quality': 5,
     'metric': 'mse', 'lmbda': 0.025, 'iter': ..., 'val': {...}, ...}

It loads with CompressAI (``FactorizedPrior.from_state_dict(
ckpt['state_dict'])``, ``compressai.utils.eval_model checkpoint ... -a
bmshj2018-factorized -p codec_final.pth``) and with CI2P
(``CI2PPatchEmbed(pretrained='.../codec_final.pth')``).

Images are decoded by ``ci2p_mm.utils.images.load_rgb`` (the training
pipelines' robust Pillow decoding: EXIF orientation, grey/palette/16-bit to
RGB, alpha on white; truncated or non-image files stop the run, naming the
file). Training takes random crops
of ``--patch-size`` (torchvision ``RandomCrop`` + ``ToTensor``); validation
takes center crops. Images smaller than the patch are reflection-padded up
to it (mirrored content, no resampling, so the pixel statistics stay those
of the data).
"""
import argparse
import json
import math
import os
import os.path as osp
import random
import sys
import time
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.losses import RateDistortionLoss
from compressai.optimizers import net_aux_optimizer
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision import transforms
from torchvision.transforms import functional as TF
from tqdm import tqdm

from ci2p_mm.utils.errors import UserError
from ci2p_mm.utils.images import image_size, list_images, load_rgb
from ci2p_mm.utils.io import save_atomic
from .zoo import (CodecWeightsError, build_codec, canonical_codec_name,
                  check_supported, codec_args, load_into_codec,
                  read_checkpoint)

#: Lambdas of CompressAI's zoo models, by quality (CompressAI's zoo docs;
#: the MSE list is also ``compressai.models.vbr.ScaleHyperpriorVbr.lmbda``).
ZOO_LAMBDAS = {
    'mse': {
        1: 0.0018,
        2: 0.0035,
        3: 0.0067,
        4: 0.0130,
        5: 0.0250,
        6: 0.0483,
        7: 0.0932,
        8: 0.1800
    },
    'ms-ssim': {
        1: 2.40,
        2: 4.58,
        3: 8.73,
        4: 16.64,
        5: 31.73,
        6: 60.50,
        7: 115.37,
        8: 220.00
    },
}

LATEST = 'latest.pth'
FINAL = 'codec_final.pth'

#: ``--quick``: a small codec in a minute or two on a free 2-core CPU (see
#: docs/codec.md for what it reaches). Explicit options override these.
QUICK = dict(
    patch_size=64,
    batch_size=8,
    iters=400,
    lr=1e-3,
    aux_lr=1e-2,
    lr_schedule='cosine',
    warmup_iters=30,
    data_init=True,
    val_interval=100,
    num_workers=0)

#: Defaults without ``--quick``: CompressAI's examples/train.py recipe.
DEFAULTS = dict(
    patch_size=256,
    batch_size=16,
    lr=1e-4,
    aux_lr=1e-3,
    lr_schedule='plateau',
    warmup_iters=0,
    data_init=False,
    num_workers=min(4,
                    os.cpu_count() or 1))


class CodecTrainingError(UserError, ValueError):
    """A problem with the data or options, explained in one line."""


# ----------------------------------------------------------------- data ---
def pad_to_min_size(img: Image.Image, size: int) -> Image.Image:
    """Reflection-pad (centered) so both sides are at least ``size``."""
    w, h = img.size
    if w >= size and h >= size:
        return img
    dw, dh = max(size - w, 0), max(size - h, 0)
    return TF.pad(
        img, [dw // 2, dh // 2, dw - dw // 2, dh - dh // 2],
        padding_mode='reflect')


class ImageFiles(Dataset):
    """RGB crops of image files, as ``[3, P, P]`` tensors in [0, 1]."""

    def __init__(self, files: Sequence[str], patch_size: int, train: bool):
        self.files = list(files)
        self.patch_size = patch_size
        crop = (
            transforms.RandomCrop(patch_size)
            if train else transforms.CenterCrop(patch_size))
        self.transform = transforms.Compose([crop, transforms.ToTensor()])

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        img = pad_to_min_size(load_rgb(self.files[index]), self.patch_size)
        return self.transform(img)


class ShuffledStream(Sampler):
    """Shuffled epochs back to back, starting at sample ``start``.

    Epoch ``e`` is the permutation drawn from ``seed + e``, so a resumed run
    sees the same order of images as an uninterrupted one.
    """

    def __init__(self, num_samples: int, seed: int, start: int = 0):
        self.num_samples = num_samples
        self.seed = seed
        self.start = start

    def __iter__(self):
        epoch, offset = divmod(self.start, self.num_samples)
        while True:
            gen = torch.Generator().manual_seed(self.seed + epoch)
            perm = torch.randperm(self.num_samples, generator=gen).tolist()
            yield from perm[offset:]
            offset, epoch = 0, epoch + 1


def split_files(files: List[str], val_files: Optional[List[str]],
                val_ratio: float, seed: int):
    """(train, val): ``val_files`` if given, else a seeded random share."""
    if val_files is not None:
        return files, val_files
    if val_ratio <= 0 or len(files) < 2:
        return files, []
    order = list(files)
    random.Random(seed).shuffle(order)
    n_val = min(len(files) - 1, max(1, round(len(files) * val_ratio)))
    return sorted(order[n_val:]), sorted(order[:n_val])


# -------------------------------------------------------------- metrics ---
def psnr_from_mse(mse: float) -> float:
    return 10 * math.log10(1.0 / mse) if mse > 0 else float('inf')


class Window:
    """Running means of a few scalars."""

    def __init__(self):
        self.sums: Dict[str, float] = {}
        self.count = 0

    def update(self, n: int = 1, **values):
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v) * n
        self.count += n

    def means(self) -> Dict[str, float]:
        return {k: v / max(self.count, 1) for k, v in self.sums.items()}


@torch.no_grad()
def validate(model, loader, criterion, device) -> Dict[str, float]:
    """Average loss, estimated bpp, MSE and per-image PSNR on center crops.

    Eval mode: the entropy model rounds the latent, so ``bpp`` is the
    likelihood estimate of what ``compress()`` would write.
    """
    was_training = model.training
    model.eval()
    window = Window()
    for x in loader:
        x = x.to(device)
        out = model(x)
        losses = criterion(out, x)
        x_hat = out['x_hat'].clamp(0, 1)
        mse_img = (x_hat - x).pow(2).flatten(1).mean(1)
        psnr = sum(psnr_from_mse(m) for m in mse_img.tolist()) / len(x)
        window.update(
            len(x),
            loss=losses['loss'].item(),
            bpp=losses['bpp_loss'].item(),
            mse=losses.get('mse_loss', mse_img.mean()).item(),
            psnr=psnr,
            aux=model.aux_loss().item())
    model.train(was_training)
    return window.means()


@torch.no_grad()
def data_init(model, batch: torch.Tensor, latent_std: float = 1.0) -> str:
    """Data-dependent init of a fresh codec, for short runs.

    At PyTorch's default init ``g_a``'s output has a std of about 0.06,
    far below the std 0.29 of the uniform noise that stands in for
    quantisation: the decoder sees mostly noise until Adam has grown the
    encoder's weights, which takes hundreds of steps. Scaling the last conv
    of ``g_a`` so the latent has ``latent_std`` on ``batch`` skips that
    phase; setting the bias of ``g_s``'s output layer to the batch's mean
    colour starts the reconstruction at the mean instead of black.
    """
    last = list(model.g_a.children())[-1]
    if not isinstance(last, nn.Conv2d):
        return (f'--data-init skipped: g_a ends in {type(last).__name__}, '
                f'not a convolution')
    std = model.g_a(batch).std().item()
    scale = latent_std / max(std, 1e-8)
    last.weight.mul_(scale)
    if last.bias is not None:
        last.bias.mul_(scale)
    note = f'--data-init: latent std {std:.3f} -> {latent_std}'
    out = [
        m for m in model.g_s.modules()
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
    ][-1]
    if out.bias is not None and out.out_channels % 3 == 0:
        # out_channels = 3 * r^2 when a PixelShuffle(r) follows.
        mean = batch.mean((0, 2, 3))
        out.bias.copy_(mean.repeat_interleave(out.out_channels // 3))
        note += ', output bias = mean colour'
    return note


# ------------------------------------------------------------ checkpoint ---
def cpu_state_dict(model) -> Dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


# ------------------------------------------------------------------ args ---
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Train (or fine-tune) a CompressAI zoo codec whose g_a '
        'becomes CI2P\'s patch embedding.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument(
        'image_dir',
        help='folder of training images '
        '(searched recursively)')
    parser.add_argument(
        '--work-dir',
        required=True,
        help='where latest.pth, log.json and '
        'codec_final.pth go')
    parser.add_argument(
        '--codec', default='bmshj2018-factorized', help='CompressAI zoo name')
    parser.add_argument(
        '--quality',
        type=int,
        default=5,
        help='zoo quality: sets N, M and the default lambda')
    parser.add_argument(
        '--metric',
        choices=['mse', 'ms-ssim'],
        default='mse',
        help='distortion of the RD loss')
    parser.add_argument(
        '--lambda',
        dest='lmbda',
        type=float,
        default=None,
        help="rate-distortion trade-off (default: the zoo's lambda for "
        'the quality and metric, e.g. 0.025 for MSE quality 5)')
    parser.add_argument(
        '--patch-size',
        type=int,
        default=None,
        help=f'square crop size (default '
        f'{DEFAULTS["patch_size"]}; multiple of 16)')
    parser.add_argument(
        '--batch-size',
        type=int,
        default=None,
        help=f'default {DEFAULTS["batch_size"]}')
    length = parser.add_mutually_exclusive_group()
    length.add_argument(
        '--iters',
        type=int,
        default=None,
        help='training iterations (total, counting resumed '
        'ones)')
    length.add_argument(
        '--epochs',
        type=float,
        default=None,
        help='training length in passes over the training '
        'images (default 100 when --iters is not given)')
    parser.add_argument(
        '--lr',
        type=float,
        default=None,
        help=f'Adam lr of the network (default '
        f'{DEFAULTS["lr"]})')
    parser.add_argument(
        '--aux-lr',
        type=float,
        default=None,
        help='Adam lr of the entropy bottleneck quantiles '
        f'(default {DEFAULTS["aux_lr"]})')
    parser.add_argument(
        '--lr-schedule',
        choices=['plateau', 'cosine', 'constant'],
        default=None,
        help="plateau: CompressAI's recipe, halve the lr when the validation "
        'loss stops improving (--lr-patience validations); cosine: decay to '
        '1%% over the run (good for short runs). Default plateau')
    parser.add_argument(
        '--warmup-iters',
        type=int,
        default=None,
        help='linear lr warmup (default 0)')
    parser.add_argument(
        '--lr-patience',
        type=int,
        default=10,
        help='validations without improvement before the '
        'plateau schedule halves the lr')
    parser.add_argument(
        '--clip-max-norm',
        type=float,
        default=1.0,
        help='gradient clipping of the network (0: off)')
    val = parser.add_mutually_exclusive_group()
    val.add_argument(
        '--val-dir',
        default=None,
        help='validation images (default: hold out '
        '--val-ratio of IMAGE_DIR)')
    val.add_argument(
        '--val-ratio',
        type=float,
        default=0.1,
        help='share of IMAGE_DIR held out for validation')
    parser.add_argument(
        '--val-interval',
        type=int,
        default=None,
        help='validate (and save latest.pth) every N '
        'iterations (default: once per epoch)')
    parser.add_argument(
        '--log-interval',
        type=int,
        default=10,
        help='write a training window to log.json every N '
        'iterations')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        default=None,
        help='continue from a latest.pth (no value: WORK_DIR/latest.pth)')
    init = parser.add_mutually_exclusive_group()
    init.add_argument(
        '--finetune',
        action='store_true',
        help="start from CompressAI's published weights for "
        'the codec/quality/metric (downloads; cached by '
        'torch.hub)')
    init.add_argument(
        '--init',
        default=None,
        metavar='PATH',
        help='start from a local codec checkpoint')
    parser.add_argument(
        '--data-init',
        action=argparse.BooleanOptionalAction,
        default=None,
        help="from scratch only: scale g_a's last conv so the latent's std "
        "is 1 on a batch of crops (PyTorch's init gives ~0.06, drowned by "
        "the quantisation noise), and set g_s's output bias to the images' "
        'mean colour. Speeds up short runs; default off')
    parser.add_argument(
        '--quick',
        action='store_true',
        help='preset for a small codec in minutes on '
        'a CPU: ' + ', '.join(f'{k}={v}' for k, v in QUICK.items()) +
        ' (explicit options win)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--num-workers',
        type=int,
        default=None,
        help=f'data loading processes (default '
        f'{DEFAULTS["num_workers"]})')
    parser.add_argument(
        '--device',
        default=None,
        help='cuda, cuda:1, cpu, ... (default: cuda if '
        'available)')
    parser.add_argument(
        '--no-progress',
        action='store_true',
        help='no progress bar (validation lines are still '
        'printed)')
    args = parser.parse_args(argv)

    preset = dict(QUICK) if args.quick else {}
    if args.finetune or args.init:
        # Weights that already code images: CompressAI's lr, no re-init.
        for key in ('lr', 'warmup_iters', 'data_init'):
            preset.pop(key, None)
    for key, value in DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, preset.get(key, value))
    if args.iters is None and args.epochs is None:
        if 'iters' in preset:
            args.iters = preset['iters']
        else:
            args.epochs = 100
    if args.val_interval is None and 'val_interval' in preset:
        args.val_interval = preset['val_interval']
    if args.device is None:
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    return args


def check_args(args) -> None:
    args.codec = canonical_codec_name(args.codec)
    try:
        codec_args(args.codec, args.quality)
    except ValueError as err:
        raise CodecTrainingError(str(err)) from err
    if args.lmbda is None:
        zoo = ZOO_LAMBDAS[args.metric]
        if args.quality not in zoo:
            raise CodecTrainingError(
                f'No zoo lambda for quality {args.quality}; pass --lambda.')
        args.lmbda = zoo[args.quality]
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
    for name in ('batch_size', 'iters', 'val_interval', 'log_interval'):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise CodecTrainingError(f'--{name.replace("_", "-")} must be '
                                     f'positive; got {value}.')
    if args.epochs is not None and args.epochs <= 0:
        raise CodecTrainingError(f'--epochs must be positive; got '
                                 f'{args.epochs}.')


# ------------------------------------------------------------------ main ---
def lr_at(args, it: int, total: int) -> float:
    """Linear warmup, then constant or cosine to 1% (stateless, so resuming
    needs no scheduler state)."""
    if it < args.warmup_iters:
        return args.lr * (it + 1) / args.warmup_iters
    if args.lr_schedule != 'cosine':
        return args.lr
    floor = 0.01
    progress = (it - args.warmup_iters) / max(total - args.warmup_iters, 1)
    return args.lr * (
        floor + (1 - floor) * 0.5 *
        (1 + math.cos(math.pi * min(progress, 1.0))))


def build_model(args):
    if args.finetune:
        try:
            return build_codec(args.codec, args.quality, True, args.metric)
        except CodecWeightsError as err:
            raise CodecWeightsError(
                f'{err} With the file at hand, --init /path/to/it starts '
                f'from it too.') from err
    if args.init:
        return build_codec(args.codec, args.quality, args.init)
    return build_codec(args.codec, args.quality, False)


def resume_path(args) -> Optional[str]:
    if args.resume is None:
        return None
    path = osp.join(args.work_dir, LATEST) if args.resume == 'auto' \
        else args.resume
    if not osp.isfile(path):
        raise CodecTrainingError(
            f'--resume: {path} does not exist (nothing to resume; drop '
            f'--resume to start a new run).')
    return path


def say(message: str) -> None:
    """Print past the progress bar, flushed (logs written to files)."""
    tqdm.write(message, file=sys.stdout)
    sys.stdout.flush()


def log_line(path: str, entry: dict) -> None:
    with open(path, 'a') as f:
        f.write(json.dumps(entry) + '\n')


def fmt(metrics: Dict[str, float]) -> str:
    return (f'loss {metrics["loss"]:.4f}  bpp {metrics["bpp"]:.4f}  '
            f'PSNR {metrics["psnr"]:.2f} dB  aux {metrics["aux"]:.1f}')


class CodecTrainer:
    """One rate-distortion training run, as ``args`` describes it.

    Building it reads the image folder, builds the codec (or takes it from
    ``latest.pth`` when resuming) and CompressAI's two optimizers;
    :meth:`run` trains to the last iteration, validating and saving
    ``latest.pth`` every ``val_interval`` iterations, and writes
    ``codec_final.pth``.
    """

    def __init__(self, args):
        check_args(args)
        torch.manual_seed(args.seed)
        random.seed(args.seed)
        self.args = args
        self.device = torch.device(args.device)
        self._read_images()
        self.ckpt_path = resume_path(args)
        # Resuming: the weights come from latest.pth, not --finetune/--init.
        self.model = (build_codec(args.codec, args.quality, False)
                      if self.ckpt_path else build_model(args)).to(self.device)
        self.model.train()
        optimizers = net_aux_optimizer(
            self.model, {
                'net': {
                    'type': 'Adam',
                    'lr': args.lr
                },
                'aux': {
                    'type': 'Adam',
                    'lr': args.aux_lr
                }
            })
        self.optimizer, self.aux_optimizer = (optimizers['net'],
                                              optimizers['aux'])
        self.plateau = None
        if args.lr_schedule == 'plateau':
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, 'min', factor=0.5, patience=args.lr_patience)
        self.criterion = RateDistortionLoss(
            lmbda=args.lmbda, metric=args.metric)
        os.makedirs(args.work_dir, exist_ok=True)
        self.log_path = osp.join(args.work_dir, 'log.json')
        self.latest_path = osp.join(args.work_dir, LATEST)
        self.start_iter, self.history, self.val_history = 0, [], []
        self.best_val = float('inf')
        self.elapsed_before = 0.0
        if self.ckpt_path:
            self._resume(self.ckpt_path)
        self._build_loaders()

    # setup -------------------------------------------------------------
    def _read_images(self) -> None:
        args = self.args
        files = list_images(args.image_dir)
        val_files = list_images(args.val_dir) if args.val_dir else None
        self.train_files, self.val_files = split_files(files, val_files,
                                                       args.val_ratio,
                                                       args.seed)
        self.n_train = len(self.train_files)
        self.iters_per_epoch = max(1,
                                   math.ceil(self.n_train / args.batch_size))
        self.total = args.iters if args.iters is not None else math.ceil(
            args.epochs * self.n_train / args.batch_size)
        self.val_interval = args.val_interval or self.iters_per_epoch

    def _build_loaders(self) -> None:
        args = self.args
        loader_kw = dict(
            num_workers=args.num_workers,
            pin_memory=self.device.type == 'cuda',
            persistent_workers=args.num_workers > 0)
        self.train_loader = DataLoader(
            ImageFiles(self.train_files, args.patch_size, train=True),
            batch_size=args.batch_size,
            sampler=ShuffledStream(
                self.n_train,
                args.seed,
                start=self.start_iter * args.batch_size),
            **loader_kw)
        self.val_loader = DataLoader(
            ImageFiles(self.val_files, args.patch_size, train=False),
            batch_size=args.batch_size,
            shuffle=False,
            **loader_kw) if self.val_files else None

    def _resume(self, path: str) -> None:
        args = self.args
        ckpt = read_checkpoint(path)
        if not isinstance(ckpt, dict) or not {
                'state_dict', 'optimizer', 'aux_optimizer', 'iter'
        } <= set(ckpt):
            raise CodecTrainingError(
                f'{path} is not a {LATEST} written by train_codec.py (no '
                f'optimizer state or iteration): start from its weights '
                f'with --init {path} instead of --resume.')
        recorded = (canonical_codec_name(ckpt.get('codec',
                                                  '')), ckpt.get('quality'))
        if recorded != (args.codec, args.quality):
            raise CodecTrainingError(
                f'{path} trains {recorded[0]!r} quality {recorded[1]}, not '
                f'{args.codec!r} quality {args.quality}: pass the same '
                f'--codec and --quality to resume.')
        load_into_codec(self.model, ckpt['state_dict'], path, args.codec,
                        args.quality)
        self.optimizer.load_state_dict(ckpt['optimizer'])
        self.aux_optimizer.load_state_dict(ckpt['aux_optimizer'])
        if self.plateau is not None and ckpt.get('plateau'):
            self.plateau.load_state_dict(ckpt['plateau'])
        if 'rng' in ckpt:
            torch.set_rng_state(ckpt['rng'])
        self.start_iter = int(ckpt['iter'])
        self.history = list(ckpt.get('history', []))
        self.val_history = list(ckpt.get('val_history', []))
        self.best_val = float(ckpt.get('best_val_loss', self.best_val))
        self.elapsed_before = float(ckpt.get('train_time_s', 0.0))

    def describe(self) -> None:
        """Say what will be trained, on what, and anything unusual."""
        args = self.args
        start = ('fine-tuning CompressAI weights' if args.finetune else
                 f'init {args.init}' if args.init else 'from scratch')
        say(f'Codec {args.codec} quality {args.quality} (N, M = '
            f'{codec_args(args.codec, args.quality)}), {args.metric} lambda '
            f'{args.lmbda}, {start}.\n'
            f'{self.n_train} training / {len(self.val_files)} validation '
            f'images, {args.patch_size}px crops, batch {args.batch_size}, '
            f'iterations {self.start_iter} -> {self.total} '
            f'({self.total / self.iters_per_epoch:.1f} epochs), device '
            f'{self.device}.')
        try:
            check_supported(args.codec, args.quality)
        except ValueError as err:
            say(f'Note: CI2P cannot use this codec as its patch embedding: '
                f'{err}')
        probe = self.train_files[::max(1, self.n_train // 200)]  # <= ~200
        small = sum(1 for f in probe if min(image_size(f)) < args.patch_size)
        if small:
            say(f'Note: {small} of {len(probe)} training images checked are '
                f'smaller than {args.patch_size}px; such images are '
                f'reflection-padded to the patch size.')

    # checkpoints -------------------------------------------------------
    def weights(self, it: int) -> dict:
        """The codec's weights and what they are: both files start so."""
        args = self.args
        return {
            'state_dict': cpu_state_dict(self.model),
            'codec': args.codec,
            'quality': args.quality,
            'metric': args.metric,
            'lmbda': args.lmbda,
            'iter': it,
            'epoch': it * args.batch_size / self.n_train,
        }

    def save_latest(self, it: int, elapsed: float) -> None:
        """``latest.pth``: everything a resumed run needs, atomically."""
        save_atomic(
            {
                **self.weights(it),
                'optimizer': self.optimizer.state_dict(),
                'aux_optimizer': self.aux_optimizer.state_dict(),
                'plateau': self.plateau.state_dict() if self.plateau else None,
                'rng': torch.get_rng_state(),
                'history': self.history,
                'val_history': self.val_history,
                'best_val_loss': self.best_val,
                'train_time_s': elapsed,
                'args': dict(vars(self.args)),
            }, self.latest_path)

    def save_final(self, it: int, elapsed: float) -> str:
        """``codec_final.pth`` in CompressAI's format (entropy-coder tables
        filled in by ``update()``)."""
        self.model.update(force=True)
        final = {
            **self.weights(it),
            'patch_size': self.args.patch_size,
            'train_time_s': elapsed,
            'train': self.history[-1] if self.history else None,
            'val': self.val_history[-1] if self.val_history else None,
        }
        final_path = osp.join(self.args.work_dir, FINAL)
        save_atomic(final, final_path)
        last = final['val'] or final['train']
        summary = f': {fmt(last)}' if last else ''
        say(f'Saved {final_path} after {it} iterations in {elapsed:.0f} s'
            f'{summary} ({"validation" if final["val"] else "training"}). '
            f'Use it with CI2PPatchEmbed(pretrained={final_path!r}, '
            f'codec={self.args.codec!r}, quality={self.args.quality}).')
        return final_path

    # steps -------------------------------------------------------------
    def validate(self, it: int) -> Dict[str, float]:
        metrics = validate(self.model, self.val_loader, self.criterion,
                           self.device)
        entry = dict(mode='val', iter=it, **metrics)
        self.val_history.append(entry)
        log_line(self.log_path, entry)
        say(f'[val {it}/{self.total}] {fmt(metrics)}')
        self.best_val = min(self.best_val, metrics['loss'])
        if self.plateau is not None:
            self.plateau.step(metrics['loss'])
        return metrics

    def train_step(self, it: int, x: torch.Tensor) -> Dict[str, float]:
        """One step on batch ``x`` (iteration ``it``, counted from 0):
        the RD loss on the network, the aux loss on the quantiles."""
        args = self.args
        if args.lr_schedule == 'cosine' or it < args.warmup_iters:
            for group in self.optimizer.param_groups:
                group['lr'] = lr_at(args, it, self.total)
        self.optimizer.zero_grad()
        self.aux_optimizer.zero_grad()
        out = self.model(x)
        losses = self.criterion(out, x)
        losses['loss'].backward()
        if args.clip_max_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                           args.clip_max_norm)
        self.optimizer.step()
        aux_loss = self.model.aux_loss()
        aux_loss.backward()
        self.aux_optimizer.step()
        mse = F.mse_loss(out['x_hat'].detach().clamp(0, 1), x).item()
        step = dict(
            loss=losses['loss'].item(),
            bpp=losses['bpp_loss'].item(),
            mse=mse,
            psnr=psnr_from_mse(mse),
            aux=aux_loss.item())
        if not math.isfinite(step['loss']):
            raise CodecTrainingError(
                f'The loss became {step["loss"]} at iteration {it + 1}. '
                f'Lower --lr (now {args.lr}) or keep --clip-max-norm.')
        return step

    def _log_window(self, it: int, window: Window) -> None:
        entry = dict(
            mode='train',
            iter=it,
            epoch=round(it * self.args.batch_size / self.n_train, 3),
            lr=self.optimizer.param_groups[0]['lr'],
            **window.means())
        self.history.append(entry)
        log_line(self.log_path, entry)

    # the run -----------------------------------------------------------
    def run(self) -> str:
        """Train to the last iteration; return codec_final.pth."""
        args = self.args
        self.describe()
        if args.data_init and not self.ckpt_path:
            train_set = self.train_loader.dataset
            batch = torch.stack(
                [train_set[i] for i in range(min(self.n_train, 32))])
            say(data_init(self.model, batch.to(self.device)))
        if (self.val_loader is not None and self.start_iter == 0
                and not self.val_history):
            self.validate(0)  # the baseline the training improves on

        t0 = time.time()
        it = self.start_iter
        window = Window()
        pbar = tqdm(
            total=self.total,
            initial=self.start_iter,
            desc='train codec',
            dynamic_ncols=True,
            disable=args.no_progress)
        data = iter(self.train_loader)
        try:
            while it < self.total:
                x = next(data).to(self.device, non_blocking=True)
                step = self.train_step(it, x)
                it += 1
                window.update(**step)
                pbar.update()
                pbar.set_postfix(
                    loss=f'{step["loss"]:.3f}',
                    bpp=f'{step["bpp"]:.3f}',
                    psnr=f'{step["psnr"]:.2f}',
                    aux=f'{step["aux"]:.0f}')
                if it % args.log_interval == 0 or it == self.total:
                    self._log_window(it, window)
                    window = Window()
                if it % self.val_interval == 0 or it == self.total:
                    if self.val_loader is not None:
                        self.validate(it)
                    self.save_latest(it,
                                     self.elapsed_before + time.time() - t0)
        except KeyboardInterrupt:
            pbar.close()
            self.save_latest(it, self.elapsed_before + time.time() - t0)
            say(f'Interrupted at iteration {it}: saved {self.latest_path} '
                f'(continue with --resume).')
            raise
        pbar.close()
        elapsed = self.elapsed_before + time.time() - t0
        if self.start_iter >= self.total:
            say(f'{self.ckpt_path} is already at iteration '
                f'{self.start_iter} >= {self.total}: writing the final '
                f'checkpoint only.')
            self.save_latest(it, elapsed)
        return self.save_final(it, elapsed)


def train(args) -> str:
    """Run the training described by ``args``; return codec_final.pth."""
    return CodecTrainer(args).run()


def main(argv=None) -> int:
    """``tools/train_codec.py``: parse ``argv`` and train."""
    train(parse_args(argv))
    return 0
