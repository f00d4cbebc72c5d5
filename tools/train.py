"""Train a model from an mmengine config (mmpretrain's tools/train.py).

    python tools/train.py configs/ci2p_vit_animals10.py [--amp] [--resume]

The options and the logic live in ``ci2p_mm/apis/training.py``
(``python tools/train.py -h``); ``ci2p_mm.apis.train(argv)`` runs the same
from Python and returns the runner.
"""
from ci2p_mm.apis.training import main
from ci2p_mm.utils.cli import run

if __name__ == '__main__':
    run(main)
