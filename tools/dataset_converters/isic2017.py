"""ISIC 2017 Task 1 into mmseg's layout (img_dir/, ann_dir/ with 0/1 masks).

    python tools/dataset_converters/isic2017.py data/ISIC2017 data/isic2017_seg

``data/ISIC2017`` holds the unpacked ISIC-2017_{Training,Validation,Test_v2}
_Data and _Part1_GroundTruth folders; see docs/segmentation.md.
"""
import argparse

from ci2p_mm.datasets import convert_isic2017


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='folder with the ISIC-2017_* folders')
    parser.add_argument('out', help='output root (img_dir/, ann_dir/)')
    args = parser.parse_args()
    for split, n in convert_isic2017(args.src, args.out).items():
        print(f'{split}: {n} images')


if __name__ == '__main__':
    main()
