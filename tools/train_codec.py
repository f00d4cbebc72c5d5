"""Train or fine-tune a CompressAI zoo codec for CI2P's patch embedding.

Command line of ``ci2p_mm.codec.training`` (the logic); docs/codec.md
explains the options, the presets (``configs/codec/``) and the outputs.
"""
from ci2p_mm.codec.training import main
from ci2p_mm.utils.cli import run

if __name__ == '__main__':
    run(main)
