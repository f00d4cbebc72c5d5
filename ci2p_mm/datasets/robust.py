"""Datasets that survive bad files, and augmentation that survives resume.

``skip_bad_images``
    A dataset option (Animals10, RobustImageNet). Off (the default), a file
    that :class:`SafeLoadImageFromFile` refuses stops the run with a message
    that names it and the fix. On, a *training* set replaces it by the next
    readable sample (with that sample's own label, so nothing is ever
    mislabelled) and marks the batch so that :class:`SkippedImagesHook`
    counts it in the log every epoch; an *evaluation* set (``split`` val or
    test, or ``test_mode``) decodes every file once when it is built and
    leaves the bad ones out, so metrics are over readable files only, each
    counted once, and the log lists what was left out.

:class:`ResumableSampler`
    mmengine's ``DefaultSampler`` (same order for the same seed and
    epoch) that can start in the middle of an epoch, which makes a
    mid-epoch resume see exactly the samples the interrupted run had not
    seen yet, and that gives every sample draw its own seed derived from
    (seed, epoch, position). The dataset seeds Python's, NumPy's and
    torch's CPU generators with it around the pipeline, so random
    augmentation does not depend on ``num_workers``, on which worker loads
    what, on persistent workers, or on where a run was resumed.
"""
import logging
import random
from contextlib import contextmanager
from typing import Callable, Iterator, List, Optional, Tuple, TypeVar

import numpy as np
import torch
from mmengine.dataset import DefaultSampler
from mmengine.logging import print_log
from mmpretrain.datasets import ImageNet
from mmpretrain.registry import DATA_SAMPLERS, DATASETS
from tqdm.contrib.concurrent import thread_map

from .annotations import annotation_data_list
from .seeds import sample_seeds
from .transforms import BadImageError, SafeLoadImageFromFile

T = TypeVar('T')


class SeededIndex(int):
    """A dataset index carrying the seed for its sample's augmentation.

    It is an ``int`` for everything else, so datasets and wrappers that do
    not know about it just see the index.
    """

    def __new__(cls, index: int, seed: int):
        obj = super().__new__(cls, index)
        obj.seed = seed
        return obj

    def __reduce__(self):  # to DataLoader workers
        return SeededIndex, (int(self), self.seed)

    def __repr__(self):
        return f'SeededIndex({int(self)}, seed={self.seed})'


@contextmanager
def seeded_rng(seed: Optional[int]):
    """Seed ``random``, NumPy and torch's CPU generator; restore on exit."""
    if seed is None:
        yield
        return
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    random.seed(seed)
    np.random.seed(seed)
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


@DATA_SAMPLERS.register_module()
class ResumableSampler(DefaultSampler):
    """``DefaultSampler`` that can skip into an epoch and seeds each draw.

    Args:
        dataset, shuffle, seed, round_up: As for ``DefaultSampler``.
        seed_samples (bool): Yield :class:`SeededIndex` so that the dataset
            seeds each sample's augmentation. Defaults to True.
    """

    def __init__(self,
                 dataset,
                 shuffle: bool = True,
                 seed: Optional[int] = None,
                 round_up: bool = True,
                 seed_samples: bool = True):
        super().__init__(
            dataset, shuffle=shuffle, seed=seed, round_up=round_up)
        self.seed_samples = seed_samples
        self._skip = 0

    def skip(self, num_samples: int) -> None:
        """Start the next iteration ``num_samples`` (of this rank) later."""
        self._skip = int(num_samples)

    def __iter__(self) -> Iterator[int]:
        skip, self._skip = self._skip, 0
        indices = list(super().__iter__())[skip:]
        if not self.seed_samples:
            return iter(indices)
        # Position in the epoch's global order: rank-strided by the parent.
        positions = self.rank + (skip + np.arange(len(indices))) * \
            self.world_size
        seeds = sample_seeds(self.seed, self.epoch, positions).tolist()
        return iter(
            SeededIndex(index, seed) for index, seed in zip(indices, seeds))


def find_loader(pipeline,
                data_root: Optional[str] = None) -> SafeLoadImageFromFile:
    """The pipeline's :class:`SafeLoadImageFromFile`, or a default one.

    Its ``data_root`` (which links must stay inside) becomes ``data_root``
    when the config did not set one."""
    loader = next((t for t in getattr(pipeline, 'transforms', pipeline or [])
                   if isinstance(t, SafeLoadImageFromFile)),
                  None) or SafeLoadImageFromFile()
    if loader.data_root is None and data_root:
        loader.data_root = data_root
    return loader


