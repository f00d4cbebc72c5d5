from .codec_weights import (CodecWeightsMixin, codec_fetch_deferred,
                            load_pending_codecs)
from .data_preprocessor import CI2PDataPreprocessor
from .freezing import FrozenStagesMixin, codec_weights_kept, set_bn_eval
from .patch_embed import (CI2PEncoder, CI2PPatchEmbed, CnnReshape, InplaceGDN,
                          PatchReshape, set_latent_input, split_patch_cfg,
                          use_inplace_gdn)

__all__ = [
    'CI2PDataPreprocessor', 'CI2PEncoder', 'CI2PPatchEmbed', 'CnnReshape',
    'PatchReshape', 'InplaceGDN', 'use_inplace_gdn', 'set_latent_input',
    'split_patch_cfg', 'codec_weights_kept', 'set_bn_eval',
    'FrozenStagesMixin', 'CodecWeightsMixin', 'codec_fetch_deferred',
    'load_pending_codecs'
]
