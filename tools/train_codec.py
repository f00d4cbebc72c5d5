"""Train or fine-tune a CompressAI zoo codec for CI2P's patch embedding.

Command line of ``ci2p_mm.codec.training``, where the logic and its
documentation live (``python tools/train_codec.py -h`` for the options).
"""
from ci2p_mm.codec.training import main
from ci2p_mm.utils.cli import run

if __name__ == '__main__':
    run(main)
