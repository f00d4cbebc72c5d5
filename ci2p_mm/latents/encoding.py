"""Encode a config's data once with its frozen codec encoder (a latent store).

    python tools/dataset_converters/encode_latents.py \
        configs/ci2p_vit_animals10.py
    torchrun --nproc_per_node 8 \
        tools/dataset_converters/encode_latents.py CONFIG --launcher pytorch

or, from Python, :func:`encode` (``encode(Config.fromfile(path))``).

For every split the config lists (train, val, test; the image config's or,
for a ``*_latents.py`` config, the ``source`` of its ``LatentDataset``), the
split's own pipeline (loading and resizing) prepares each image as training
would, ``CI2PDataPreprocessor`` scales it to RGB in [0, 1], and the model's
``CI2PEncoder`` encodes it, and its horizontal flip when the pipeline has
``RandomFlip``. The store format is described in
:mod:`ci2p_mm.latents.store`.

Work goes in chunks of samples; each finished chunk is logged, so a killed
run started again skips what is done. Processes (``--launcher pytorch``)
take chunks round-robin and write disjoint rows of the same files; a second
encode of the same store is refused while one runs. A file the image path
would refuse stops the run with the same error, unless the split's dataset
says ``skip_bad_images=True``: then it is recorded in the store and
``LatentDataset`` treats it as the image datasets do. Latents that are not
finite (a broken codec), or beyond float16's range with fp16 storage, stop
the run naming the images: nothing is stored as Inf.
"""
import argparse
import collections
import contextlib
import dataclasses
import datetime
import json
import math
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.device import get_device
from mmengine.dist import barrier, get_dist_info, init_dist
from mmpretrain.registry import MODELS
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ci2p_mm.datasets import BadImageError
from ci2p_mm.datasets.robust import next_readable
from ci2p_mm.models.utils import CI2PDataPreprocessor
from ci2p_mm.utils import (load_model_config, quiet_init_weights, read_config,
                           set_patch_options)
from ci2p_mm.utils.cli import torch_device
from ci2p_mm.utils.io import file_sha256, size_text
from ci2p_mm.utils.locks import ProcessLock
from .dataset import build_source_dataset
from .store import (FORMAT_VERSION, FP16_MAX, LATENT_VIEWS, QUANTIZED_LIMIT,
                    STORAGES, LatentConfigError, LatentStore, LatentStoreError,
                    codec_identity, default_store_name, find_ci2p_encoders,
                    source_stamp, split_key)

#: Transforms that give one fixed image per file (storable); RandomFlip is
#: handled by storing both views.
FIXED_TRANSFORMS = ('SafeLoadImageFromFile', 'LoadImageRGB',
                    'LoadImageFromFile', 'Resize', 'ResizeEdge', 'CenterCrop',
                    'PackInputs')
#: What a store must have been written with to be resumed or extended.
SETTINGS = ('format_version', 'codec', 'img_size', 'storage', 'chunk_size')

# ---- what to encode ----------------------------------------------------


def _type_name(transform: dict) -> str:
    return str(transform.get('type', '')).split('.')[-1]


def encoding_pipeline(pipeline: List[dict], split: str) -> Tuple[list, bool]:
    """The split's pipeline without ``RandomFlip``, and whether it flips.

    Only deterministic loading/resizing can be stored; the flip is stored
    as a second view, so it must come after the resizing.
    """
    names = [_type_name(t) for t in pipeline]
    flips = False
    for pos, (name, transform) in enumerate(zip(names, pipeline)):
        if name == 'RandomFlip':
            prob = transform.get('prob', 0.5)
            horizontal = transform.get('direction',
                                       'horizontal') == 'horizontal'
            last = not set(names[pos + 1:]) - {'PackInputs'}
            if not (horizontal and isinstance(prob, (int, float)) and last):
                raise LatentConfigError(
                    f'The {split} pipeline has {transform}: latents store '
                    f'an image and its horizontal flip, so only '
                    f'RandomFlip(direction="horizontal", prob=p) right '
                    f'before PackInputs can be stored.')
            flips = flips or prob > 0
        elif name not in FIXED_TRANSFORMS:
            raise LatentConfigError(
                f'The {split} pipeline has {name}: a latent store holds one '
                f'fixed image per file (plus its horizontal flip), so only '
                f'{", ".join(FIXED_TRANSFORMS)} and RandomFlip can be '
                f'encoded. Train from images for random augmentation.')
    return [t for t, n in zip(pipeline, names) if n != 'RandomFlip'], flips


