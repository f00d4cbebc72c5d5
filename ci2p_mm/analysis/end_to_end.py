"""End-to-end training throughput: data loading included.

    python tools/analysis_tools/benchmark.py --end-to-end \
        configs/vit_b16_animals10.py configs/ci2p_vit_animals10.py \
        configs/ci2p_vit_animals10_latents.py \
        --data-dir work_dirs/e2e_data --no-pretrained --batch-size 8 \
        --num-workers 2 --steps 6 --warmup 2

``benchmark.py``'s default mode times a model step on a batch already in
memory. This mode times what a training run does per iteration: the
config's own train dataloader (dataset, pipeline, sampler, workers) reading
real files, then ``model.train_step`` (data preprocessor, forward,
backward, optimizer step). It writes an Animals-10-like folder of JPEGs
(``--num-images``, ``--source-size``, Kaggle's layout, split with the real
preparation code) unless ``--data-dir`` already holds one, points every
config at it, and for a ``LatentDataset`` config first encodes the latent
store once with ``encode_latents`` (timed and reported apart: it is paid
once, not per epoch).

Models run one after the other (not interleaved: a model's loader workers
would otherwise prefetch while another model computes). Per model it
reports img/s over the timed iterations, and where the time goes: waiting
for the next batch (``data``: decoding, resizing and collation not hidden
behind the step by the workers) and the train step itself (``step``).

On CUDA (``--device cuda``) the step ends with a synchronisation, as
mmengine's logging of the losses does every iteration; ``--amp bf16`` trains
with mmengine's ``AmpOptimWrapper`` and ``--compile`` compiles the model's
forward the way ``tools/train.py --compile`` does
(``nn.Module.compile()``); compilation happens in the warm-up
iterations, which are not timed. Batches are full (``drop_last``), so a
compiled model sees one shape. The peak CUDA memory of the timed
iterations is reported.

Latent configs:

* ``--device-latents on`` trains them from device-resident latents
  (:mod:`ci2p_mm.latents.device`: the store in device memory, no workers;
  loading it is timed apart, like the encoding); ``both`` adds that row
  after the DataLoader row, to compare the two.
* ``--keep-store`` reuses a complete store from an earlier run instead of
  encoding it again.

``--rounds N`` times every row N times, round-robin (rows A B C A B C ...),
and reports the median round with the spread, so a difference between rows
can be told from run-to-run noise. ``--profile`` profiles more iterations
of every row afterwards (:mod:`.profile`: data wait, GPU busy/idle, top
kernels).

What this mode and ``--latent-storage`` run on: a generated
Animals-10-like folder of JPEGs, a seeded random codec, and configs pointed
at them.
"""
import copy
import gc
import itertools
import os
import os.path as osp
import statistics
import time
from contextlib import nullcontext, suppress
from multiprocessing import get_context
from typing import Optional

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from PIL import Image
from torch.profiler import record_function

from ci2p_mm.codec import build_codec
from ci2p_mm.datasets import ITALIAN_TO_ENGLISH, make_split
from ci2p_mm.engine import set_default_dataloader_cfg
from ci2p_mm.latents import (LatentStore, LatentStoreError,
                             build_device_latent_loader, encode)
from ci2p_mm.latents.encoding import configured_store
from ci2p_mm.utils import load_model_config, set_patch_options
from ci2p_mm.utils.cli import at_least
from ci2p_mm.utils.errors import UserError
from ci2p_mm.utils.io import save_atomic
from ci2p_mm.utils.timing import (describe_machine, format_table, interleave,
                                  loadavg, write_json)
from . import profile
from .timing import (MIB, autocast, build_model, build_optim_wrapper,
                     check_input_size, maybe_compile, peak_memory, precision,
                     print_header, report_settings, step_begin)


