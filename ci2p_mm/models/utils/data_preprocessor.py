"""The one place where images become the codec's RGB in [0, 1], and where
stored codec latents become a batch."""
from typing import Optional, Sequence

import torch

from mmpretrain.models.utils import ClsDataPreprocessor
from mmpretrain.registry import MODELS

from ci2p_mm.codec.zoo import LATENT_CHANNELS

#: Scaling 0-255 pixels to [0, 1], written as mean/std normalisation.
UNIT_MEAN = (0., 0., 0.)
UNIT_STD = (255., 255., 255.)


@MODELS.register_module()
class CI2PDataPreprocessor(ClsDataPreprocessor):
    """mmpretrain's classification preprocessor, fixed to the codec's input.

    CompressAI codecs are trained on RGB in [0, 1]; mean/std normalisation
    (mmpretrain's usual ImageNet statistics) would feed them values they
    never saw. This preprocessor converts BGR (mmcv's decoding) to RGB and
    divides by 255, and refuses any other ``mean``/``std``. Everything else
    (padding, one-hot labels, mixup/cutmix ``batch_augments``) is as in
    :class:`ClsDataPreprocessor`.
    """

    def __init__(self,
                 mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None,
                 to_rgb: bool = True,
                 **kwargs):
        for name, value, unit in (('mean', mean, UNIT_MEAN),
                                  ('std', std, UNIT_STD)):
            if value is not None and tuple(map(float, value)) != unit:
                raise ValueError(
                    f'CI2PDataPreprocessor scales images to [0, 1] for the '
                    f'codec; {name}={list(value)} would normalise them. '
                    f'Remove mean/std from data_preprocessor (they are fixed '
                    f'to mean={list(UNIT_MEAN)}, std={list(UNIT_STD)}).')
        if not to_rgb:
            raise ValueError('CI2PDataPreprocessor needs to_rgb=True: mmcv '
                             'decodes images as BGR, codecs expect RGB.')
        super().__init__(mean=UNIT_MEAN, std=UNIT_STD, to_rgb=True, **kwargs)


@MODELS.register_module()
class LatentDataPreprocessor(ClsDataPreprocessor):
    """Batches of stored codec latents (``LatentDataset``) for a CI2P model
    built with ``patch_cfg.latent_input=True``.

    The latents are what the frozen encoder computed from
    ``CI2PDataPreprocessor``'s output, so nothing is normalised, converted
    or padded here: samples are stacked and cast to float32 (fp16 storage
    is exact in float32). Labels, one-hot and ``batch_augments`` are as in
    :class:`ClsDataPreprocessor`.
    """

    def __init__(self, **kwargs):
        for key in ('mean', 'std', 'to_rgb', 'pad_size_divisor'):
            if kwargs.get(key) not in (None, False, 1):
                raise ValueError(
                    f'LatentDataPreprocessor takes stored codec latents '
                    f'as they are; remove {key}={kwargs[key]!r}.')
            kwargs.pop(key, None)
        super().__init__(**kwargs)

    def forward(self, data: dict, training: bool = False) -> dict:
        inputs = data['inputs']
        first = inputs if isinstance(inputs, torch.Tensor) else inputs[0]
        channels = first.shape[-3] if first.dim() >= 3 else None
        if channels != LATENT_CHANNELS:
            raise ValueError(
                f'LatentDataPreprocessor expects codec latents with '
                f'{LATENT_CHANNELS} channels; got inputs of shape '
                f'{list(first.shape)}. Images go through '
                f'CI2PDataPreprocessor (the image config); latents come '
                f'from LatentDataset.')
        return super().forward(data, training)
