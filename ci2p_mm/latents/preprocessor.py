"""The one place where stored codec latents become a batch."""
import torch
from mmpretrain.models.utils import ClsDataPreprocessor
from mmpretrain.registry import MODELS

from ci2p_mm.codec import LATENT_CHANNELS


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