def image_datasets(cfg: Config) -> Dict[str, dict]:
    """``{split: image dataset cfg}`` of the config's train/val/test loaders
    (a ``LatentDataset``'s ``source``), first occurrence first."""
    found = {}
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = (cfg.get(loader) or {}).get('dataset')
        if dataset and _type_name(dataset) == 'LatentDataset':
            dataset = dataset['source']
        if dataset:
            found.setdefault(split_key(dataset), dict(dataset))
    return found


def configured_store(cfg: Config) -> Optional[str]:
    """The store a latent config's train dataset reads, resolved."""
    dataset = (cfg.get('train_dataloader') or {}).get('dataset') or {}
    if _type_name(dataset) != 'LatentDataset':
        return None
    # An absolute store path stays as it is.
    return osp.join(dataset['source'].get('data_root') or '', dataset['store'])


# ---- reading images in workers ----------------------------------------


class _ReadImages(Dataset):
    """Per index: the file, the pipeline's output and the file's stamp; a
    refused file comes back as its reason (exceptions do not cross worker
    processes intact)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __getitem__(self, index):
        path = self.dataset.get_data_info(index).get('img_path')
        try:
            inputs = self.dataset[index]['inputs']
        except BadImageError as err:
            return index, path, None, (err.path, err.reason), (0, 0, b'')
        # Hashed after decoding: the loader has refused whatever is not a
        # regular image file of sane size by then.
        return index, path, inputs, None, source_stamp(path)


# ---- the encoder -------------------------------------------------------


class CodecEncoder:
    """The config model's CI2P encoder and the image preprocessor."""

    def __init__(self, cfg: Config, device: str):
        model_cfg = load_model_config(cfg)
        # A *_latents config's model takes latents; here it encodes images.
        if not set_patch_options(model_cfg, latent_input=False):
            raise LatentStoreError(
                f'{cfg.filename}: the model\'s backbone is not a CI2P one, '
                f'so there is no codec encoder to store latents of.')
        model = MODELS.build(model_cfg.model)
        quiet_init_weights(model)
        encoders = find_ci2p_encoders(model)
        if len(encoders) != 1:
            raise LatentStoreError(
                f'{cfg.filename}: the model has {len(encoders)} CI2P '
                f'encoders; encoding needs exactly one.')
        self.module = encoders[0].to(device).eval()
        if not self.module.frozen:
            raise LatentStoreError(
                f'{cfg.filename}: the codec encoder is trained '
                f'(patch_cfg.frozen=False), so its latents change every step '
                f'and cannot be stored.')
        pre = model.data_preprocessor  # a *_latents model's takes latents
        self.preprocessor = (pre if isinstance(pre, CI2PDataPreprocessor) else
                             CI2PDataPreprocessor()).to(device)
        self.device = device

    @torch.inference_mode()
    def __call__(self, images: List[torch.Tensor], flips: bool,
                 batch_size: int) -> torch.Tensor:
        """``[n, V, 192, h, w]`` float32 latents of uint8 BGR images."""
        out = []
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            x = self.preprocessor(
                dict(inputs=[im.to(self.device) for im in batch]),
                training=False)['inputs']
            views = [self.module(x)]
            if flips:
                views.append(self.module(x.flip(-1)))
            out.append(torch.stack(views, 1).float().cpu())
        return torch.cat(out)


