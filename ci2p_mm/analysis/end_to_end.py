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
iterations, which are not timed. The peak CUDA memory of the timed
iterations is reported.
"""
import json
import os
import os.path as osp
import shutil
import statistics
import time
from contextlib import nullcontext

import torch
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmpretrain.registry import MODELS

from ci2p_mm.latents import LatentStore, encode
from ci2p_mm.utils import quiet_init_weights
from .bench_data import (count_lines, is_latent, prepared_config,
                         random_codec_file, write_jpeg_folder)
from .timing import (MIB, TOOL, OtherLoad, autocast, build_optim_wrapper,
                     device_name, loadavg, maybe_compile, set_cudnn_benchmark,
                     synchronize)


def add_arguments(parser):
    group = parser.add_argument_group('--end-to-end')
    group.add_argument('--end-to-end', action='store_true',
                       help='time training iterations including the '
                       "config's data loading from files (see "
                       'ci2p_mm/analysis/end_to_end.py)')
    group.add_argument('--data-dir', default='work_dirs/e2e_data',
                       help='Animals-10-like folder (written if empty)')
    group.add_argument('--num-images', type=int, default=160,
                       help='JPEGs to write (train split: 80%%)')
    group.add_argument('--source-size', default='300x225',
                       help='WxH of the written JPEGs (Animals-10 images '
                       'are about 300x225)')
    group.add_argument('--num-workers', type=int,
                       help="dataloader workers (default: the config's)")
    group.add_argument('--steps', type=int, default=6,
                       help='timed iterations per model')
    group.add_argument('--codec', help='codec checkpoint for the CI2P '
                       'configs (default: CompressAI weights, or a random '
                       'codec saved once in --data-dir with --no-pretrained)')


def encode_once(cfg, args):
    """Encode the latent config's train split; (seconds, store folder)."""
    store = osp.join(cfg.train_dataloader.dataset.source.data_root,
                     cfg.train_dataloader.dataset.store)
    shutil.rmtree(store, ignore_errors=True)  # time a whole encode
    start = time.perf_counter()
    store = encode(cfg, splits=['train'], overwrite=True, progress=False,
                   num_workers=cfg.train_dataloader.num_workers,
                   batch_size=args.batch_size)
    return time.perf_counter() - start, store


# ---- timing ------------------------------------------------------------


def time_training(cfg, args):
    """Build model, optimizer and the config's train dataloader; time
    ``warmup + steps`` iterations. Returns per-iteration data and step
    seconds of the timed ones."""
    init_default_scope('mmpretrain')
    meter = OtherLoad()
    model_cfg = cfg.model
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    model = MODELS.build(model_cfg)
    quiet_init_weights(model)
    model.to(args.device)
    model.train()
    set_cudnn_benchmark(cfg, args)
    # The config's optimizer; AmpOptimWrapper on CUDA with --amp (on CPU
    # the step runs under autocast instead, as benchmark.py's steps do).
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper, args)
    maybe_compile(model, args)  # as tools/train.py --compile does
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=args.seed)
    needed = args.warmup + args.steps
    data_s, step_s = [], []
    batches = iter(loader)
    for i in range(needed):
        tic = time.perf_counter()
        try:
            data = next(batches)
        except StopIteration:  # small data: next epoch
            loader.sampler.set_epoch(i)
            batches = iter(loader)
            data = next(batches)
        mid = time.perf_counter()
        with autocast(args) if args.device == 'cpu' else nullcontext():
            model.train_step(data, optim_wrapper)
        synchronize(args.device)
        end = time.perf_counter()
        if i == args.warmup - 1 or (i == 0 and not args.warmup):
            before = meter.snapshot()
            if args.device == 'cuda':
                torch.cuda.reset_peak_memory_stats()
        if i >= args.warmup:
            data_s.append(mid - tic)
            step_s.append(end - mid)
    # Our own loader workers are children: OtherLoad counts them as ours.
    other = OtherLoad.cores(before, meter.snapshot())
    peak_bytes = (torch.cuda.max_memory_allocated()
                  if args.device == 'cuda' else None)
    num_params = sum(p.numel() for p in model.parameters())
    del batches, loader  # stop the workers before the next model
    del model, optim_wrapper
    if args.device == 'cuda':
        torch.cuda.empty_cache()
    return data_s, step_s, num_params, other, peak_bytes