def add_arguments(parser):
    group = parser.add_argument_group('--end-to-end')
    add = group.add_argument
    add('--end-to-end',
        action='store_true',
        help="time training iterations including the config's data loading "
        'from files (see ci2p_mm/analysis/end_to_end.py)')
    add('--data-dir',
        default='work_dirs/e2e_data',
        help='Animals-10-like folder (written if empty)')
    add('--num-images',
        type=at_least(1),
        default=160,
        help='JPEGs to write (train split: 80%%)')
    add('--source-size',
        default='300x225',
        help='WxH of the written JPEGs (Animals-10 images are about 300x225)')
    add('--num-workers',
        type=at_least(0),
        help="dataloader workers (default: the config's)")
    add('--steps',
        type=at_least(1),
        default=6,
        help='timed iterations per model')
    add('--codec',
        help='codec checkpoint for the CI2P configs (default: CompressAI '
        'weights, or a random codec saved once in --data-dir with '
        '--no-pretrained)')
    add('--device-latents',
        choices=['off', 'on', 'both'],
        default='off',
        help='latent configs: train from device-resident latents (the '
        'store in device memory, no workers); both: a DataLoader row and a '
        'device-resident row')
    add('--keep-store',
        action='store_true',
        help='reuse a complete latent store of an earlier '
        'run instead of encoding it again')
    add('--rounds',
        type=at_least(1),
        default=1,
        help='time every row this many times, round-robin; '
        'the median round is reported with the spread')


# ---- the data --------------------------------------------------------


def _write_jpeg(job):
    """One photo-like JPEG: smooth colour field, texture and a disc; its own
    seeded generator, so the folder is the same however many processes
    write it."""
    path, (w, h), seed, i = job
    rng = np.random.default_rng([seed, i])
    coarse = rng.uniform(0, 255, (6, 8, 3)).astype(np.uint8)
    img = np.asarray(
        Image.fromarray(coarse).resize((w, h), Image.BICUBIC),
        dtype=np.float32)
    img += rng.normal(0, 18, (h, w, 3))
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx, r = h * rng.uniform(.3, .7), w * rng.uniform(.3, .7), h / 4
    img[(yy - cy)**2 + (xx - cx)**2 < r**2] = rng.uniform(0, 255, 3)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(
        path, quality=90)


def write_jpeg_folder(root: str, num_images: int, size, seed: int = 0) -> None:
    """Photo-like JPEGs in Kaggle's ``raw-img/<class>/`` layout, split 80/20
    with ``make_split``; written by one process per CPU core (thousands of
    ImageNet-sized JPEGs take seconds on a GPU machine's cores)."""
    if osp.isfile(osp.join(root, 'meta', 'train.txt')):
        return
    folders = list(ITALIAN_TO_ENGLISH)
    jobs = []
    for i in range(num_images):
        folder = osp.join(root, 'raw-img', folders[i % len(folders)])
        os.makedirs(folder, exist_ok=True)
        jobs.append((osp.join(folder, f'{osp.basename(folder)}_{i:05d}.jpeg'),
                     tuple(size), seed, i))
    processes = min(len(jobs), os.cpu_count() or 1, 16)
    if processes > 1:
        with get_context('fork').Pool(processes) as pool:
            pool.map(_write_jpeg, jobs, chunksize=16)
    else:
        for job in jobs:
            _write_jpeg(job)
    make_split(osp.join(root, 'raw-img'), root, val_ratio=0.2, seed=0)


def prepare_data(args) -> Optional[str]:
    """The data folder of ``--end-to-end`` and ``--latent-storage``
    (written unless there) and the codec file they use: ``--codec``, else a
    seeded random one saved once in the folder with ``--no-pretrained``
    (encoding and training then use the same weights; speed does not
    depend on them), else None (CompressAI's)."""
    try:
        w, h = (int(s) for s in args.source_size.lower().split('x'))
        if min(w, h) < 1:
            raise ValueError
    except ValueError:
        raise UserError(f'--source-size {args.source_size}: give WxH of '
                        f'positive whole numbers, e.g. 300x225.') from None
    # outside the try: an InputSizeError is a ValueError too
    check_input_size(f'--source-size {args.source_size}', (h, w))
    write_jpeg_folder(args.data_dir, args.num_images, (w, h), args.seed)
    if args.codec or not args.no_pretrained:
        return args.codec
    path = osp.join(args.data_dir, 'random_codec_q5.pth')
    if not osp.isfile(path):
        torch.manual_seed(0)
        save_atomic(build_codec('bmshj2018-factorized', 5).state_dict(), path)
    return path