def to_storage(latents: torch.Tensor, storage: str, paths: Sequence[str],
               config: str) -> Tuple[np.ndarray, int]:
    """Latents as stored, and how many values were clipped. NaN/Inf
    latents (a broken codec) and, for fp16 storage, values beyond
    float16's range are refused, naming the images."""
    peaks = latents.flatten(1).abs().amax(1).tolist()  # NaN, Inf propagate
    broken = [p for p, peak in zip(paths, peaks) if not math.isfinite(peak)]
    if broken:
        raise LatentStoreError(
            f'The codec encoder of {config} gives NaN/Inf latents for '
            f'{len(broken)} image(s) ({", ".join(broken[:3])}): its weights '
            f'are broken (a diverged or damaged codec checkpoint, see '
            f'model.backbone.patch_cfg.pretrained). Nothing was stored for '
            f'them.')
    over = [p for p, peak in zip(paths, peaks) if peak > FP16_MAX]
    if storage == 'fp16' and over:
        raise LatentStoreError(
            f'Latents of {len(over)} image(s) ({", ".join(over[:3])}) reach '
            f'|y| = {max(peaks):.4g}, beyond float16\'s range '
            f'({FP16_MAX:.0f}): stored as fp16 they would become Inf. '
            f'Encode with --storage fp32 --overwrite (exact, twice the '
            f'bytes), or check the codec weights.')
    if storage != 'quantized':
        return (latents.half() if storage == 'fp16' else latents).numpy(), 0
    rounded = latents.round()
    clipped = int((rounded.abs() > QUANTIZED_LIMIT).sum())
    return rounded.clamp(-QUANTIZED_LIMIT,
                         QUANTIZED_LIMIT).to(torch.int8).numpy(), clipped


# ---- the store's files -------------------------------------------------


def prepare_split(split: str, ds_cfg: dict,
                  encoder: CodecEncoder) -> Tuple[object, tuple, dict]:
    """The split's image dataset (the pipeline without ``RandomFlip``),
    its image size and its record in the store."""
    pipeline, flips = encoding_pipeline(ds_cfg.get('pipeline', []), split)
    dataset = build_source_dataset(ds_cfg, pipeline)
    skip = bool(ds_cfg.get('skip_bad_images', False))

    def load(index: int) -> torch.Tensor:
        return dataset[index]['inputs']

    try:  # the first readable image: its size and its latent's shape
        sample = next_readable(0, len(dataset), load,
                               f'split {split!r}')[0] if skip else load(0)
    except RuntimeError as err:  # none is
        raise LatentStoreError(str(err)) from None
    latent_shape = encoder([sample], flips=False, batch_size=1).shape[2:]
    return dataset, tuple(sample.shape[-2:]), dict(
        ann_file=osp.abspath(dataset.ann_file),
        ann_sha256=file_sha256(dataset.ann_file),
        num_samples=len(dataset),
        views=list(LATENT_VIEWS[:2 if flips else 1]),
        latent_shape=[int(s) for s in latent_shape],
        skip_bad_images=skip)


