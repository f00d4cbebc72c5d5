"""Codec latents stored once, read every epoch: the store and its dataset.

CI2P's encoder is frozen, so what it computes from an image never changes
during training. ``tools/dataset_converters/encode_latents.py`` runs it once
over a config's data (its own loading and resizing) and writes a *latent
store*; :class:`LatentDataset` then feeds the stored latents to a model
built with ``patch_cfg.latent_input=True``, and every epoch is the ViT
alone.

A store is a folder (by default ``<data_root>/latents/<codec>-q<q>-<size>``)::

    record.json          codec (zoo name, quality, sha256 of g_a's weights),
                         image size, storage, and per split: the annotation
                         file and its sha256, sample count, views
    <split>.npy          [N, V, 192, H/16, W/16] (NumPy .npy, memory-mapped)
                         V = 2 (the image and its horizontal flip) for
                         splits whose pipeline flips, else 1
    <split>.labels.npy   [N] int64
    <split>.done.<rank>  one JSON line per finished chunk of samples
                         (``{"chunk": i, "bad": {index: reason}}``): a killed
                         encode resumes after the last line of each rank

Storage (``record['storage']``):

* ``'fp16'`` (default): the encoder's float32 output rounded to float16, the
  exact latent to fp16 precision (relative error <= 2**-11).
* ``'quantized'``: the codec's own quantised latent ``round(y)`` as int8
  (values outside [-127, 127] are clipped and counted in the record): half
  the bytes, an approximation (absolute error <= 0.5 per element), the
  integer grid the codec's entropy coder works on.

The store names the codec that wrote it; :class:`LatentStoreCheckHook`
refuses a model whose codec (name, quality, weights) or image size differs,
and :class:`LatentDataset` refuses a split whose annotation file changed
since encoding (stale).
"""
import glob
import hashlib
import json
import logging
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
from mmcv.transforms import BaseTransform
from mmengine.dataset import BaseDataset
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import DATASETS, HOOKS, TRANSFORMS

from ci2p_mm.utils.errors import UserError
from ci2p_mm.utils.io import file_sha256, write_text_atomically
from .robust import SkipBadImagesMixin
from .transforms import BadImageError

FORMAT_VERSION = 1
STORAGES = {'fp16': np.float16, 'quantized': np.int8}
#: Stored views of each image: as the pipeline gives it, and mirrored.
LATENT_VIEWS = ('original', 'hflip')
#: Values of the quantised latent beyond int8 are clipped (and counted).
QUANTIZED_LIMIT = 127


class LatentStoreError(UserError, RuntimeError):
    """A latent store that is missing, incomplete, stale or for another
    model."""


# ---- identities --------------------------------------------------------


def state_dict_sha256(module: nn.Module) -> str:
    """sha256 over a module's state dict: sorted keys, dtypes, shapes and
    bytes. Identical weights give the same hash on any device."""
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f'{key}|{tensor.dtype}|{list(tensor.shape)}|'.encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes()
                      if tensor.numel() else b'')
    return digest.hexdigest()


def codec_identity(encoder: nn.Module) -> dict:
    """What a store records of the :class:`CI2PEncoder` that wrote it."""
    return dict(
        name=encoder.codec,
        quality=int(encoder.quality),
        weights_sha256=state_dict_sha256(encoder.encoder))


def find_ci2p_encoders(model: nn.Module) -> List[nn.Module]:
    from ci2p_mm.models.utils import CI2PEncoder
    return [m for m in model.modules() if isinstance(m, CI2PEncoder)]


def backbone_img_size(model: nn.Module) -> Optional[Tuple[int, int]]:
    backbone = getattr(model, 'backbone', model)
    size = getattr(backbone, 'img_size', None)
    return None if size is None else tuple(int(s) for s in size)


def default_store_name(codec: str, quality: int, img_size: Sequence[int],
                       storage: str = 'fp16') -> str:
    """``<codec>-q<quality>-<size>[-<storage>]``, e.g.
    ``bmshj2018-factorized-q5-256``."""
    h, w = img_size
    size = f'{h}' if h == w else f'{h}x{w}'
    suffix = '' if storage == 'fp16' else f'-{storage}'
    return f'{codec}-q{quality}-{size}{suffix}'


