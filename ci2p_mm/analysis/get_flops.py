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

from mmpretrain.registry import MODELS

from ci2p_mm.utils import load_model_config
from ci2p_mm.utils.cli import at_least
from ci2p_mm.utils.timing import format_table, tool_options
from .flops import model_flops
from .timing import InputSizeError, check_input_size


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Model FLOPs and params',
        parents=[tool_options('configs', '--no-pretrained', '--cfg-options')])
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        '--shape',
        type=at_least(1),
        nargs='+',
        metavar=('H', 'W'),
        help='input size H [W] (default 256)')
    size.add_argument(
        '--sizes',
        type=at_least(1),
        nargs='+',
        help='square input sizes for a table, e.g. 256 384')
    parser.add_argument(
        '--by-module',
        action='store_true',
        help='also print FLOPs per top-level module')
    args = parser.parse_args(argv)
    if args.shape and len(args.shape) > 2:
        parser.error('--shape takes H or H W')
    # (the option as given, the input size) per size
    shape = args.shape or [256]
    args.shapes = ([(f'--sizes {s}', (s, s)) for s in args.sizes]
                   if args.sizes else [(f'--shape {" ".join(map(str, shape))}',
                                        tuple(shape * 2)[:2])])
    for flag, hw in args.shapes:
        check_input_size(flag, hw)
    return args


def main(argv=None) -> int:
    """Count and print the table (and the per-module FLOPs)."""
    args = parse_args(argv)
    rows = []
    for config in args.configs:
        cfg = load_model_config(config, args.cfg_options, args.no_pretrained)
        model = MODELS.build(cfg.model)
        for flag, shape in args.shapes:
            try:
                result = model_flops(model, shape, by_module=args.by_module)
            except ValueError as err:  # the model's own input checks
                raise InputSizeError(
                    f'{config}: {flag}: the model refuses {shape[0]}x'
                    f'{shape[1]} inputs. {err}') from err
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
    print(
        format_table(
            ['config', 'input', 'GFLOPs', 'attn G', 'params M', 'vs first'], [[
                row['config'], '{}x{}'.format(*row['shape']),
                f'{row["flops"] / 1e9:.2f}',
                f'{row["attention_flops"] / 1e9:.2f}',
                f'{row["params"] / 1e6:.2f}',
                'baseline' if row['config'] == args.configs[0] else
                f'{100 * (row["flops"] / base[row["shape"]] - 1):+.1f}%'
            ] for row in rows]))
    return 0
