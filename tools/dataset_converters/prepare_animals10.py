"""Write a deterministic, stratified Animals-10 split for the configs.

    python tools/dataset_converters/prepare_animals10.py \
        data/animals10/raw-img data/animals10 --val-ratio 0.2 --seed 0

reads Kaggle's ``raw-img/<italian class>/`` folders as downloaded and writes
``OUT_DIR/meta/{train,val,classes}.txt`` and ``split.json``. The logic is
``ci2p_mm/datasets/animals10.py`` (``-h`` for the options).
"""
from ci2p_mm.datasets.animals10 import main
from ci2p_mm.utils.cli import run

if __name__ == '__main__':
    run(main)
