"""Train or fine-tune a CompressAI zoo codec for CI2P's patch embedding.

Command line of ``ci2p_mm.codec.training``, where the logic and its
documentation live (``python tools/train_codec.py -h`` for the options).
"""
import sys

from ci2p_mm.codec.training import USER_ERRORS, main

if __name__ == '__main__':
    try:
        main()
    except USER_ERRORS as err:
        sys.exit(f'train_codec.py: error: {err}')
