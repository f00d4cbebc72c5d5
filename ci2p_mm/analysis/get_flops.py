"""``tools/analysis_tools/get_flops.py``: FLOPs (one multiply-add = one
FLOP, attention matmuls included) and parameters of config models.

    python tools/analysis_tools/get_flops.py CONFIG --shape 256
    python tools/analysis_tools/get_flops.py configs/vit_b16_animals10.py \
        configs/ci2p_vit_animals10.py configs/ci2p_vit_ds_animals10.py \
        --sizes 256 384 512 --no-pretrained

With several configs or sizes it prints a table with each model's FLOPs
reduction against the first config at the same size.
"""
import argparse

from mmengine.config import DictAction
from mmpretrain.registry import MODELS

from ci2p_mm.utils import load_model_config
from .flops import model_flops


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Model FLOPs and params')
    parser.add_argument('configs', nargs='+', help='config file(s)')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        metavar=('H', 'W'),
        help='input size H [W] (default 256)')
    parser.add_argument(
        '--sizes',
        type=int,
        nargs='+',
        help='square input sizes for a table, e.g. 256 384')
    parser.add_argument(
        '--no-pretrained',
        action='store_true',
        help='build CI2P codecs without downloading weights (FLOPs do not '
        'depend on them)')
    parser.add_argument(
        '--by-module',
        action='store_true',
        help='also print FLOPs per top-level module')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    if args.shape and args.sizes:
        parser.error('give --shape or --sizes, not both')
    if args.shape and len(args.shape) > 2:
        parser.error('--shape takes H or H W')
    return args


def build_model(config, args):
    cfg = load_model_config(config, args.cfg_options, args.no_pretrained)
    return MODELS.build(cfg.model)


def flops_table(argv=None):
    """Count, print the table, return the rows."""
    args = parse_args(argv)
    if args.sizes:
        shapes = [(s, s) for s in args.sizes]
    elif args.shape:
        shapes = [tuple(args.shape * 2)[:2]]
    else:
        shapes = [(256, 256)]
    rows = []
    for config in args.configs:
        model = build_model(config, args)
        for shape in shapes:
            result = model_flops(model, shape, by_module=args.by_module)
            rows.append(dict(config=config, shape=shape, **result))
            if args.by_module:
                print(f'{config} @ {shape[0]}x{shape[1]}:')
                for name, flops in sorted(result['by_module'].items()):
                    if name and '.' not in name.replace('model.', '', 1):
                        print(f'  {name:<40}{flops / 1e9:>10.3f} G')

    base = {
        row['shape']: row['flops']
        for row in rows if row['config'] == args.configs[0]
    }
    header = (f'{"config":<40}{"input":>10}{"GFLOPs":>10}{"attn G":>9}'
              f'{"params M":>10}{"vs first":>10}')
    print(header)
    print('-' * len(header))
    for row in rows:
        h, w = row['shape']
        change = row['flops'] / base[row['shape']] - 1
        versus = 'baseline' if row['config'] == args.configs[0] else (
            f'{100 * change:+.1f}%')
        print(f'{row["config"]:<40}{f"{h}x{w}":>10}'
              f'{row["flops"] / 1e9:>10.2f}'
              f'{row["attention_flops"] / 1e9:>9.2f}'
              f'{row["params"] / 1e6:>10.2f}{versus:>10}')
    return rows


def main(argv=None) -> int:
    flops_table(argv)
    return 0