def encode_train_split(cfg: Config,
                       out: str,
                       batch_size: int,
                       num_workers: int,
                       storage: str = 'fp16') -> float:
    """Encode the config's train split into the store ``out`` from scratch
    (the store's own files there are removed first, so a whole encode is
    timed); the seconds it took (paid once, not per epoch)."""
    LatentStore(out).remove_files()
    start = time.perf_counter()
    encode(
        cfg,
        out=out,
        storage=storage,
        splits=['train'],
        overwrite=True,
        progress=False,
        num_workers=num_workers,
        batch_size=batch_size)
    return time.perf_counter() - start


def prepared_config(path: str, args, codec) -> Config:
    """The config pointed at the data folder, with the run's settings
    (batch size, image size, workers, codec file)."""
    cfg = load_model_config(
        path, args.cfg_options, channels_last=args.channels_last)
    loader = cfg.train_dataloader
    latent = configured_store(cfg) is not None
    image_dataset = loader.dataset.source if latent else loader.dataset
    image_dataset.data_root = osp.abspath(args.data_dir)
    for t in image_dataset.pipeline:
        if t['type'] in ('Resize', ) and 'scale' in t:
            t['scale'] = (args.img_size, args.img_size)
    loader.batch_size = args.batch_size
    if args.num_workers is not None:
        loader.num_workers = args.num_workers
        loader.persistent_workers = args.num_workers > 0
    set_default_dataloader_cfg(cfg, 'train_dataloader')
    cfg.model.backbone.img_size = args.img_size
    if codec is not None:
        set_patch_options(cfg, pretrained=codec)
    if latent:
        loader.dataset.store = osp.join(
            'latents', f'e2e-{osp.splitext(osp.basename(path))[0]}-'
            f'{args.img_size}')
    return cfg


def encode_once(cfg, args):
    """Encode the latent config's train split; (seconds or None when an
    earlier store was kept, store folder)."""
    store = configured_store(cfg)
    if args.keep_store:  # a missing or incomplete store is encoded again
        with suppress(LatentStoreError):
            LatentStore(store).check_complete('train')
            return None, store
    return encode_train_split(cfg, store, args.batch_size,
                              cfg.train_dataloader.num_workers), store


# ---- timing ------------------------------------------------------------


def endless(loader, args):
    """Batches of a loader, epoch after epoch (mmengine's
    ``_InfiniteDataloaderIterator`` sleeps 2 s at each epoch's end)."""
    if not len(loader):
        raise UserError(f'{args.data_dir}: fewer training images than '
                        f'--batch-size {args.batch_size}; raise --num-images '
                        f'(80% of it trains).')
    for epoch in itertools.count():
        loader.sampler.set_epoch(epoch)  # small data: next epoch
        yield from loader


