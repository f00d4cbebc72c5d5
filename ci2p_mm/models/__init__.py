from .ci2p_vit import CI2PViT
from .codec import (CodecWeightsError, build_codec, load_codec_state_dict,
                    supported_codecs)
from .data_preprocessor import CI2PDataPreprocessor
from .dual_scale_vit import DualScaleViT
from .patch_embed import CI2PEncoder, CI2PPatchEmbed, CnnReshape, PatchReshape
from .segmentors import SegNetr

__all__ = [
    'CI2PViT', 'DualScaleViT', 'CI2PPatchEmbed', 'CI2PEncoder',
    'PatchReshape', 'CnnReshape', 'CI2PDataPreprocessor', 'build_codec',
    'load_codec_state_dict', 'supported_codecs', 'CodecWeightsError', 'SegNetr'
]