@dataclasses.dataclass
class StoreWriter:
    """Creates or checks the store and its splits' files, then encodes
    this process's share of each split."""
    store: LatentStore
    encoder: CodecEncoder
    storage: str
    chunk_size: int
    batch_size: int
    num_workers: int
    overwrite: bool
    progress: bool
    config: str

    def __post_init__(self):
        self.rank, self.world_size = get_dist_info()
        self.writable = self.store.writable()

    def require_writable(self, why: str) -> None:
        """Refuse, in one line, a write into a store that cannot be
        written (a complete store is used without writing)."""
        if not self.writable:
            raise LatentStoreError(
                f'The latent store {self.store.root} cannot be written (a '
                f'read-only file system, or no write permission), and {why}. '
                f'Encode into a writable folder (--out), or make it '
                f'writable; a complete store is used without writing.')

    def create_or_check(self, split: str, dataset, img_size: tuple,
                        split_record: dict) -> None:
        """Rank 0: create the store and the split's files, or check that
        those there were written with these settings."""
        store = self.store
        record = dict(
            format_version=FORMAT_VERSION,
            codec=codec_identity(self.encoder.module),
            img_size=list(img_size),
            storage=self.storage,
            chunk_size=self.chunk_size,
            config=osp.abspath(self.config) if self.config else None,
            created=datetime.datetime.now().isoformat(timespec='seconds'),
            splits={})
        try:
            existing = store.record if store.exists() else None
        except LatentStoreError:
            if not self.overwrite:
                raise
            existing = None  # unreadable: replaced
        diff = [
            f'{k}: store {existing[k]!r}, now {record[k]!r}' for k in SETTINGS
            if existing and existing[k] != record[k]
        ]
        if diff and not self.overwrite:
            raise LatentStoreError(
                f'{store.root} holds a store for another setting ('
                f'{"; ".join(diff)}). Use another --out, or --overwrite '
                f'to replace it.')
        old = existing['splits'].get(split) if existing and not diff else None
        # The annotation file's content decides, not its path (data move).
        if old and dict(old, ann_file='') != dict(split_record, ann_file=''):
            if not self.overwrite:
                raise LatentStoreError(
                    f'{store.root}: split {split!r} was encoded from '
                    f'{old["ann_file"]} with {old["num_samples"]} samples '
                    f'(views {old["views"]}) and the config now gives '
                    f'{split_record["ann_file"]} with '
                    f'{split_record["num_samples"]} (views '
                    f'{split_record["views"]}), or the file changed: the '
                    f'split is stale. Re-encode it with --overwrite.')
            old = None
        if old:
            return  # encoded with these settings: nothing to write
        self.require_writable(f'split {split!r} must be created')
        try:
            if not existing or diff:  # a new store, or one that is replaced
                store.remove_files()
                store.write_record(record)
            store.create_split(split, split_record, dataset.get_gt_labels())
        except OSError as err:
            raise store.cannot_write(err) from None

    def encode_split(self, split: str, dataset,
                     split_record: dict) -> collections.Counter:
        """Encode this rank's missing chunks of one split."""
        store, chunk, n = self.store, self.chunk_size, len(dataset)
        flips = len(split_record['views']) > 1
        skip = split_record['skip_bad_images']
        done, _, _ = store.progress(split)
        mine = range(store.num_chunks(split))[self.rank::self.world_size]
        todo = [c for c in mine if c not in done]
        stats = collections.Counter()
        if not todo:
            return stats
        self.require_writable(f'split {split!r} has {len(todo)} chunk(s) to '
                              f'encode')
        batches = [range(c * chunk, min(n, (c + 1) * chunk)) for c in todo]
        loader = DataLoader(
            _ReadImages(dataset),
            batch_sampler=batches,
            num_workers=self.num_workers,
            collate_fn=list)
        array = store.array(split, mode='r+')
        sources = store.sources(split, mode='r+')
        start = time.perf_counter()
        with tqdm(
                total=sum(map(len, batches)),
                desc=f'encode {split}',
                disable=not self.progress or self.rank != 0,
                dynamic_ncols=True) as bar:
            for chunk_index, items in zip(todo, loader):
                bad, clipped = {}, 0
                for i, _, _, failure, stamp in items:
                    if failure and not skip:
                        raise BadImageError(*failure)
                    if failure:
                        bad[i] = failure[1]
                    sources[i] = stamp
                good = [item[:3] for item in items if item[2] is not None]
                if good:
                    rows, paths, images = zip(*good)
                    values, clipped = to_storage(
                        self.encoder(images, flips, self.batch_size),
                        self.storage, paths, self.config)
                    array[list(rows)] = values
                try:
                    array.flush()
                    sources.flush()
                    commit_chunk(
                        store.done_log(split, self.rank),
                        dict(chunk=chunk_index, bad=bad, clipped=clipped))
                except OSError as err:
                    raise store.cannot_write(err) from None
                stats.update(encoded=len(items), bad=len(bad), clipped=clipped)
                bar.update(len(items))
        stats['seconds'] = time.perf_counter() - start
        return stats

    def report(self, split: str, stats: dict) -> None:
        store, seconds = self.store, stats['seconds']
        bad = store.check_complete(split)
        n, views = store.array_shape(split)[:2]
        path = store.array_path(split)
        size = osp.getsize(path)
        clipped = (f', {stats["clipped"]} values clipped to int8'
                   if self.storage == 'quantized' else '')
        print(
            f'{split}: {n} samples x {views} view(s) in {path} '
            f'({size_text(size)}, {size_text(size / max(n, 1))} per image); '
            f'this run encoded {stats["encoded"]} in {seconds:.1f} s '
            f'({stats["encoded"] / seconds if seconds else float("nan"):.1f}'
            f' img/s per process); {len(bad)} bad file(s) recorded{clipped}',
            flush=True)


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


