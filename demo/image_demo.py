"""Classify one image with a CI2P checkpoint (mmpretrain's
demo/image_demo.py, with the checkpoint as an argument).

    python demo/image_demo.py cat.jpg configs/ci2p_vit_animals10.py \
        work_dirs/ci2p_vit_animals10/epoch_300.pth --out cat_pred.png

MODEL is a config file or a model name (``mmpretrain.list_models('*ci2p*')``).
The checkpoint must fit the model exactly (keys, shapes, codec), as in
tools/test.py; the image must be a photo format (JPEG, PNG, BMP, WebP,
TIFF, GIF, PPM) in a regular file.
"""
from argparse import ArgumentParser

import ci2p_mm  # noqa: F401  registers CI2P modules and model names
from ci2p_mm.inference import classify_image


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('img', help='image file')
    parser.add_argument('model', help='config file or model name')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--topk', type=int, default=5,
                        help='how many classes to print (default 5)')
    parser.add_argument('--out', help='save the image with its label here')
    parser.add_argument('--device', help='e.g. cuda:0 (default: cuda if '
                        'available, else cpu)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    ranked = classify_image(args.img, args.model, args.checkpoint,
                            args.topk, args.device, args.out)
    for rank, (name, score) in enumerate(ranked, 1):
        print(f'{rank}. {name:<20} {score:.4f}')
    if args.out:
        print(f'Saved {args.out}')
    return ranked


if __name__ == '__main__':
    main()
