"""Write a deterministic, stratified Animals-10 split for the configs.

    python tools/dataset_converters/prepare_animals10.py \
        data/animals10/raw-img data/animals10 --val-ratio 0.2 --seed 0

reads Kaggle's ``raw-img/<italian class>/`` folders as downloaded and writes
``OUT_DIR/meta/{train,val,classes}.txt`` and ``split.json`` (each file
atomically, once the whole split is known). Images are not copied:
annotation paths point at them, relative to OUT_DIR. Image files that
cannot be listed (a name that is not UTF-8, a FIFO or device, a link out of
raw-img) are left out and named; --strict refuses them.
"""
import argparse
import sys

from ci2p_mm.datasets import make_split
from ci2p_mm.datasets.animals10 import describe_left_out, describe_unusable


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('raw_img_dir', help="Kaggle's raw-img folder")
    parser.add_argument('out_dir', help='data root the configs read')
    parser.add_argument('--val-ratio', type=float, default=0.2)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--strict', action='store_true',
        help='refuse folders or files in raw-img that are not one of the ten '
        'class folders, and image files that cannot be listed (default: '
        'leave them out and name them)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        summary = make_split(args.raw_img_dir, args.out_dir, args.val_ratio,
                             args.seed, strict=args.strict)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f'prepare_animals10: {err}')
    print(f'{"class":<12}{"train":>8}{"val":>8}')
    for name, c in summary['counts'].items():
        print(f'{name:<12}{c["train"]:>8}{c["val"]:>8}')
    total_train = sum(c['train'] for c in summary['counts'].values())
    total_val = sum(c['val'] for c in summary['counts'].values())
    print(f'{"total":<12}{total_train:>8}{total_val:>8}')
    if summary['skipped_non_images']:
        print(f'Passed over {len(summary["skipped_non_images"])} files without'
              f' an image extension (listed in meta/split.json).')
    if summary['unusable']:
        print(f'Left out {len(summary["unusable"])} image file(s) that cannot '
              f'be listed: {describe_unusable(summary["unusable"])} (in '
              f'meta/split.json as "unusable"; --strict refuses them).')
    if summary['left_out']:
        print(f'Left out of the split, not Animals-10 class folders: '
              f'{describe_left_out(summary["left_out"])} (in '
              f'meta/split.json as "left_out"; --strict refuses them).')
    print(f'Wrote {args.out_dir}/meta/train.txt and val.txt '
          f'(seed {args.seed}, val ratio {args.val_ratio}).')
    return summary


if __name__ == '__main__':
    main()