def encode(cfg: Config,
           out: Optional[str] = None,
           storage: str = 'fp16',
           splits: Optional[Sequence[str]] = None,
           batch_size: int = 32,
           chunk_size: int = 256,
           num_workers: int = 2,
           device: Optional[str] = None,
           overwrite: bool = False,
           progress: bool = True) -> str:
    """Encode the splits of ``cfg`` (an image or ``*_latents`` config) into a
    latent store and return its folder.

    Args:
        cfg (Config): The config, with any overrides merged (set
            ``model.backbone.patch_cfg.pretrained`` for other codec
            weights; :func:`ci2p_mm.utils.set_patch_options`).
        out (str, optional): Store folder. Default: the latent config's
            store, else
            ``<data_root>/latents/<codec>-q<q>-<size>[-<storage>]``.
        storage (str): ``'fp16'``, ``'fp32'`` or ``'quantized'`` (see
            :mod:`ci2p_mm.latents.store`).
        splits (list[str], optional): Only these splits.
        batch_size (int): Images per encoder forward.
        chunk_size (int): Samples per resumable unit of work.
        num_workers (int): DataLoader workers decoding and resizing.
        device (str, optional): Default: mmengine's ``get_device()``
            (``cuda``, the current one, if available).
        overwrite (bool): Replace a store of another codec, size or storage,
            or a stale split, instead of refusing (deleting only the
            store's own files; a folder holding others' is refused).
        progress (bool): Show a progress bar.
    """
    if storage not in STORAGES:
        raise LatentStoreError(f'storage={storage!r}: choose one of '
                               f'{sorted(STORAGES)}.')
    # Checked before anything is written: chunk_size=0 would be recorded.
    minimums = dict(
        batch_size=(batch_size, 1),
        chunk_size=(chunk_size, 1),
        num_workers=(num_workers, 0))
    for name, (value, least) in minimums.items():
        if value < least:
            raise LatentStoreError(f'{name}={value}: must be at least {least} '
                                   f'(--{name.replace("_", "-")}).')
    found = image_datasets(cfg)
    missing = sorted(set(splits or ()) - set(found))
    if missing:
        raise LatentStoreError(f'{cfg.filename} has no split(s) {missing}; '
                               f'it has {sorted(found)}.')
    if not found:
        raise LatentStoreError(f'{cfg.filename} lists no dataset to encode.')
    # After the checks: it loads (or downloads) the codec weights.
    encoder = CodecEncoder(cfg, device or get_device())
    prepared = {
        split: prepare_split(split, ds_cfg, encoder)
        for split, ds_cfg in found.items() if not splits or split in splits
    }
    # One record, one size: refused before --overwrite could replace a
    # split's files with the next split's size.
    sizes = {split: size for split, (_, size, _) in prepared.items()}
    if len(set(sizes.values())) > 1:
        raise LatentStoreError(
            f'{cfg.filename}: the splits resize to different sizes '
            f'({sizes}) and a latent store holds one. Encode them into '
            f'separate stores (--splits SPLIT --out DIR).')
    out = out or (configured_store(cfg) if storage == 'fp16' else None)
    if not out:
        dataset, img_size, _ = next(iter(prepared.values()))
        out = osp.join(
            dataset.data_root or '', 'latents',
            default_store_name(encoder.module.codec, encoder.module.quality,
                               img_size, storage))
    store = LatentStore(out)
    writer = StoreWriter(store, encoder, storage, chunk_size, batch_size,
                         num_workers, overwrite, progress, cfg.filename)
    if writer.rank == 0 and not store.exists():  # before the lock goes in
        store.refuse_foreign_entries('write a latent store into it')
    # Rank 0 holds the store's encode.lock for the whole encode. A store
    # nobody can write cannot change under us: no lock to take.
    lock = contextlib.nullcontext()
    if writer.rank == 0 and writer.writable:
        lock = ProcessLock(
            store.lock_path,
            busy=lambda holder:
            (f'Another encode is writing the latent store {store.root}: '
             f'{holder}. Two encodes of one store would both do all the '
             f'work. Wait for it to end (it resumes if stopped), or pass '
             f'another --out.'),
            error=LatentStoreError)
    with lock:
        # Every split's files first: a full disk shows before hours of work.
        for split, prepared_split in prepared.items():
            if writer.rank == 0:
                writer.create_or_check(split, *prepared_split)
        barrier()
        store.forget_record()  # re-read what rank 0 wrote
        for split, (dataset, _, split_record) in prepared.items():
            stats = writer.encode_split(split, dataset, split_record)
            barrier()
            if writer.rank == 0:
                writer.report(split, stats)
    if writer.rank == 0:
        print(f'Latent store: {out}', flush=True)
    return out


