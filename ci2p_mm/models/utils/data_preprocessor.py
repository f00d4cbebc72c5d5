"""The one place where images become the codec's RGB in [0, 1]."""
from typing import Optional, Sequence

from mmpretrain.models.utils import ClsDataPreprocessor
from mmpretrain.registry import MODELS

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
        for name, value, unit in (('mean', mean, UNIT_MEAN), ('std', std,
                                                              UNIT_STD)):
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
