"""Encode a config's data once with its frozen codec encoder (a latent store).

    python tools/dataset_converters/encode_latents.py configs/ci2p_vit_animals10.py
    torchrun --nproc_per_node 8 tools/dataset_converters/encode_latents.py CONFIG --launcher pytorch

For every split the config lists (train, val, test; the image config's or,
for a ``*_latents.py`` config, the ``source`` of its ``LatentDataset``), the
split's own pipeline (loading and resizing) prepares each image as training
would, ``CI2PDataPreprocessor`` scales it to RGB in [0, 1], and the model's
``CI2PEncoder`` encodes it, and its horizontal flip when the pipeline has
``RandomFlip``. The store format is described in
:mod:`ci2p_mm.datasets.latents`.

Work goes in chunks of samples; each finished chunk is logged, so a killed
run started again skips what is done. Processes (``--launcher pytorch``)
take chunks round-robin and write disjoint rows of the same files. A file
the image path would refuse stops the run with the same error, unless the
split's dataset says ``skip_bad_images=True``: then it is recorded in the
store and ``LatentDataset`` treats it as the image datasets do.
"""
import argparse
import datetime
import glob
import json
import os
import os.path as osp
import shutil
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

#: Transforms that give one fixed image per file (storable); RandomFlip is
#: handled by storing both views.
FIXED_TRANSFORMS = ('SafeLoadImageFromFile', 'LoadImageRGB',
                    'LoadImageFromFile', 'Resize', 'ResizeEdge', 'CenterCrop',
                    'PackInputs')


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Encode a config\'s train/val/test images once with its '
        'frozen codec encoder into a latent store (see docs/latents.md).')
    parser.add_argument('config', help='a CI2P config (image or *_latents)')
    parser.add_argument(
        '--out', help='store folder (default: the latent config\'s store, '
        'else <data_root>/latents/<codec>-q<quality>-<size>[-<storage>])')
    parser.add_argument('--storage', choices=['fp16', 'quantized'],
                        default='fp16',
                        help='fp16: exact to fp16 precision; quantized: the '
                        'codec\'s round(y) as int8, half the bytes')
    parser.add_argument('--splits', nargs='+',
                        help='only these splits (default: all the config '
                        'lists)')
    parser.add_argument('--batch-size', type=int, default=32,
                        help='images per encoder forward')
    parser.add_argument('--chunk-size', type=int, default=256,
                        help='samples per resumable unit of work')
    parser.add_argument('--num-workers', type=int, default=2,
                        help='DataLoader workers decoding and resizing')
    parser.add_argument('--device', default=None,
                        help='default: cuda:<local rank> if available')
    parser.add_argument('--launcher', choices=['none', 'pytorch'],
                        default='none')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace a store of another codec, size or '
                        'storage, or a stale split, instead of refusing')
    parser.add_argument('--no-pretrained', action='store_true',
                        help='random codec weights (for timing only)')
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as tools/train.py')
    return parser.parse_args(argv)


# ---- what to encode ----------------------------------------------------


def _type_name(transform: dict) -> str:
    return str(transform.get('type', '')).split('.')[-1]


def encoding_pipeline(pipeline: List[dict], split: str) -> Tuple[list, bool]:
    """The split's pipeline without ``RandomFlip``, and whether it flips.

    Only deterministic loading/resizing can be stored; the flip is stored
    as a second view, so it must come after the resizing.
    """
    kept, flips = [], False
    for pos, transform in enumerate(pipeline):
        name = _type_name(transform)
        if name == 'RandomFlip':
            direction = transform.get('direction', 'horizontal')
            prob = transform.get('prob', 0.5)
            later = [_type_name(t) for t in pipeline[pos + 1:]]
            if (direction != 'horizontal' or not isinstance(prob, (int, float))
                    or any(t != 'PackInputs' for t in later)):
                raise ValueError(
                    f'The {split} pipeline has {transform}: latents store an '
                    f'image and its horizontal flip, so only '
                    f'RandomFlip(direction="horizontal", prob=p) right before '
                    f'PackInputs can be stored.')
            flips = prob > 0
            continue
        if name not in FIXED_TRANSFORMS:
            raise ValueError(
                f'The {split} pipeline has {name}: a latent store holds one '
                f'fixed image per file (plus its horizontal flip), so only '
                f'{", ".join(FIXED_TRANSFORMS)} and RandomFlip can be '
                f'encoded. Train from images for random augmentation.')
        kept.append(transform)
    return kept, flips