def time_training(cfg, args, device_resident=False, name=''):
    """Build model, optimizer and the train loader; time ``warmup + steps``
    iterations, each the wait for its batch (``data``) then
    ``model.train_step`` (``step``), round-robin in
    :func:`ci2p_mm.utils.timing.interleave` (then profile, with
    ``--profile``). Returns the round's figures (medians, the data share,
    the iterations' seconds, the CUDA peak of the timed iterations)."""
    init_default_scope('mmpretrain')
    model = build_model(cfg, args.device, args.channels_last, name).train()
    # The config's optimizer; AmpOptimWrapper on CUDA with --amp (on CPU
    # the step runs under autocast instead, as benchmark.py's steps do).
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper, args)
    maybe_compile(model, args)  # as tools/train.py --compile does
    start = time.perf_counter()
    # Full batches (one shape for a compiled model): mmengine's DataLoader,
    # or device-resident latents.
    loader_cfg = dict(cfg.train_dataloader, drop_last=True)
    batches = endless(
        build_device_latent_loader(loader_cfg, args.device, seed=args.seed)
        if device_resident else Runner.build_dataloader(
            loader_cfg, seed=args.seed), args)
    load_s = time.perf_counter() - start
    batch = {}

    def data():
        with record_function(profile.DATA_RANGE):
            batch['data'] = next(batches)

    def step():
        step_begin(args)
        with autocast(args) if args.device == 'cpu' else nullcontext():
            model.train_step(batch['data'], optim_wrapper)

    iteration = dict(data=data, step=step)
    interleave(iteration, 0, args.warmup)
    with peak_memory(args.device) as peak:
        timings = interleave(iteration, args.steps)
    data_s, step_s = timings['data'].seconds, timings['step'].seconds
    total = sum(data_s) + sum(step_s)
    # CPU cores of other processes over the timed blocks, time-weighted
    others = [(s, c) for t in timings.values()
              for s, c in zip(t.seconds, t.other_cores) if c is not None]
    result = dict(
        img_per_s=args.batch_size * len(step_s) / total,
        data_s=timings['data'].median,
        step_s=timings['step'].median,
        data_fraction=sum(data_s) / total,
        other_cores=(sum(s * c
                         for s, c in others) / total if others else None),
        peak_mib=peak['peak_bytes'] / MIB if args.device == 'cuda' else None,
        loader_build_s=load_s,
        iterations=[dict(data=d, step=s) for d, s in zip(data_s, step_s)],
        params_m=sum(p.numel() for p in model.parameters()) / 1e6)
    if args.profile:
        result['profile'] = profile.profile_iterations(
            lambda: (data(), step()), args, name)
    batches.close()  # stop the workers before the next model
    return result


#: ``--device-latents``: the rows of a latent config (device-resident?).
RESIDENT = dict(off=(False, ), on=(True, ), both=(False, True))


def plan_rows(args, codec):
    """A row per config (and a device-resident one for a latent config
    with ``--device-latents on|both``), its latent store encoded once."""
    rows, encoded = [], set()
    for path in args.configs:
        cfg = prepared_config(path, args, codec)
        latent = configured_store(cfg) is not None
        name = osp.splitext(osp.basename(path))[0]
        kinds = RESIDENT[args.device_latents] if latent else (False, )
        for resident in kinds:
            row = dict(
                name=name + (' [device]' if resident else ''),
                config=path,
                device_resident=resident,
                workers=0 if resident else cfg.train_dataloader.num_workers,
                rounds=[])
            if latent and path not in encoded:
                encoded.add(path)
                seconds, store = encode_once(cfg, args)
                n = LatentStore(store).split_record('train')['num_samples']
                row.update(encode_s=seconds, store=store)
                if seconds is None:
                    done = f'kept the store {store} ({n} training images)'
                else:
                    row['encode_img_s'] = n / seconds
                    done = (f'encoded {n} training images (x2 views) once '
                            f'in {seconds:.1f} s ({n / seconds:.1f} img/s)')
                print(f'{row["name"]}: {done}')
            rows.append((row, cfg))
    return rows


