"""Reading a latent store: the dataset and the transform configs use."""
import logging
import os.path as osp
from typing import List, Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log
from mmpretrain.registry import DATASETS, TRANSFORMS

from ci2p_mm.datasets import (BadImageError, DatasetNotPreparedError,
                              SkipBadImagesMixin)
# The image dataset of a store's source, every sample listed (bad files are
# the store's business): the one builder verify_dataset.py uses too.
from ci2p_mm.datasets.verify import build_all_samples as build_source_dataset
from .store import LatentStore, LatentStoreError, split_key

#: How ``LatentDataset`` compares the images with what was encoded.
SOURCE_CHECKS = ('stat', 'hash', 'none')


@DATASETS.register_module()
class LatentDataset(SkipBadImagesMixin, BaseDataset):
    """Samples of an image dataset, as codec latents read from a store.

    Labels, class names and file names come from the image dataset
    (``source``, exactly the image config's dataset); the inputs come from
    the latent store written for it by ``encode_latents.py``. A model fed
    by it must take latents (``patch_cfg.latent_input=True``); add
    :class:`~ci2p_mm.latents.LatentStoreCheckHook` to refuse a store of
    another codec.

    Before the first sample the store is checked (see
    :mod:`ci2p_mm.latents.store`): complete, arrays as the record says,
    labels as the annotation file says, annotation file and images as they
    were when encoded. Every sample read is checked to be finite.

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
        check_sources (str): How the images are compared with what was
            encoded: ``'stat'`` (size and modification time of each file;
            a file that differs is hashed and refused if its content
            changed), ``'hash'`` (hash every file: also catches a rewrite
            that kept size and time; reads the whole data set), ``'none'``
            (annotation file only, e.g. when the images are deleted or on a
            slow network file system). Images that are gone are named in
            the log, not refused: their latents are what they gave.
            Defaults to ``'stat'``.
        **kwargs: Other :class:`BaseDataset` arguments.
    """

    def __init__(self,
                 source: dict,
                 store: str,
                 pipeline: Sequence = (),
                 skip_bad_images: bool = False,
                 check_sources: str = 'stat',
                 **kwargs):
        if check_sources not in SOURCE_CHECKS:
            raise ValueError(f'check_sources={check_sources!r}: choose one '
                             f'of {SOURCE_CHECKS}.')
        self.check_sources = check_sources
        self.split = split_key(source)
        try:
            self.source_dataset = build_source_dataset(source, pipeline=[])
        except DatasetNotPreparedError as err:
            # Here the images' data_root is the source's: say that key.
            err.data_root_key = 'dataset.source.data_root'
            raise
        # An absolute store path stays as it is.
        self.store = LatentStore(
            osp.join(self.source_dataset.data_root or '', store))
        kwargs.setdefault('metainfo', self.source_dataset.metainfo)
        super().__init__(
            ann_file='',
            pipeline=list(pipeline),
            skip_bad_images=skip_bad_images,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        store, split, source = self.store, self.split, self.source_dataset
        store.check_annotations(split, source.ann_file)
        infos = [source.get_data_info(i) for i in range(len(source))]
        num_samples = store.split_record(split)['num_samples']
        if len(infos) != num_samples:
            raise LatentStoreError(
                f'{store.root}: split {split!r} holds {num_samples} samples, '
                f'{type(source).__name__} lists {len(infos)}. '
                f'{store.reencode_advice(split)}')
        missing = [] if self.check_sources == 'none' else store.check_images(
            split, [info.get('img_path') for info in infos],
            hash_all=self.check_sources == 'hash')
        if missing:
            print_log(
                f'{len(missing)} image(s) of split {split!r} are gone since '
                f'they were encoded into {store.root} (e.g. {missing[0]}); '
                f'their stored latents are used.',
                logger='current',
                level=logging.WARNING)
        bad = store.check_complete(split)
        store.array(split)  # checks the array against the record now
        labels = store.labels(split)
        for index, info in enumerate(infos):
            if int(info['gt_label']) != int(labels[index]):
                raise LatentStoreError(
                    f'{store.root}: split {split!r}, sample {index} '
                    f'({info.get("img_path")}) has label {labels[index]} in '
                    f'the store and {info["gt_label"]} in '
                    f'{source.ann_file}. {store.reencode_advice(split)}')
        return [
            dict(
                img_path=info.get('img_path'),
                gt_label=info['gt_label'],
                latent_index=index,
                bad_reason=bad.get(index)) for index, info in enumerate(infos)
        ]

    def bad_image_reasons(self, data_list: List[dict]) -> list:
        """What the encoder could not decode, as the store recorded it (an
        evaluation set with ``skip_bad_images`` leaves it out): no file is
        read."""
        return [d['bad_reason'] for d in data_list]

    def prepare_data(self, idx: int):
        info = self.get_data_info(idx)
        if info.get('bad_reason'):
            raise BadImageError(info['img_path'], info['bad_reason'])
        store, split = self.store, self.split
        shape = tuple(store.record['img_size'])
        info.update(
            latent_views=store.array(split)[info['latent_index']],
            latent_store=store,
            latent_split=split,
            img_shape=shape,
            ori_shape=shape)
        return self.pipeline(info)


def no_flipped_latents() -> LatentStoreError:
    return LatentStoreError(
        'LoadLatent(flip_prob>0) needs the flipped latents, but this split '
        'was encoded without them (its image pipeline had no RandomFlip). '
        'Add RandomFlip to the image config and re-encode, or set '
        'flip_prob=0.')


@TRANSFORMS.register_module()
class LoadLatent(BaseTransform):
    """Read one stored view of a sample's latent into ``results['img']``
    (a tensor ``[192, H/16, W/16]``: float16 from an fp16 store, float32
    from an fp32 or quantized one), refusing NaN/Inf values.

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
        store = results.pop('latent_store')
        split = results.pop('latent_split')
        flip = bool(self.flip_prob) and np.random.rand() < self.flip_prob
        # Views are LATENT_VIEWS[:V] (checked with the record): hflip is 1.
        if flip and len(views) < 2:
            raise no_flipped_latents()
        view = np.array(views[int(flip)])
        if view.dtype.kind == 'f' and not np.isfinite(view).all():
            raise store.damaged_sample(split, results.get('latent_index'),
                                       results.get('img_path'))
        latent = torch.from_numpy(view)
        # fp16 as stored; int8 to float32 (torch's CPU conversion to fp16
        # is ~40x slower than to fp32, which the batch becomes anyway)
        results['img'] = latent if view.dtype.kind == 'f' else latent.float()
        results['flip'] = flip
        if flip:
            results['flip_direction'] = 'horizontal'
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(flip_prob={self.flip_prob})'