def image_datasets(cfg) -> Dict[str, dict]:
    """``{split: image dataset cfg}`` of the config's train/val/test loaders
    (a ``LatentDataset``'s ``source``), first occurrence first."""
    from ci2p_mm.datasets.latents import split_key
    found = {}
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = (cfg.get(loader) or {}).get('dataset')
        if not dataset:
            continue
        if _type_name(dataset) == 'LatentDataset':
            dataset = dataset['source']
        found.setdefault(split_key(dataset), dataset.to_dict()
                         if hasattr(dataset, 'to_dict') else dict(dataset))
    return found


def configured_store(cfg) -> Optional[str]:
    """The store a latent config's train dataset reads, resolved."""
    dataset = (cfg.get('train_dataloader') or {}).get('dataset') or {}
    if _type_name(dataset) != 'LatentDataset':
        return None
    store = dataset['store']
    root = dataset['source'].get('data_root') or ''
    return store if osp.isabs(store) else osp.join(root, store)


# ---- reading images in workers ----------------------------------------


class _ReadImages(Dataset):
    """Pipeline output per index; a refused file comes back as its reason
    (exceptions do not cross worker processes intact)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        from ci2p_mm.datasets import BadImageError
        try:
            return index, self.dataset[index]['inputs'], None
        except BadImageError as err:
            return index, None, (err.path, err.reason)


def _collate(batch):
    return batch


# ---- the run -----------------------------------------------------------


class Encoder:
    """The config model's CI2P encoder and the image preprocessor."""

    def __init__(self, config, cfg_options, device, no_pretrained=False):
        from mmpretrain.registry import MODELS

        from ci2p_mm.analysis.benchmark import quiet_init_weights
        from ci2p_mm.datasets.latents import find_ci2p_encoders
        from ci2p_mm.utils import load_model_config
        model_cfg = load_model_config(config, cfg_options,
                                      no_pretrained=no_pretrained)
        # A *_latents config's model takes latents; here it encodes images.
        model_cfg.model.backbone.patch_cfg.latent_input = False
        model = MODELS.build(model_cfg.model)
        quiet_init_weights(model)
        encoders = find_ci2p_encoders(model)
        if len(encoders) != 1:
            raise ValueError(f'{config}: the model has {len(encoders)} '
                             f'CI2P encoders; encoding needs exactly one.')
        self.module = encoders[0].to(device).eval()
        if not self.module.frozen:
            raise ValueError(
                f'{config}: the codec encoder is trained '
                f'(patch_cfg.frozen=False), so its latents change every step '
                f'and cannot be stored.')
        pre = model_cfg.model.get('data_preprocessor') or {}
        if _type_name(pre) != 'CI2PDataPreprocessor':
            pre = dict(type='CI2PDataPreprocessor')
        self.preprocessor = MODELS.build(dict(pre)).to(device)
        self.device = device

    @torch.inference_mode()
    def __call__(self, images: List[torch.Tensor], flips: bool,
                 batch_size: int) -> List[torch.Tensor]:
        """``[n, V, 192, h, w]`` float32 latents of uint8 BGR images."""
        out = []
        for start in range(0, len(images), batch_size):
            x = self.preprocessor(
                dict(inputs=[im.to(self.device)
                             for im in images[start:start + batch_size]]),
                training=False)['inputs']
            views = [self.module(x)]
            if flips:
                views.append(self.module(x.flip(-1)))
            out.append(torch.stack(views, 1).float().cpu())
        return torch.cat(out)


def to_storage(latents: torch.Tensor, storage: str) -> Tuple[np.ndarray, int]:
    """Latents as stored, and how many values were clipped."""
    if storage == 'fp16':
        return latents.half().numpy(), 0
    from ci2p_mm.datasets.latents import QUANTIZED_LIMIT
    rounded = latents.round()
    clipped = int((rounded.abs() > QUANTIZED_LIMIT).sum())
    return rounded.clamp(-QUANTIZED_LIMIT, QUANTIZED_LIMIT).to(
        torch.int8).numpy(), clipped


def store_record(encoder, args, img_size, config) -> dict:
    from ci2p_mm.datasets.latents import FORMAT_VERSION, codec_identity
    return dict(
        format_version=FORMAT_VERSION,
        codec=codec_identity(encoder.module),
        img_size=list(img_size),
        storage=args.storage,
        chunk_size=args.chunk_size,
        config=osp.abspath(config),
        created=datetime.datetime.now().isoformat(timespec='seconds'),
        splits={})


