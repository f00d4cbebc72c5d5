"""Device-resident latents: the whole store in accelerator memory.

A latent store is small (Animals-10: ~4 GB in fp16 for the training images
and their flips), and a GPU that trains CI2P-ViT from latents consumes
thousands of samples a second. The DataLoader path reads each sample from
the memory-mapped store in a worker process, packs it, sends it to the main
process through shared memory, pins it and copies it to the device: four
host copies and a process hop per sample. :class:`DeviceLatentLoader`
copies the store's array to the device once and draws every batch there
(one gather per batch, no worker processes), keeping the DataLoader path's
semantics exactly:

* the same sampler and batch sampler, built by mmengine from the same
  config (``ResumableSampler``: same order for the same seed and epoch,
  ``skip`` for a mid-epoch resume, ``set_epoch``);
* the same flips: ``LoadLatent(flip_prob=p)`` flips when the first
  ``np.random.rand()`` after seeding NumPy with the sample's seed is below
  ``p``; here :func:`~ci2p_mm.datasets.seeds.first_uniforms` computes those
  draws for the whole batch;
* the same samples: labels and ``PackInputs``' metainfo (``sample_idx``,
  ``img_path``, shapes, ``flip``, ``flip_direction``), bad files replaced
  by the next readable sample (``skip_bad_images``) and marked for
  ``SkippedImagesHook``, or refused with ``BadImageError``;
* the same values: the stored dtype (fp16; int8 quantized stores become
  float32 as ``LoadLatent`` makes them), NaN/Inf refused (checked once, when
  the store is loaded).

A batch is ``dict(inputs=[B, C, h, w] tensor on the device,
data_samples=[DataSample, ...])``, what the DataLoader path gives with
``default_collate`` (the tools' default), so ``LatentDataPreprocessor``
takes it unchanged.

Use it with ``train_dataloader = dict(..., device_resident=True)`` (or
``dict(max_memory_fraction=0.5)``) in a ``*_latents.py`` config, or
``tools/train.py CONFIG --device-latents``; ``CI2PRunner`` builds it. The
DataLoader path stays the default. A store that would take more than
``max_memory_fraction`` of the device's free memory is refused, naming both
sizes.
"""
import time
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.runner import Runner
from mmpretrain.datasets.transforms import PackInputs
from mmpretrain.structures import format_label

from ci2p_mm.datasets import BadImageError
from ci2p_mm.datasets.robust import next_readable
from ci2p_mm.datasets.seeds import first_uniforms
from ci2p_mm.utils.errors import UserError
from ci2p_mm.utils.io import size_text
from .dataset import LatentDataset, LoadLatent, no_flipped_latents

#: Share of the device's free memory the store may take by default; the
#: rest is for training (CI2P-ViT-B's peak at batch 128 in bf16 is ~4.7 GB).
DEFAULT_MEMORY_FRACTION = 0.5
#: Rows copied to the device at a time while loading (bounded host memory).
LOAD_CHUNK_BYTES = 256 << 20


class DeviceLatentsError(UserError, ValueError):
    """``device_resident`` latents that cannot be used as configured."""


def free_memory(device: torch.device) -> Optional[int]:
    """Free bytes on ``device``: ``torch.cuda.mem_get_info`` on CUDA,
    ``MemAvailable`` of ``/proc/meminfo`` on the CPU (None if unknown:
    another device, or a system without it)."""
    if device.type == 'cuda':
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != 'cpu':
        return None
    try:
        with open('/proc/meminfo') as f:
            line = next(ln for ln in f if ln.startswith('MemAvailable:'))
        return int(line.split()[1]) * 1024
    except (OSError, StopIteration, ValueError):
        return None


def resident_options(option) -> Optional[dict]:
    """``device_resident`` of a dataloader config as keyword arguments of
    :class:`DeviceLatentLoader` (None: the DataLoader path)."""
    if option is None or option is False:
        return None
    option = {} if option is True else option
    if not isinstance(option, dict) or set(option) - {'max_memory_fraction'}:
        raise DeviceLatentsError(
            f'device_resident must be True, False or dict(max_memory_fraction'
            f'=...), which is all it takes; got {option!r}.')
    return dict(option)


