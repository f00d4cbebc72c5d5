"""Evaluate a checkpoint (mmpretrain's tools/test.py).

    python tools/test.py CONFIG CHECKPOINT [--out preds.pkl] [--amp] [--tta]

The options and the logic live in ``ci2p_mm/apis/testing.py``
(``python tools/test.py -h``); ``ci2p_mm.apis.test(argv)`` runs the same
from Python and returns the metrics.
"""
from ci2p_mm.apis.testing import main
from ci2p_mm.utils.cli import run

if __name__ == '__main__':
    run(main)
