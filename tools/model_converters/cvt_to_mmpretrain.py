"""Convert the authors' checkpoints to an mmpretrain checkpoint.

The logic: ci2p_mm/model_converters/cvt.py.
"""
from ci2p_mm.model_converters.cvt import main
from ci2p_mm.utils.cli import run

if __name__ == '__main__':
    run(main)
