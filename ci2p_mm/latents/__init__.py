"""Codec latents: encode a data set once with CI2P's frozen codec encoder,
then train the ViT from the stored latents every epoch.

- :mod:`.store`: the on-disk format, :class:`LatentStore` and its checks.
- :mod:`.encoding`: :func:`encode`
  (``tools/dataset_converters/encode_latents.py``).
- :mod:`.dataset`: :class:`LatentDataset` and the :class:`LoadLatent`
  transform (registered in mmpretrain's ``DATASETS`` / ``TRANSFORMS``).
- :mod:`.preprocessor`: :class:`LatentDataPreprocessor` (``MODELS``).
- :mod:`.hooks`: :class:`LatentStoreCheckHook` (``HOOKS``).
- :mod:`.device`: :class:`DeviceLatentLoader`, the whole store in device
  memory (``train_dataloader.device_resident=True``).

This package sits above :mod:`ci2p_mm.models` and :mod:`ci2p_mm.datasets`:
it reads the model's encoder and the image datasets, neither knows it.
"""
from .dataset import LatentDataset, LoadLatent, build_source_dataset
from .device import (DeviceLatentLoader, DeviceLatentsError,
                     build_device_latent_loader, resident_options)
from .encoding import encode
from .hooks import LatentStoreCheckHook
from .preprocessor import LatentDataPreprocessor
from .store import (FORMAT_VERSION, LATENT_VIEWS, STORAGES, LatentStore,
                    LatentStoreError, codec_identity, default_store_name)

__all__ = [
    'encode', 'LatentStore', 'LatentStoreError', 'LatentDataset', 'LoadLatent',
    'LatentDataPreprocessor', 'LatentStoreCheckHook', 'build_source_dataset',
    'codec_identity', 'default_store_name', 'FORMAT_VERSION', 'LATENT_VIEWS',
    'STORAGES', 'DeviceLatentLoader', 'DeviceLatentsError',
    'build_device_latent_loader', 'resident_options'
]
