"""Latent store formats side by side: size, speed, and how exact.

    python tools/analysis_tools/benchmark.py --latent-storage \
        configs/ci2p_vit_animals10.py --data-dir work_dirs/e2e_data \
        --codec work_dirs/codec/codec_final.pth

For each storage of :mod:`ci2p_mm.datasets.latents` (``fp16``,
``quantized``) it encodes the data folder's train split with
``encode_latents`` (encoding img/s, the image and its flip), and reports
bytes per image (both views), loading img/s (``LatentDataset`` +
``LoadLatent`` in this process, one view per sample as training reads it;
next to it the image path's loading and resizing), and how far the tokens
from the store are from those of the float32 encoder output: the same
``PatchReshape`` applied to both, relative RMS and max error over the
first ``--compare`` training images.
"""
import itertools
import os.path as osp

import torch
from mmengine.registry import init_default_scope
from mmpretrain.registry import DATASETS

from ci2p_mm.latents import LatentStore, build_source_dataset
from ci2p_mm.utils.cli import at_least
from ci2p_mm.utils.timing import BlockTimer, format_table
from .end_to_end import encode_train_split, prepare_data, prepared_config
from .timing import build_model, print_header

#: The storages compared; errors are against the float32 encoder output.
STORAGES = ('fp16', 'quantized')


def add_arguments(parser):
    group = parser.add_argument_group('--latent-storage')
    add = group.add_argument
    add('--latent-storage',
        action='store_true',
        help='compare latent store formats (see '
        'ci2p_mm/analysis/latent_storage.py); one image '
        'config, data and codec as for --end-to-end')
    add('--compare',
        type=at_least(1),
        default=32,
        help='images whose tokens are compared with the float32 encoder')


def loading_rate(dataset, n: int) -> float:
    """Samples per second over ``n`` reads (one block, no warm-up), in
    order, round the dataset."""
    index = itertools.cycle(range(len(dataset)))
    return 1 / BlockTimer(lambda: dataset[next(index)]).block(n)


def run(args, argv):
    init_default_scope('mmpretrain')
    codec = prepare_data(args)
    cfg = prepared_config(args.configs[0], args, codec)
    print_header(
        args, f'{args.img_size}x{args.img_size}, codec '
        f'{codec or "CompressAI q5"}')
    # in this process, on the CPU (like the encoding's data loading)
    model = build_model(cfg, path=args.configs[0]).eval()
    encoder = model.backbone.patch_embed.ci2p_encoder
    reshape = model.backbone.patch_embed.reshape
    images = build_source_dataset(cfg.train_dataloader.dataset, [
        t for t in cfg.train_dataloader.dataset.pipeline
        if t['type'] != 'RandomFlip'
    ])
    n_cmp = min(args.compare, len(images))
    batch = [images[i]['inputs'] for i in range(n_cmp)]
    with torch.inference_mode():
        x = model.data_preprocessor(dict(inputs=batch))['inputs']
        y = encoder(x)
        tokens = reshape(y)
    image_rate = loading_rate(images, min(len(images), 64))

    rows = []
    for storage in STORAGES:
        out = osp.join(args.data_dir, 'latents', f'storage-{storage}')
        seconds = encode_train_split(cfg, out, args.batch_size,
                                     args.num_workers or 0, storage)
        store = LatentStore(out)
        n = store.split_record('train')['num_samples']
        latent_ds = DATASETS.build(
            dict(
                type='LatentDataset',
                source=cfg.train_dataloader.dataset,
                store=out,
                pipeline=[
                    dict(type='LoadLatent', flip_prob=0.5),
                    dict(type='PackInputs')
                ]))
        stored = torch.tensor(store.array('train')[:n_cmp, 0]).float()
        with torch.inference_mode():
            stored_tokens = reshape(stored)
        diff = stored_tokens - tokens
        rows.append(
            dict(
                storage=storage,
                bytes_per_image=osp.getsize(store.array_path('train')) / n,
                encode_img_s=n / seconds,
                load_img_s=loading_rate(latent_ds, min(4 * n, 512)),
                latent_rel_rms=float((stored - y).norm() / y.norm()),
                token_rel_rms=float(diff.norm() / tokens.norm()),
                token_max_abs=float(diff.abs().max()),
                token_max=float(tokens.abs().max()),
                clipped=store.progress('train')[2]))
    print(results_table(rows, image_rate, args))
    return rows


def results_table(rows, image_rate, args):
    return format_table([
        'storage', 'KiB/image', 'encode img/s', 'load img/s', 'latent rel RMS',
        'token rel RMS', 'token max err', 'clipped'
    ], [[
        r['storage'], f'{r["bytes_per_image"] / 1024:.1f}',
        f'{r["encode_img_s"]:.1f}', f'{r["load_img_s"]:.0f}',
        f'{r["latent_rel_rms"]:.2e}', f'{r["token_rel_rms"]:.2e}',
        f'{r["token_max_abs"]:.2e}', r['clipped']
    ] for r in rows]) + (
        f'\nimages (SafeLoadImageFromFile + Resize, no store): '
        f'{image_rate:.0f} img/s loading. {args.img_size}x{args.img_size}; '
        f'KiB/image with both views (image + flip); encode img/s includes '
        f'reading the JPEGs and both views; token error vs the float32 '
        f'encoder through the same PatchReshape (max |token| '
        f'{rows[0]["token_max"]:.3g}).')
