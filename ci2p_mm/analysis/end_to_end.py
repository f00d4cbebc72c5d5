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
(:mod:`ci2p_mm.engine.compile`); compilation happens in the warm-up
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
"""
import copy
import gc
import os.path as osp
import statistics
import time
from contextlib import nullcontext

import torch
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from ci2p_mm.latents import (LatentStore, LatentStoreError,
                             build_device_latent_loader)
from ci2p_mm.utils import read_config
from ci2p_mm.utils.timing import interleave, loadavg
from . import profile
from .bench_data import (count_lines, encode_train_split, is_latent,
                         prepare_data, prepared_config)
from .timing import (MIB, autocast, build_model, build_optim_wrapper,
                     compile_kwargs, device_name, maybe_compile, print_header,
                     report_settings, step_begin, write_report)


def add_arguments(parser):
    group = parser.add_argument_group('--end-to-end')
    group.add_argument(
        '--end-to-end',
        action='store_true',
        help='time training iterations including the '
        "config's data loading from files (see "
        'ci2p_mm/analysis/end_to_end.py)')
    group.add_argument(
        '--data-dir',
        default='work_dirs/e2e_data',
        help='Animals-10-like folder (written if empty)')
    group.add_argument(
        '--num-images',
        type=int,
        default=160,
        help='JPEGs to write (train split: 80%%)')
    group.add_argument(
        '--source-size',
        default='300x225',
        help='WxH of the written JPEGs (Animals-10 images '
        'are about 300x225)')
    group.add_argument(
        '--num-workers',
        type=int,
        help="dataloader workers (default: the config's)")
    group.add_argument(
        '--steps', type=int, default=6, help='timed iterations per model')
    group.add_argument(
        '--codec',
        help='codec checkpoint for the CI2P '
        'configs (default: CompressAI weights, or a random '
        'codec saved once in --data-dir with --no-pretrained)')
    group.add_argument(
        '--device-latents',
        choices=['off', 'on', 'both'],
        default='off',
        help='latent configs: train from device-resident latents (the '
        'store in device memory, no workers); both: a DataLoader row and a '
        'device-resident row')
    group.add_argument(
        '--keep-store',
        action='store_true',
        help='reuse a complete latent store of an earlier '
        'run instead of encoding it again')
    group.add_argument(
        '--rounds',
        type=int,
        default=1,
        help='time every row this many times, round-robin; '
        'the median round is reported with the spread')


def encode_once(cfg, args):
    """Encode the latent config's train split; (seconds or None when an
    earlier store was kept, store folder)."""
    store = osp.join(cfg.train_dataloader.dataset.source.data_root,
                     cfg.train_dataloader.dataset.store)
    if args.keep_store and LatentStore(store).exists():
        try:
            LatentStore(store).check_complete('train')
            return None, store
        except LatentStoreError:
            pass
    return encode_train_split(cfg, store, args.batch_size,
                              cfg.train_dataloader.num_workers), store


# ---- timing ------------------------------------------------------------


def build_train_loader(cfg, args, device_resident: bool):
    """The config's train loader with full batches (one shape for a
    compiled model): mmengine's DataLoader, or device-resident latents."""
    loader_cfg = dict(cfg.train_dataloader, drop_last=True)
    if device_resident:
        return build_device_latent_loader(
            loader_cfg, args.device, seed=args.seed)
    return Runner.build_dataloader(loader_cfg, seed=args.seed)


class Batches:
    """Endless batches of a loader, epoch after epoch (mmengine's
    ``_InfiniteDataloaderIterator`` sleeps 2 s at each epoch's end)."""

    def __init__(self, loader):
        self.loader = loader
        self.epoch = 0
        self.batches = iter(loader)

    def next(self):
        try:
            return next(self.batches)
        except StopIteration:  # small data: next epoch
            self.epoch += 1
            self.loader.sampler.set_epoch(self.epoch)
            self.batches = iter(self.loader)
            return next(self.batches)

    def close(self):
        del self.batches  # stops the workers


def time_training(cfg, args, device_resident=False, name=''):
    """Build model, optimizer and the train loader; time ``warmup + steps``
    iterations, each the wait for its batch (``data``) then
    ``model.train_step`` (``step``), round-robin in
    :func:`ci2p_mm.utils.timing.interleave` (then profile, with
    ``--profile``). Returns the round's figures (medians, the data share,
    the iterations' seconds, the CUDA peak of the timed iterations)."""
    init_default_scope('mmpretrain')
    model = build_model(cfg, args, name).train()
    # The config's optimizer; AmpOptimWrapper on CUDA with --amp (on CPU
    # the step runs under autocast instead, as benchmark.py's steps do).
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper, args)
    maybe_compile(model, args)  # as tools/train.py --compile does
    start = time.perf_counter()
    batches = Batches(build_train_loader(cfg, args, device_resident))
    load_s = time.perf_counter() - start
    batch = {}

    def data():
        with profile.data_wait_range():
            batch['data'] = batches.next()

    def step():
        step_begin(args)
        with autocast(args) if args.device == 'cpu' else nullcontext():
            model.train_step(batch['data'], optim_wrapper)

    iteration = dict(data=data, step=step)
    interleave(iteration, 0, args.warmup)
    if args.device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    timings = interleave(iteration, args.steps)
    data_s, step_s = timings['data'].seconds, timings['step'].seconds
    total = sum(data_s) + sum(step_s)
    # CPU cores of other processes over the timed blocks, time-weighted
    others = [(s, c) for t in timings.values()
              for s, c in zip(t.seconds, t.other_cores) if c is not None]
    peak = torch.cuda.max_memory_allocated() if args.device == 'cuda' else None
    result = dict(
        img_per_s=args.batch_size * len(step_s) / total,
        data_s=timings['data'].median,
        step_s=timings['step'].median,
        data_fraction=sum(data_s) / total,
        other_cores=(sum(s * c
                         for s, c in others) / total if others else None),
        peak_mib=None if peak is None else peak / MIB,
        loader_build_s=load_s,
        iterations=[dict(data=d, step=s) for d, s in zip(data_s, step_s)],
        params_m=sum(p.numel() for p in model.parameters()) / 1e6)
    if args.profile:
        result['profile'] = profile.profile_iterations(
            lambda: (data(), step()), args, name)
    batches.close()  # stop the workers before the next model
    return result