def split_key(dataset_cfg: dict) -> str:
    """A split's name in the store: the dataset's ``split``, else its
    annotation file's name."""
    split = dataset_cfg.get('split')
    if split:
        return str(split)
    ann = dataset_cfg.get('ann_file') or ''
    if not ann:
        raise ValueError(
            f'Cannot name the split of {dataset_cfg.get("type")}: give it '
            f'split= or ann_file=.')
    return osp.splitext(osp.basename(ann))[0]


# ---- the store ---------------------------------------------------------


class LatentStore:
    """A latent store folder: its record, arrays and progress logs.

    Reading only maps the arrays (``mmap_mode='r'``), once per process, so
    DataLoader workers share the page cache instead of copies.
    """

    def __init__(self, root: str):
        self.root = osp.abspath(root)
        self._arrays: Dict[str, np.ndarray] = {}

    @property
    def record_path(self) -> str:
        return osp.join(self.root, 'record.json')

    def exists(self) -> bool:
        return osp.isfile(self.record_path)

    @property
    def record(self) -> dict:
        if not hasattr(self, '_record'):
            if not self.exists():
                raise LatentStoreError(
                    f'No latent store at {self.root} (no record.json). '
                    f'Write it with `python tools/dataset_converters/'
                    f'encode_latents.py CONFIG` (see docs/latents.md).')
            with open(self.record_path) as f:
                self._record = json.load(f)
        return self._record

    def write_record(self, record: dict) -> None:
        os.makedirs(self.root, exist_ok=True)
        write_text_atomically(self.record_path, json.dumps(record, indent=2))
        self._record = record

    def __getstate__(self):  # to DataLoader workers: no mapped arrays
        state = dict(self.__dict__)
        state['_arrays'] = {}
        return state

    def array_path(self, split: str) -> str:
        return osp.join(self.root, f'{split}.npy')

    def labels_path(self, split: str) -> str:
        return osp.join(self.root, f'{split}.labels.npy')

    def split_record(self, split: str) -> dict:
        splits = self.record.get('splits', {})
        if split not in splits:
            raise LatentStoreError(
                f'The latent store {self.root} has no split {split!r} '
                f'(it has {sorted(splits)}). Encode it with encode_latents.py '
                f'on a config that lists it.')
        return splits[split]

    def array(self, split: str) -> np.ndarray:
        if split not in self._arrays:
            self._arrays[split] = np.load(self.array_path(split),
                                          mmap_mode='r')
        return self._arrays[split]

    def labels(self, split: str) -> np.ndarray:
        return np.load(self.labels_path(split))

    # progress ----------------------------------------------------------
    def done_log(self, split: str, rank: int) -> str:
        return osp.join(self.root, f'{split}.done.{rank}')

    def progress(self, split: str) -> Tuple[set, Dict[int, str]]:
        """Finished chunks and the bad samples found in them, from every
        rank's log (a line cut by a kill is ignored)."""
        done, bad = set(), {}
        for path in sorted(glob.glob(osp.join(self.root,
                                              f'{split}.done.*'))):
            with open(path) as f:
                for line in f:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    done.add(int(entry['chunk']))
                    bad.update({int(k): v for k, v in entry['bad'].items()})
        return done, bad

    def num_chunks(self, split: str) -> int:
        n = self.split_record(split)['num_samples']
        size = self.record['chunk_size']
        return (n + size - 1) // size

    def check_complete(self, split: str) -> Dict[int, str]:
        """Bad samples of a fully encoded split; raise if it is not."""
        done, bad = self.progress(split)
        total = self.num_chunks(split)
        if len(done) < total:
            raise LatentStoreError(
                f'The latent store {self.root} is incomplete: split '
                f'{split!r} has {len(done)} of {total} chunks encoded (a run '
                f'was stopped). Run encode_latents.py with the same config '
                f'again: it resumes where it stopped.')
        return bad

    def check_fresh(self, split: str, ann_file: str) -> None:
        """Refuse a split whose annotation file changed since encoding."""
        recorded = self.split_record(split)
        if not osp.isfile(ann_file):
            raise LatentStoreError(
                f'Annotation file {ann_file} (split {split!r}) not found.')
        if file_sha256(ann_file) != recorded['ann_sha256']:
            raise LatentStoreError(
                f'The latent store {self.root} is stale: split {split!r} was '
                f'encoded from {recorded["ann_file"]} (sha256 '
                f'{recorded["ann_sha256"][:12]}...), and {ann_file} has '
                f'changed since (sha256 {file_sha256(ann_file)[:12]}...). '
                f'Re-encode with encode_latents.py (--overwrite), or restore '
                f'the annotation file.')

    def describe_codec(self, codec: dict, img_size) -> str:
        return (f'{codec["name"]} quality {codec["quality"]}, encoder '
                f'weights sha256 {codec["weights_sha256"][:12]}..., images '
                f'{img_size[0]}x{img_size[1]}')

    def check_model(self, model: nn.Module) -> None:
        """Refuse a model whose codec or image size is not the store's."""
        encoders = find_ci2p_encoders(model)
        if not encoders:
            raise LatentStoreError(
                f'The model has no CI2P encoder, but its data are codec '
                f'latents from {self.root}.')
        stored = self.record['codec']
        stored_size = tuple(self.record['img_size'])
        size = backbone_img_size(model) or stored_size
        for encoder in encoders:
            if not encoder.latent_input:
                raise LatentStoreError(
                    'The data are codec latents but the model encodes '
                    'images: set model.backbone.patch_cfg.latent_input=True '
                    '(as configs/*_latents.py do).')
            built = codec_identity(encoder)
            if built != stored or size != stored_size:
                raise LatentStoreError(
                    f'The latent store {self.root} was written by another '
                    f'codec than this model\'s, so its latents are not what '
                    f'this model\'s encoder computes. Store: '
                    f'{self.describe_codec(stored, stored_size)}. Model: '
                    f'{self.describe_codec(built, size)}. Encode the data '
                    f'with this model\'s config (encode_latents.py CONFIG), '
                    f'or point the dataset at the matching store.')


