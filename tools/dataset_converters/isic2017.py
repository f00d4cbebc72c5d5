"""ISIC 2017 Task 1 into mmseg's layout (img_dir/, ann_dir/ with 0/1 masks).

    python tools/dataset_converters/isic2017.py data/ISIC2017 data/isic2017_seg

``data/ISIC2017`` holds the unpacked ISIC-2017_{Training,Validation,Test_v2}
_Data and _Part1_GroundTruth folders; see docs/segmentation.md. The logic is
``ci2p_mm/datasets/isic.py``.
"""
from ci2p_mm.datasets.isic import main
from ci2p_mm.utils.cli import run

if __name__ == '__main__':
    run(main)