def plan_rows(args):
    """``(config path, device_resident)`` per row, in order."""
    rows = []
    for path in args.configs:
        cfg = read_config(path, args.cfg_options)
        latent = is_latent(cfg)
        if not latent or args.device_latents in ('off', 'both'):
            rows.append((path, False))
        if latent and args.device_latents in ('on', 'both'):
            rows.append((path, True))
    return rows


def run(args, argv):
    torch.manual_seed(args.seed)
    codec = prepare_data(args)
    print_header(
        args, f'batch {args.batch_size}, {args.img_size}x{args.img_size}, '
        f'{precision(args)}, data {args.data_dir} '
        f'({count_lines(osp.join(args.data_dir, "meta", "train.txt"))} '
        f'training JPEGs)')
    rows, configs = [], {}
    for path, resident in plan_rows(args):
        cfg = prepared_config(path, args, codec)
        name = osp.splitext(
            osp.basename(path))[0] + (' [device]' if resident else '')
        row = dict(
            name=name,
            config=path,
            device_resident=resident,
            workers=0 if resident else cfg.train_dataloader.num_workers,
            rounds=[])
        if is_latent(cfg) and path not in configs:
            seconds, store = encode_once(cfg, args)
            n = LatentStore(store).split_record('train')['num_samples']
            row.update(encode_s=seconds, store=store)
            if seconds is None:
                print(
                    f'{name}: kept the store {store} ({n} training '
                    f'images)',
                    flush=True)
            else:
                row['encode_img_s'] = n / seconds
                print(
                    f'{name}: encoded {n} training images (x2 views) once '
                    f'in {seconds:.1f} s ({n / seconds:.1f} img/s)',
                    flush=True)
        configs.setdefault(path, cfg)
        rows.append((row, cfg))
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
                        timing['profile']),
                    flush=True)
            print(
                f'[round {round_index + 1}/{args.rounds}] {row["name"]}: '
                f'{timing["img_per_s"]:.2f} img/s end to end; median data '
                f'wait {timing["data_s"]:.3f} s, step '
                f'{timing["step_s"]:.3f} s per iteration',
                flush=True)
            if args.out:  # what is done so far, should a time limit hit
                write_report(
                    args.out,
                    make_report([r for r, _ in rows if r['rounds']],
                                args,
                                argv,
                                partial=True),
                    quiet=True)
    report = make_report([r for r, _ in rows], args, argv)
    print(report['table'], flush=True)
    if args.out:
        write_report(args.out, report)
    return report


def make_report(rows, args, argv, partial=False):
    rows = [summarize_rounds(copy.deepcopy(row)) for row in rows]
    return dict(
        **report_settings(args, argv),
        device=device_name(args),
        loadavg_end=loadavg(),
        precision=precision(args),
        source_size=args.source_size,
        rounds=args.rounds,
        partial=partial,
        results=rows,
        table=format_table(rows, args))


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


def precision(args) -> str:
    text = args.amp or 'fp32'
    if not args.compile:
        return text
    kwargs = compile_kwargs(args)
    return text + ', compiled' + (
        f' ({", ".join(f"{k}={v}" for k, v in kwargs.items())})'
        if kwargs else '')


def fmt_cores(cores):
    return '-' if cores is None else f'{cores:.2f}'


def format_table(rows, args):
    first = rows[0]['img_per_s']
    memory = any(r.get('peak_mib') is not None for r in rows)
    width = max([34] + [len(r['name']) + 2 for r in rows])
    header = (f'{"config":<{width}}{"workers":>8}{"img/s":>10}{"x":>8}'
              f'{"spread":>8}{"data s/it":>11}{"step s/it":>11}'
              f'{"data %":>8}{"once":>10}{"others":>8}')
    if memory:
        header += f'{"peak MiB":>10}'
    lines = [header, '-' * len(header)]
    for r in rows:
        if r.get('device_resident'):
            once = f'load {r["loader_build_s"]:.0f} s'
        elif r.get('encode_s') is not None:
            once = f'enc {r["encode_s"]:.0f} s'
        else:
            once = 'kept' if 'store' in r else '-'
        line = (f'{r["name"]:<{width}}{r["workers"]:>8}{r["img_per_s"]:>10.2f}'
                f'{r["img_per_s"] / first:>7.2f}x{100 * r["spread"]:>7.0f}%'
                f'{r["data_s"]:>11.3f}{r["step_s"]:>11.3f}'
                f'{100 * r["data_fraction"]:>7.0f}%{once:>10}'
                f'{fmt_cores(r["other_cores"]):>8}')
        if memory:
            peak = r.get('peak_mib')
            line += f'{"-" if peak is None else f"{peak:.0f}":>10}'
        lines.append(line)
    lines.append(
        f'end to end: config train dataloader (files, pipeline, workers; '
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
    return '\n'.join(lines)
