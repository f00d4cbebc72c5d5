"""Encode a config's images once with its frozen codec encoder.

    python tools/dataset_converters/encode_latents.py configs/ci2p_vit_animals10.py
    python tools/dataset_converters/encode_latents.py CONFIG --storage quantized
    torchrun --nproc_per_node 8 tools/dataset_converters/encode_latents.py \
        CONFIG --launcher pytorch

writes a latent store (default ``<data_root>/latents/<codec>-q<quality>-<size>``)
that ``configs/*_latents.py`` train from; resumable. See docs/latents.md and
ci2p_mm/codec/encode_latents.py.
"""
import sys

from ci2p_mm.codec import CodecWeightsError
from ci2p_mm.codec.encode_latents import main
from ci2p_mm.datasets import BadImageError, LatentStoreError

if __name__ == '__main__':
    try:
        main()
    except (LatentStoreError, BadImageError, CodecWeightsError) as err:
        sys.exit(f'encode_latents: {err}')
