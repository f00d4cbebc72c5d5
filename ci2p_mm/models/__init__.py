"""CI2P models, laid out as mmpretrain lays out its zoo.

- ``backbones/``: ``CI2PViT`` (CI2P-ViT), ``DualScaleViT`` (CI2P-ViT^ds), and
  the hybrids CI2P is compared with: ``CvT``, ``CrossViT`` (timm),
  ``MobileFormer``; ``SegNetr`` (U-shaped medical segmentation network,
  an mmseg backbone once ``ci2p_mm.downstream`` is imported, as mmseg's
  own ``UNet``).
- ``necks/``: ``CI2PSimplePyramid`` (ViTDet-style pyramid for detection).
- ``utils/``: the CI2P patch embedding (codec encoder + PatchReshape), the
  reshape blocks, freezing helpers and the [0, 1] RGB data preprocessor.

Importing this package registers every module into mmpretrain's ``MODELS``.
The codec zoo itself lives in :mod:`ci2p_mm.codec`; its main names are
re-exported here for convenience.
"""
from ci2p_mm.codec import (CodecWeightsError, build_codec,
                           load_codec_state_dict, supported_codecs)
from .backbones import (CI2PViT, CrossViT, CvT, DualScaleViT, MobileFormer,
                        SegNetr)
from .necks import CI2PSimplePyramid
from .utils import (CI2PDataPreprocessor, CI2PEncoder, CI2PPatchEmbed,
                    CnnReshape, PatchReshape)

__all__ = [
    'CI2PViT', 'DualScaleViT', 'CvT', 'CrossViT', 'MobileFormer',
    'CI2PSimplePyramid', 'SegNetr', 'CI2PPatchEmbed', 'CI2PEncoder',
    'PatchReshape', 'CnnReshape', 'CI2PDataPreprocessor', 'build_codec',
    'load_codec_state_dict', 'supported_codecs', 'CodecWeightsError'
]