def _latent_pipeline(dataset: LatentDataset):
    """``(LoadLatent, PackInputs)`` of the dataset's pipeline; anything
    else cannot run on the device and is refused, naming it."""
    transforms = list(getattr(dataset.pipeline, 'transforms', []))
    kinds = [type(t) for t in transforms]
    if kinds != [LoadLatent, PackInputs] or transforms[1].algorithm_keys \
            or transforms[1].input_key != 'img':
        names = ', '.join(type(t).__name__ for t in transforms) or 'none'
        raise DeviceLatentsError(
            f'device_resident latents draw batches as [LoadLatent, '
            f'PackInputs] would (with PackInputs\' default input and '
            f'algorithm keys); this pipeline has: {names}. Remove '
            f'device_resident from the dataloader to run it through the '
            f'DataLoader.')
    return transforms[0], transforms[1]


class DeviceLatentLoader:
    """Batches of a :class:`LatentDataset` drawn from a copy of its store
    in device memory (see this module's docstring).

    Args:
        loader (DataLoader): The DataLoader mmengine built from the same
            config; its dataset, sampler and batch sampler are used, it is
            never iterated (no worker starts).
        device (str | torch.device): Where the store goes.
        max_memory_fraction (float): Largest share of the device's free
            memory the store may take. Defaults to 0.5.
    """

    def __init__(self,
                 loader,
                 device,
                 max_memory_fraction: float = DEFAULT_MEMORY_FRACTION):
        if not 0 < max_memory_fraction <= 1:
            raise DeviceLatentsError(
                f'device_resident max_memory_fraction must be in (0, 1]; '
                f'got {max_memory_fraction}.')
        self.dataset = loader.dataset
        self.sampler = loader.sampler
        self.batch_sampler = loader.batch_sampler
        self.batch_size = loader.batch_size
        self.device = torch.device(device)
        if not isinstance(self.dataset, LatentDataset):
            raise DeviceLatentsError(
                f'device_resident needs a LatentDataset (a *_latents.py '
                f'config); this dataloader reads '
                f'{type(self.dataset).__name__}. Remove device_resident '
                f'(tools/train.py: --device-latents).')
        load, self.pack = _latent_pipeline(self.dataset)
        self.flip_prob = float(load.flip_prob)
        store, split = self.dataset.store, self.dataset.split
        # Views are LATENT_VIEWS[:V] (checked with the record): the stored
        # flip of sample i is row i * V + 1.
        self.num_views = len(store.split_record(split)['views'])
        if self.flip_prob and self.num_views < 2:
            raise no_flipped_latents()
        # What every sample contributes besides its latent, read once; the
        # label as PackInputs formats it (format_label costs ~15 us a call
        # on an int: once per sample here, not per draw; nothing writes
        # into it).
        shape = tuple(store.record['img_size'])
        infos = map(self.dataset.get_data_info, range(len(self.dataset)))
        self.infos = [
            dict(
                info,
                img_shape=shape,
                ori_shape=shape,
                gt_label=format_label(info['gt_label'])) for info in infos
        ]
        self.latents = self._load(store, split, max_memory_fraction)

    # -- building ---------------------------------------------------------
    def _load(self, store, split: str, fraction: float) -> torch.Tensor:
        array = store.array(split)
        size = int(array.nbytes)
        free = free_memory(self.device)
        if free is not None and size > fraction * free:
            raise DeviceLatentsError(
                f'device_resident: the latent store {store.root} (split '
                f'{split!r}) holds {size_text(size)}, and {self.device} has '
                f'{size_text(free)} free, of which it may take '
                f'{fraction:.0%} ({size_text(fraction * free)}; the rest '
                f'is for training). Train through the DataLoader instead '
                f'(remove device_resident, the default), raise '
                f'device_resident=dict(max_memory_fraction=...), or store '
                f'it with --storage quantized (half the bytes).')
        start = time.perf_counter()
        num, views = array.shape[:2]
        latents = torch.empty(
            array.shape,
            dtype=torch.from_numpy(np.empty(0, array.dtype)).dtype,
            device=self.device)
        rows = max(1, LOAD_CHUNK_BYTES // max(1, array[:1].nbytes))
        for first in range(0, num, rows):
            target = latents[first:first + rows]
            target.copy_(torch.from_numpy(np.array(array[first:first + rows])))
            if target.is_floating_point():
                finite = torch.isfinite(target).flatten(1).all(1)
                if not bool(finite.all()):
                    raise store.damaged_sample(
                        split, first + int((~finite).nonzero()[0]))
        print_log(
            f'device_resident: {num} samples x {views} view(s) of the latent '
            f'store {store.root} (split {split!r}, {size_text(size)}) '
            f'loaded into {self.device} memory in '
            f'{time.perf_counter() - start:.1f} s; batches are drawn there '
            f'(no worker processes).',
            logger='current')
        return latents.flatten(0, 1)  # row i * V + v: view v of sample i

    # -- iterating --------------------------------------------------------
    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[dict]:
        # The epoch's draws at once: the flips of all its seeds cost one
        # vectorised pass (the sampler computes the epoch in __iter__ too).
        batches = list(self.batch_sampler)
        flips = self.flips([i for batch in batches for i in batch])
        ends = np.cumsum([len(batch) for batch in batches])[:-1]
        for indices, batch_flips in zip(batches, np.split(flips, ends)):
            yield self.collate(indices, batch_flips)

    def _readable(self, index: int) -> Tuple[int, List[str]]:
        """The sample that stands for ``index``: itself, or with
        ``skip_bad_images`` in training the next readable one (and the
        files skipped), as ``SkipBadImagesMixin`` does."""
        dataset = self.dataset
        if dataset.skip_bad_images and not dataset.for_evaluation:
            return next_readable(index, len(dataset), self._checked,
                                 type(dataset).__name__)
        return self._checked(index), []

    def _checked(self, index: int) -> int:
        info = self.infos[index]
        if info['bad_reason']:
            raise BadImageError(info['img_path'], info['bad_reason'])
        return index

    def flips(self, indices: Sequence[int]) -> np.ndarray:
        """``LoadLatent``'s flip decision for each drawn index."""
        if not self.flip_prob:
            return np.zeros(len(indices), dtype=bool)
        seeds = [getattr(i, 'seed', None) for i in indices]
        if all(s is not None for s in seeds):
            return first_uniforms(seeds) < self.flip_prob
        # Unseeded draws (a sampler without seeds), as LoadLatent draws.
        return np.random.rand(len(indices)) < self.flip_prob

    def collate(self, indices: Sequence[int],
                flips: np.ndarray) -> Dict[str, object]:
        """The batch of the drawn ``indices`` (ints or ``SeededIndex``)
        with their flips (:meth:`flips`)."""
        samples, rows = [], np.empty(len(indices), dtype=np.int64)
        for pos, (drawn, flip) in enumerate(zip(indices, flips.tolist())):
            index, skipped = self._readable(int(drawn))
            # What LoadLatent gives PackInputs, but the latent.
            results = dict(self.infos[index], flip=flip)
            rows[pos] = results['latent_index'] * self.num_views + flip
            if flip:
                results['flip_direction'] = 'horizontal'
            sample = self.pack.transform(results)['data_samples']
            if skipped:
                sample.set_metainfo({'skipped_bad_images': skipped})
            samples.append(sample)
        # One gather (indexing: on the CPU faster than index_select in fp16).
        rows = torch.from_numpy(rows).to(self.device, non_blocking=True)
        inputs = self.latents[rows]
        if not inputs.is_floating_point():  # int8: as LoadLatent makes it
            inputs = inputs.float()
        return dict(inputs=inputs, data_samples=samples)


def build_device_latent_loader(dataloader_cfg: dict,
                               device,
                               seed: Optional[int] = None,
                               diff_rank_seed: bool = False,
                               **options) -> DeviceLatentLoader:
    """A :class:`DeviceLatentLoader` for a dataloader config (without its
    ``device_resident`` key): mmengine builds dataset, sampler and batch
    sampler exactly as for the DataLoader path, with no workers."""
    cfg = dict(dataloader_cfg)
    cfg.update(num_workers=0, persistent_workers=False, pin_memory=False)
    loader = Runner.build_dataloader(
        cfg, seed=seed, diff_rank_seed=diff_rank_seed)
    return DeviceLatentLoader(loader, device, **options)
