"""Publish a checkpoint (mmpretrain's tools/model_converters/publish_model.py).

    python tools/model_converters/publish_model.py \
        work_dirs/ci2p_vit_animals10/epoch_300.pth ci2p-vit-b_animals10.pth

Strips the training state, keeps the weights, the codec record, the config
(as data: ``name = literal`` lines, which mmengine's readers can execute
safely) and the class names, and names the file with its date and hash
(``ci2p-vit-b_animals10_20261130-1a2b3c4d.pth``).
"""
import argparse

import ci2p_mm  # noqa: F401  registers datasets, safe checkpoint types
from ci2p_mm.engine.publish import publish_checkpoint


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Process a checkpoint to be published')
    parser.add_argument('in_file', help='input checkpoint filename')
    parser.add_argument('out_file', help='output checkpoint filename')
    parser.add_argument(
        '--no-ema',
        action='store_true',
        help='publish the EMA weights (ema_state_dict)')
    parser.add_argument(
        '--dataset-type',
        type=str,
        help='dataset whose class names to record when the checkpoint has '
        'none, e.g. Animals10')
    parser.add_argument(
        '--no-config',
        action='store_true',
        help='leave the config text (meta.cfg, meta.config) out of the '
        'published file')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    final = publish_checkpoint(args.in_file, args.out_file, args.no_ema,
                               args.dataset_type,
                               keep_config=not args.no_config)
    print(f'Published {final}')
    return final


if __name__ == '__main__':
    main()
