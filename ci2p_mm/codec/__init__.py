"""Learned image codecs (CompressAI) as CI2P's patch-embedding encoder.

- :mod:`.zoo`: which CompressAI zoo codecs plug in, building them, reading
  their weights (zoo download or local file) and checking what a file holds.
- :mod:`.model`, :mod:`.metric`: rate-distortion training of a codec as an
  mmengine model (CompressAI's loss, two optimizers) and its validation
  metric (bpp / PSNR / MS-SSIM).
- :mod:`.training`: ``tools/train_codec.py``, which runs them with the
  project's runner on an image folder (presets: ``configs/codec/``).
- :mod:`.report`: bpp / PSNR / MS-SSIM of a codec on images, with panels
  (``tools/analysis_tools/codec_report.py``).

Only :mod:`.zoo` is imported here; the others pull in training and
metric libraries and are imported where used (the codec configs import
:mod:`.training`, which registers the model, metric and hook).
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