def run(args, argv):
    torch.manual_seed(args.seed)
    codec = prepare_data(args)
    with open(osp.join(args.data_dir, 'meta', 'train.txt')) as f:
        images = sum(1 for line in f if line.strip())
    print_header(
        args, f'batch {args.batch_size}, {args.img_size}x{args.img_size}, '
        f'{precision(args)}, data {args.data_dir} ({images} training JPEGs)')
    rows = plan_rows(args, codec)
    for round_index in range(args.rounds):
        for row, cfg in rows:
            timing = time_training(
                copy.deepcopy(cfg), args, row['device_resident'], row['name'])
            gc.collect()  # the model, optimizer and loader of that row
            if args.device == 'cuda':
                torch.cuda.empty_cache()
            row['params_m'] = timing.pop('params_m')
            row['rounds'].append(timing)
            if 'profile' in timing:
                print(
                    profile.format_summary(
                        f'{row["name"]}, end to end, batch {args.batch_size}',
                        timing['profile']))
            print(f'[round {round_index + 1}/{args.rounds}] {row["name"]}: '
                  f'{timing["img_per_s"]:.2f} img/s end to end; median data '
                  f'wait {timing["data_s"]:.3f} s, step '
                  f'{timing["step_s"]:.3f} s per iteration')
            if args.out:  # what is done so far, should a time limit hit
                done = [r for r, _ in rows if r['rounds']]
                partial = make_report(done, args, argv, partial=True)
                write_json(args.out, partial, quiet=True)
    report = make_report([r for r, _ in rows], args, argv)
    print(report['table'])
    write_json(args.out, report)
    return report


def make_report(rows, args, argv, partial=False):
    rows = [summarize_rounds(copy.deepcopy(row)) for row in rows]
    return dict(
        **report_settings(args, argv),
        device=describe_machine(args.device),
        loadavg_end=loadavg(),
        precision=precision(args),
        source_size=args.source_size,
        rounds=args.rounds,
        partial=partial,
        results=rows,
        table=results_table(rows, args))


def summarize_rounds(row):
    """The row with its median round's figures on top (and the spread)."""
    rounds = row['rounds']
    rates = [r['img_per_s'] for r in rounds]
    median = sorted(rounds, key=lambda r: r['img_per_s'])[len(rounds) // 2]
    row.update(median)
    row['spread'] = (max(rates) - min(rates)) / statistics.median(rates)
    peaks = [r['peak_mib'] for r in rounds if r['peak_mib'] is not None]
    row['peak_mib'] = max(peaks) if peaks else None
    return row


def results_table(rows, args):
    memory = any(r.get('peak_mib') is not None for r in rows)
    cells = []
    for r in rows:
        if r.get('device_resident'):
            once = f'load {r["loader_build_s"]:.0f} s'
        elif r.get('encode_s') is not None:
            once = f'enc {r["encode_s"]:.0f} s'
        else:
            once = 'kept' if 'store' in r else '-'
        cells.append([
            r['name'], r['workers'], f'{r["img_per_s"]:.2f}',
            f'{r["img_per_s"] / rows[0]["img_per_s"]:.2f}x',
            f'{100 * r["spread"]:.0f}%', f'{r["data_s"]:.3f}',
            f'{r["step_s"]:.3f}', f'{100 * r["data_fraction"]:.0f}%', once,
            '-' if r['other_cores'] is None else f'{r["other_cores"]:.2f}'
        ] + ([] if not memory else
             ['-' if r['peak_mib'] is None else f'{r["peak_mib"]:.0f}']))
    header = [
        'config', 'workers', 'img/s', 'x', 'spread', 'data s/it', 'step s/it',
        'data %', 'once', 'others'
    ] + (['peak MiB'] if memory else [])
    return format_table(header, cells) + (
        f'\nend to end: config train dataloader (files, pipeline, workers; '
        f'[device] = device-resident latents) + model.train_step; batch '
        f'{args.batch_size}, {args.img_size}x{args.img_size}, '
        f'{precision(args)}, optimizer {args.optimizer_impl}, '
        f'{args.steps} timed iterations after {args.warmup} warm-up, median '
        f'of {args.rounds} round(s); x = vs the first row; spread = (max - '
        f'min) / median over rounds; data = waiting for the next batch; '
        f'once = latent store encoded (enc) or loaded into device memory '
        f'(load), paid once; others = CPU cores used by other processes '
        f'while timed' +
        ('; peak MiB = torch.cuda.max_memory_allocated over the timed '
         'iterations' if memory else ''))