def differences(existing: dict, wanted: dict) -> List[str]:
    keys = ('format_version', 'codec', 'img_size', 'storage', 'chunk_size')
    return [f'{k}: store {existing.get(k)!r}, now {wanted[k]!r}'
            for k in keys if existing.get(k) != wanted[k]]


def first_readable(dataset, skip: bool):
    from ci2p_mm.datasets import BadImageError
    for index in range(len(dataset)):
        try:
            return dataset[index]['inputs']
        except BadImageError:
            if not skip:
                raise
    raise RuntimeError('No readable image in the split.')


def prepare_split(store, split, ds_cfg, encoder, args, rank):
    """Open (rank 0: create or check) the store and the split's files."""
    from ci2p_mm.datasets.latents import (LATENT_VIEWS, STORAGES,
                                          LatentStoreError,
                                          build_source_dataset)
    from ci2p_mm.utils.io import file_sha256
    pipeline, flips = encoding_pipeline(ds_cfg.get('pipeline', []), split)
    dataset = build_source_dataset(ds_cfg, pipeline)
    skip = bool(ds_cfg.get('skip_bad_images', False))
    sample = first_readable(dataset, skip)
    img_size = tuple(sample.shape[-2:])
    views = LATENT_VIEWS[:2 if flips else 1]
    split_record = dict(
        ann_file=osp.abspath(dataset.ann_file),
        ann_sha256=file_sha256(dataset.ann_file),
        num_samples=len(dataset), views=list(views),
        skip_bad_images=skip)
    if rank == 0:
        wanted = store_record(encoder, args, img_size, args.config)
        if store.exists():
            diff = differences(store.record, wanted)
            if diff and not args.overwrite:
                raise LatentStoreError(
                    f'{store.root} holds a store for another setting ('
                    f'{"; ".join(diff)}). Use another --out, or --overwrite '
                    f'to replace it.')
            if diff:
                shutil.rmtree(store.root)
                del store._record
        if not store.exists():
            store.write_record(wanted)
        record = store.record
        old = record['splits'].get(split)
        if old is not None and old != split_record:
            if not args.overwrite:
                raise LatentStoreError(
                    f'{store.root}: split {split!r} was encoded from '
                    f'{old["ann_file"]} with {old["num_samples"]} samples '
                    f'(views {old["views"]}) and the config now gives '
                    f'{split_record["ann_file"]} with '
                    f'{split_record["num_samples"]} (views '
                    f'{split_record["views"]}), or the file changed: the '
                    f'split is stale. Re-encode it with --overwrite.')
            for path in [store.array_path(split), store.labels_path(split)
                         ] + glob.glob(store.done_log(split, '*')):
                if osp.exists(path):
                    os.remove(path)
            old = None
        if old is None:
            c, h, w = encoder_out_shape(encoder, sample)
            np.lib.format.open_memmap(
                store.array_path(split), mode='w+',
                dtype=STORAGES[args.storage],
                shape=(len(dataset), len(views), c, h, w)).flush()
            np.save(store.labels_path(split),
                    np.asarray(dataset.get_gt_labels(), dtype=np.int64))
            record['splits'][split] = split_record
            store.write_record(record)
    return dataset, flips, skip


def encoder_out_shape(encoder, sample) -> Tuple[int, int, int]:
    latent = encoder([sample], flips=False, batch_size=1)
    return tuple(latent.shape[2:])


def encode_split(store, split, dataset, flips, skip, encoder, args, rank,
                 world_size) -> dict:
    """Encode this rank's missing chunks of one split."""
    from tqdm import tqdm

    from ci2p_mm.datasets import BadImageError
    store._arrays.clear()
    chunk = store.record['chunk_size']
    n = len(dataset)
    done, _ = store.progress(split)
    todo = [c for c in range(store.num_chunks(split))
            if c % world_size == rank and c not in done]
    batches = [list(range(c * chunk, min(n, (c + 1) * chunk))) for c in todo]
    loader = DataLoader(_ReadImages(dataset), batch_sampler=batches,
                        num_workers=args.num_workers, collate_fn=_collate)
    array = np.load(store.array_path(split), mmap_mode='r+')
    log_path = store.done_log(split, rank)
    stats = dict(encoded=0, bad=0, clipped=0, seconds=0.)
    start = time.perf_counter()
    bar = tqdm(total=sum(map(len, batches)), desc=f'encode {split}',
               disable=args.no_progress or rank != 0, dynamic_ncols=True)
    for chunk_index, items in zip(todo, loader):
        bad = {}
        good = [(i, img) for i, img, _ in items if img is not None]
        for i, _, failure in items:
            if failure is not None:
                if not skip:
                    raise BadImageError(*failure)
                bad[i] = failure[1]
        if good:
            latents = encoder([img for _, img in good], flips,
                              args.batch_size)
            values, clipped = to_storage(latents, args.storage)
            array[[i for i, _ in good]] = values
            stats['clipped'] += clipped
        else:
            clipped = 0
        array.flush()
        commit_chunk(log_path, dict(chunk=chunk_index, bad=bad,
                                    clipped=clipped))
        stats['encoded'] += len(items)
        stats['bad'] += len(bad)
        bar.update(len(items))
    bar.close()
    stats['seconds'] = time.perf_counter() - start
    return stats