def run(args, argv):
    torch.manual_seed(args.seed)
    size = tuple(int(s) for s in args.source_size.split('x'))
    os.makedirs(args.data_dir, exist_ok=True)
    write_jpeg_folder(args.data_dir, args.num_images, size, args.seed)
    codec = args.codec or (random_codec_file(args.data_dir)
                           if args.no_pretrained else None)
    print(f'# {device_name(args)}, torch {torch.__version__}, '
          f'{torch.get_num_threads()} threads, batch {args.batch_size}, '
          f'{args.img_size}x{args.img_size}, {precision(args)}, data '
          f'{args.data_dir} '
          f'({count_lines(osp.join(args.data_dir, "meta", "train.txt"))} '
          f'training JPEGs); load average '
          f'{loadavg()}', flush=True)
    rows = []
    for path in args.configs:
        cfg = prepared_config(path, args, codec)
        name = osp.splitext(osp.basename(path))[0]
        row = dict(name=name, config=path,
                   workers=cfg.train_dataloader.num_workers)
        if is_latent(cfg):
            seconds, store = encode_once(cfg, args)
            n = LatentStore(store).split_record('train')['num_samples']
            row.update(encode_s=seconds, encode_img_s=n / seconds,
                       store=store)
            print(f'{name}: encoded {n} training images (x2 views) once in '
                  f'{seconds:.1f} s ({n / seconds:.1f} img/s)', flush=True)
        data_s, step_s, params, other, peak = time_training(cfg, args)
        total = sum(data_s) + sum(step_s)
        row.update(params_m=params / 1e6,
                   img_per_s=args.batch_size * len(step_s) / total,
                   data_s=statistics.median(data_s),
                   step_s=statistics.median(step_s),
                   data_fraction=sum(data_s) / total,
                   other_cores=other,
                   peak_mib=None if peak is None else peak / MIB,
                   iterations=[dict(data=d, step=s)
                               for d, s in zip(data_s, step_s)])
        rows.append(row)
        print(f'{name}: {row["img_per_s"]:.2f} img/s end to end; median '
              f'data wait {row["data_s"]:.3f} s, step {row["step_s"]:.3f} '
              f's per iteration', flush=True)
    table = format_table(rows, args)
    print(table, flush=True)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(dict(command=' '.join([TOOL] + list(argv)),
                           device=device_name(args), loadavg_end=loadavg(),
                           torch=torch.__version__,
                           precision=precision(args),
                           batch_size=args.batch_size,
                           img_size=args.img_size,
                           source_size=args.source_size,
                           results=rows, table=table), f, indent=2)
        print(f'wrote {args.out}', flush=True)
    return rows


def precision(args) -> str:
    text = args.amp or 'fp32'
    return text + ', compiled' if args.compile else text


def fmt_cores(cores):
    return '-' if cores is None else f'{cores:.2f}'


def format_table(rows, args):
    first = rows[0]['img_per_s']
    memory = any(r.get('peak_mib') is not None for r in rows)
    header = (f'{"config":<34}{"workers":>8}{"img/s":>9}{"x":>8}'
              f'{"data s/it":>11}{"step s/it":>11}{"data %":>8}'
              f'{"encode once":>14}{"others":>8}')
    if memory:
        header += f'{"peak MiB":>10}'
    lines = [header, '-' * len(header)]
    for r in rows:
        once = (f'{r["encode_s"]:.0f} s' if 'encode_s' in r else '-')
        line = (
            f'{r["name"]:<34}{r["workers"]:>8}{r["img_per_s"]:>9.2f}'
            f'{r["img_per_s"] / first:>7.2f}x{r["data_s"]:>11.3f}'
            f'{r["step_s"]:>11.3f}{100 * r["data_fraction"]:>7.0f}%'
            f'{once:>14}{fmt_cores(r["other_cores"]):>8}')
        if memory:
            peak = r.get('peak_mib')
            line += f'{"-" if peak is None else f"{peak:.0f}":>10}'
        lines.append(line)
    lines.append(
        f'end to end: config train dataloader (files, pipeline, workers) + '
        f'model.train_step; batch {args.batch_size}, {args.img_size}x'
        f'{args.img_size}, {precision(args)}, {args.steps} timed iterations '
        f'after {args.warmup} warm-up; x = vs the first row; data = waiting '
        f'for the next batch; encode once = latent store, paid once; '
        f'others = CPU cores used by other processes while timed'
        + ('; peak MiB = torch.cuda.max_memory_allocated over the timed '
           'iterations' if memory else ''))
    return '\n'.join(lines)
