"""Learned image codecs (CompressAI) as CI2P's patch-embedding encoder.

- :mod:`.zoo`: which CompressAI zoo codecs plug in, building them, reading
  their weights (zoo download or local file) and checking what a file holds.
- :mod:`.training`: rate-distortion training of a codec on an image folder
  (``tools/train_codec.py``).
- :mod:`.report`: bpp / PSNR / MS-SSIM of a codec on images, with panels
  (``tools/analysis_tools/codec_report.py``).

Only :mod:`.zoo` is imported here; the other two pull in training and
metric libraries and are imported where used.
"""
from .zoo import (ENCODER_STRIDE, LATENT_CHANNELS, CodecSettingError,
                  CodecWeightsError, build_codec, canonical_codec_name,
                  check_supported, codec_args, download_zoo_weights,
                  encoder_stages, load_codec_state_dict, load_into_codec,
                  read_checkpoint, supported_codecs, zoo_cache_file, zoo_url)

__all__ = [
    'ENCODER_STRIDE', 'LATENT_CHANNELS', 'CodecSettingError',
    'CodecWeightsError', 'build_codec', 'canonical_codec_name',
    'check_supported', 'codec_args', 'download_zoo_weights', 'encoder_stages',
    'load_codec_state_dict', 'load_into_codec', 'read_checkpoint',
    'supported_codecs', 'zoo_cache_file', 'zoo_url'
]