def commit_chunk(log_path: str, entry: dict) -> None:
    """Append a finished chunk to this rank's log, durably. A line cut by
    a kill (no newline) is ended first, so it cannot swallow this one."""
    with open(log_path, 'ab+') as f:
        f.seek(0, os.SEEK_END)
        if f.tell():
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b'\n':
                f.write(b'\n')
        f.write(json.dumps(entry).encode() + b'\n')
        f.flush()
        os.fsync(f.fileno())


def setup_distributed(args) -> Tuple[int, int, str]:
    from mmengine.dist import get_dist_info, init_dist
    if args.launcher == 'pytorch':
        if torch.cuda.is_available():
            init_dist('pytorch')
        else:
            torch.distributed.init_process_group(backend='gloo')
    rank, world_size = get_dist_info()
    device = args.device or (f'cuda:{torch.cuda.current_device()}'
                             if torch.cuda.is_available() else 'cpu')
    return rank, world_size, device


def main(argv=None) -> str:
    """Encode; return the store folder."""
    from mmengine.config import Config
    from mmengine.dist import barrier

    import ci2p_mm  # noqa: F401  registers datasets and transforms
    from ci2p_mm.datasets.latents import LatentStore, default_store_name
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    rank, world_size, device = setup_distributed(args)
    encoder = Encoder(args.config, args.cfg_options, device,
                      args.no_pretrained)
    splits = image_datasets(cfg)
    if args.splits:
        missing = sorted(set(args.splits) - set(splits))
        if missing:
            raise SystemExit(f'{args.config} has no split(s) {missing}; it '
                             f'has {sorted(splits)}.')
        splits = {k: v for k, v in splits.items() if k in args.splits}

    out = args.out or (configured_store(cfg) if args.storage == 'fp16'
                       else None)
    summary = {}
    for split, ds_cfg in splits.items():
        if out is None:
            probe = encoding_pipeline(ds_cfg.get('pipeline', []), split)[0]
            from ci2p_mm.datasets.latents import build_source_dataset
            dataset = build_source_dataset(ds_cfg, probe)
            size = tuple(first_readable(
                dataset, ds_cfg.get('skip_bad_images', False)).shape[-2:])
            out = osp.join(dataset.data_root or '', 'latents',
                           default_store_name(encoder.module.codec,
                                              encoder.module.quality, size,
                                              args.storage))
        store = LatentStore(out)
        dataset, flips, skip = prepare_split(store, split, ds_cfg, encoder,
                                             args, rank)
        barrier()
        store = LatentStore(out)  # re-read what rank 0 wrote
        stats = encode_split(store, split, dataset, flips, skip, encoder,
                             args, rank, world_size)
        barrier()
        summary[split] = stats
        if rank == 0:
            bad = store.check_complete(split)
            size = osp.getsize(store.array_path(split))
            rate = (stats['encoded'] / stats['seconds']
                    if stats['seconds'] else float('nan'))
            print(f'{split}: {len(dataset)} samples x '
                  f'{len(store.split_record(split)["views"])} view(s) in '
                  f'{store.array_path(split)} ({size / 2**20:.1f} MiB, '
                  f'{size / len(dataset) / 1024:.1f} KiB per image); this '
                  f'run encoded {stats["encoded"]} in {stats["seconds"]:.1f}'
                  f' s ({rate:.1f} img/s per process); '
                  f'{len(bad)} bad file(s) recorded'
                  + (f', {stats["clipped"]} values clipped to int8'
                     if args.storage == 'quantized' else ''), flush=True)
    if rank == 0:
        print(f'Latent store: {out}', flush=True)
    return out