# ---- reading -----------------------------------------------------------


def build_source_dataset(source: dict, pipeline: Sequence) -> BaseDataset:
    """The image dataset of ``source`` with ``pipeline``, listing every
    annotated sample (bad files are the store's business, so an
    evaluation set with ``skip_bad_images`` does not decode them all)."""
    cfg = dict(source, pipeline=list(pipeline))
    if 'skip_bad_images' in cfg:
        cfg['skip_bad_images'] = False
    return DATASETS.build(cfg)



@DATASETS.register_module()
class LatentDataset(SkipBadImagesMixin, BaseDataset):
    """Samples of an image dataset, as codec latents read from a store.

    Labels, class names and file names come from the image dataset
    (``source``, exactly the image config's dataset); the inputs come from
    the latent store written for it by ``encode_latents.py``. A model fed
    by it must take latents (``patch_cfg.latent_input=True``); add
    :class:`LatentStoreCheckHook` to refuse a store of another codec.

    Args:
        source (dict): The image dataset's config (e.g. ``Animals10`` with
            ``data_root``, ``split`` and its image pipeline, which the
            encoder used).
        store (str): The store folder; relative paths are relative to the
            source's ``data_root``. E.g.
            ``'latents/bmshj2018-factorized-q5-256'``.
        pipeline (list): Transforms on the latent, e.g.
            ``[dict(type='LoadLatent', flip_prob=0.5),
            dict(type='PackInputs')]``.
        skip_bad_images (bool): Files the encoder could not decode were
            recorded in the store (when it ran with ``skip_bad_images``).
            False: reading one stops with :class:`BadImageError`; True: in
            training the next readable sample takes its place, in
            evaluation they are left out (as the image datasets do).
            Defaults to False.
        **kwargs: Other :class:`BaseDataset` arguments.
    """

    def __init__(self,
                 source: dict,
                 store: str,
                 pipeline: Sequence = (),
                 skip_bad_images: bool = False,
                 **kwargs):
        source = dict(source)
        self.source_cfg = source
        self.split = split_key(source)
        self.source_dataset = build_source_dataset(source, pipeline=[])
        data_root = self.source_dataset.data_root or ''
        self.store = LatentStore(
            store if osp.isabs(store) else osp.join(data_root, store))
        kwargs.setdefault('metainfo', self.source_dataset.metainfo)
        super().__init__(
            ann_file='',
            pipeline=list(pipeline),
            skip_bad_images=skip_bad_images,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        store, split = self.store, self.split
        ann_file = self.source_dataset.ann_file
        store.check_fresh(split, ann_file)
        bad = store.check_complete(split)
        self.bad_in_store = bad
        labels = store.labels(split)
        source = self.source_dataset
        if len(source) != len(labels):
            raise LatentStoreError(
                f'{store.root}: split {split!r} holds {len(labels)} samples, '
                f'{type(source).__name__} lists {len(source)}: re-encode.')
        data_list = []
        for index in range(len(source)):
            info = source.get_data_info(index)
            if int(info['gt_label']) != int(labels[index]):
                raise LatentStoreError(
                    f'{store.root}: split {split!r}, sample {index} '
                    f'({info.get("img_path")}) has label {labels[index]} in '
                    f'the store and {info["gt_label"]} in {ann_file}: '
                    f're-encode.')
            data_list.append(
                dict(img_path=info.get('img_path'), gt_label=info['gt_label'],
                     latent_index=index, bad_reason=bad.get(index)))
        return data_list

    def filter_data(self) -> List[dict]:
        """Evaluation sets with ``skip_bad_images`` leave out what the
        encoder could not decode (named in the log); no file is read."""
        data_list = BaseDataset.filter_data(self)
        if not (self.skip_bad_images and self.for_evaluation):
            return data_list
        self.bad_images = {d['img_path']: d['bad_reason']
                           for d in data_list if d['bad_reason']}
        if self.bad_images:
            listing = '\n'.join(f'  {p}: {r}'
                                for p, r in self.bad_images.items())
            print_log(
                f'skip_bad_images: left {len(self.bad_images)} of '
                f'{len(data_list)} images out of the latent split '
                f'{self.split!r} (not decodable when encoded):\n{listing}',
                logger='current', level=logging.WARNING)
        return [d for d in data_list if not d['bad_reason']]

    def prepare_data(self, idx: int):
        info = self.get_data_info(idx)
        if info.get('bad_reason'):
            raise BadImageError(info['img_path'], info['bad_reason'])
        split_record = self.store.split_record(self.split)
        info['latent_views'] = self.store.array(self.split)[
            info['latent_index']]
        info['latent_view_names'] = split_record['views']
        info['img_shape'] = tuple(self.store.record['img_size'])
        info['ori_shape'] = info['img_shape']
        return self.pipeline(info)


@TRANSFORMS.register_module()
class LoadLatent(BaseTransform):
    """Read one stored view of a sample's latent into ``results['img']``
    (a tensor ``[192, H/16, W/16]``: float16 from an fp16 store, float32
    from a quantized one).

    Args:
        flip_prob (float): Probability of reading the stored horizontal
            flip instead of the image: the latent of exactly what
            ``RandomFlip(prob=flip_prob, direction='horizontal')`` after the
            resize would have fed the encoder. Uses NumPy's generator, which
            ``ResumableSampler`` seeds per sample. Defaults to 0.
    """

    def __init__(self, flip_prob: float = 0.):
        if not 0 <= flip_prob <= 1:
            raise ValueError(f'flip_prob must be in [0, 1]; got {flip_prob}')
        self.flip_prob = flip_prob

    def transform(self, results: dict) -> dict:
        views = results.pop('latent_views')
        names = results.pop('latent_view_names')
        flip = bool(self.flip_prob) and np.random.rand() < self.flip_prob
        if flip and 'hflip' not in names:
            raise LatentStoreError(
                'LoadLatent(flip_prob>0) needs the flipped latents, but this '
                'split was encoded without them (its image pipeline had no '
                'RandomFlip). Add RandomFlip to the image config and '
                're-encode, or set flip_prob=0.')
        latent = torch.from_numpy(np.array(views[names.index(
            'hflip' if flip else 'original')]))
        # fp16 as stored; int8 to float32 (torch's CPU conversion to fp16
        # is ~40x slower than to fp32, which the batch becomes anyway)
        results['img'] = (latent if latent.dtype == torch.float16 else
                          latent.float())
        results['flip'] = flip
        if flip:
            results['flip_direction'] = 'horizontal'
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(flip_prob={self.flip_prob})'


@HOOKS.register_module()
class LatentStoreCheckHook(Hook):
    """Before training, validation and testing: every latent store feeding
    the run must have been written by the model's own codec (name,
    quality, encoder weights) at the model's image size."""

    priority = 'VERY_HIGH'

    def _check(self, runner, loop_name: str) -> None:
        loop = getattr(runner, loop_name, None)
        dataset = getattr(getattr(loop, 'dataloader', None), 'dataset', None)
        if isinstance(dataset, LatentDataset):
            model = runner.model
            model = getattr(model, 'module', model)
            dataset.store.check_model(model)

    def before_train(self, runner) -> None:
        self._check(runner, 'train_loop')

    def before_val(self, runner) -> None:
        self._check(runner, 'val_loop')

    def before_test(self, runner) -> None:
        self._check(runner, 'test_loop')
