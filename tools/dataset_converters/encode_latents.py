"""Encode a config's images once with its frozen codec encoder.

    python tools/dataset_converters/encode_latents.py \
        configs/ci2p_vit_animals10.py
    python tools/dataset_converters/encode_latents.py CONFIG \
        --storage quantized
    torchrun --nproc_per_node 8 tools/dataset_converters/encode_latents.py \
        CONFIG --launcher pytorch

writes a latent store (default
``<data_root>/latents/<codec>-q<quality>-<size>``) that
``configs/*_latents.py`` train from; resumable. See docs/latents.md and
ci2p_mm/latents/encoding.py, where the logic lives.
"""
from ci2p_mm.latents.encoding import main
from ci2p_mm.utils.cli import run

if __name__ == '__main__':
    run(main)