class SkipBadImagesMixin:
    """Adds ``skip_bad_images`` and per-sample seeding to a dataset.

    Put it first in the bases: ``class D(SkipBadImagesMixin, BaseDataset)``.
    """

    def __init__(self, *args, skip_bad_images: bool = False, **kwargs):
        self.skip_bad_images = bool(skip_bad_images)
        split = kwargs.get('split', getattr(self, 'split', None))
        self.for_evaluation = bool(
            kwargs.get('test_mode', False) or split in ('val', 'test'))
        #: Files left out when the set was built (evaluation sets).
        self.bad_images = {}
        super().__init__(*args, **kwargs)

    def load_data_list(self):
        """Annotation files are read strictly: an empty file, a line that is
        not ``<path> <label>``, a label out of range or text that is not
        UTF-8 is refused naming the file and line
        (:func:`~ci2p_mm.datasets.annotations.read_annotations`)."""
        ann_file = getattr(self, 'ann_file', '')
        if (ann_file and getattr(self, 'with_label', True)
                and '://' not in str(ann_file)):
            classes = (getattr(self, '_metainfo', None) or {}).get('classes')
            return annotation_data_list(self, len(classes or ()))
        return super().load_data_list()

    def full_init(self):
        # Links among the files must stay inside this data set's root.
        find_loader(self.pipeline, self.data_root)
        super().full_init()

    def filter_data(self):
        data_list = super().filter_data()
        if not (self.skip_bad_images and self.for_evaluation):
            return data_list
        reasons = self.bad_image_reasons(data_list)
        self.bad_images = {
            info['img_path']: r
            for info, r in zip(data_list, reasons) if r is not None
        }
        if self.bad_images:
            listing = '\n'.join(f'  {p}: {r}'
                                for p, r in self.bad_images.items())
            kept = len(data_list) - len(self.bad_images)
            print_log(
                f'skip_bad_images: left {len(self.bad_images)} of '
                f'{len(data_list)} images out of {type(self).__name__} '
                f'(evaluation is over the other {kept}):\n{listing}',
                logger='current',
                level=logging.WARNING)
        return [info for info, r in zip(data_list, reasons) if r is None]

    def bad_image_reasons(self, data_list: List[dict]) -> list:
        """Why each sample's file cannot be used (None: it can): every file
        decoded once, in threads (Pillow decodes without the GIL)."""
        loader = find_loader(self.pipeline, self.data_root)
        paths = [info['img_path'] for info in data_list]
        print_log(
            f'skip_bad_images: decoding the {len(paths)} images of '
            f'{type(self).__name__} once to leave out bad ones...',
            logger='current')
        return thread_map(loader.check, paths, max_workers=4, disable=True)

    def __getitem__(self, idx):
        with seeded_rng(getattr(idx, 'seed', None)):
            if not self.skip_bad_images or self.for_evaluation:
                return super().__getitem__(int(idx))
            data, skipped = next_readable(
                int(idx), len(self),
                super().__getitem__,
                type(self).__name__)
        samples = data.get('data_samples') if isinstance(data, dict) else None
        if skipped and hasattr(samples, 'set_metainfo'):
            samples.set_metainfo({'skipped_bad_images': skipped})
        return data


def next_readable(index: int, size: int, load: Callable[[int], T],
                  what: str) -> Tuple[T, List[str]]:
    """``load(i)`` for ``i`` = ``index``, ``index + 1``, ... (wrapping
    around ``size``) until one raises no :class:`BadImageError`; returns
    it and the files skipped, each logged. The one skip-a-bad-sample loop
    (``skip_bad_images``: image datasets and the device-resident latent
    loader)."""
    skipped = []
    for k in range(size):
        try:
            return load((index + k) % size), skipped
        except BadImageError as err:
            skipped.append(err.path)
            print_log(
                f'skip_bad_images: skipping {err.path} ({err.reason}); the '
                f'next readable sample takes its place.',
                logger='current',
                level=logging.WARNING)
    raise RuntimeError(
        f'No readable image in {what}: all {size} files were refused. Run '
        f'tools/misc/verify_dataset.py CONFIG.')


@DATASETS.register_module()
class RobustImageNet(SkipBadImagesMixin, ImageNet):
    """mmpretrain's ``ImageNet`` with ``skip_bad_images`` and per-sample
    seeded augmentation (see this module)."""