# ---- the command line --------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Encode a config\'s train/val/test images once with its '
        'frozen codec encoder into a latent store (see docs/latents.md).')
    parser.add_argument('config', help='a CI2P config (image or *_latents)')
    parser.add_argument(
        '--out',
        help='store folder (default: the latent config\'s store, '
        'else <data_root>/latents/<codec>-q<quality>-<size>[-<storage>])')
    parser.add_argument(
        '--storage',
        choices=sorted(STORAGES),
        default='fp16',
        help='fp16: exact to fp16 precision; fp32: exact, twice the bytes '
        '(for codecs whose latents exceed fp16\'s range); quantized: the '
        'codec\'s round(y) as int8, half the bytes of fp16')
    parser.add_argument(
        '--splits',
        nargs='+',
        help='only these splits (default: all the config lists)')
    for flag, default, text in (('--batch-size', 32,
                                 'images per encoder forward'),
                                ('--chunk-size', 256,
                                 'samples per resumable unit of work'),
                                ('--num-workers', 2,
                                 'DataLoader workers decoding and resizing')):
        parser.add_argument(flag, type=int, default=default, help=text)
    parser.add_argument(
        '--device',
        type=torch_device,
        help='default: cuda:<local rank> if available')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch'], default='none')
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace a store of another codec, size or '
        'storage, or a stale split, instead of refusing (only the store\'s '
        'own files are deleted; a folder holding others\' is refused)')
    parser.add_argument(
        '--no-pretrained',
        action='store_true',
        help='random codec weights (for timing only)')
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, as tools/train.py')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """``tools/dataset_converters/encode_latents.py``."""
    args = parse_args(argv)
    cfg = read_config(args.config, args.cfg_options)
    if args.no_pretrained:
        set_patch_options(cfg, pretrained=False)
    if args.launcher == 'pytorch':
        # mmengine's launcher sets a CUDA device: without one, gloo.
        if torch.cuda.is_available():
            init_dist('pytorch')
        else:
            torch.distributed.init_process_group(backend='gloo')
    options = ('out', 'storage', 'splits', 'batch_size', 'chunk_size',
               'num_workers', 'device', 'overwrite')
    try:
        encode(
            cfg,
            progress=not args.no_progress,
            **{k: getattr(args, k)
               for k in options})
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return 0
