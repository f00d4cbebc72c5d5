"""Evaluate a checkpoint (mmpretrain's tools/test.py).

    python tools/test.py CONFIG CHECKPOINT [--out preds.pkl] [--amp] [--tta]

Prints the metrics as mmpretrain does (``accuracy/top1: ...``).
"""
import argparse
import os.path as osp

import mmengine
from mmengine.evaluator import DumpResults

from ci2p_mm.engine import (build_runner, close_distributed, configure_tta,
                            merge_runner_args, parse_runner_args)
from ci2p_mm.utils import read_config
from ci2p_mm.utils.cli import at_least
from ci2p_mm.utils.errors import UserError
from ci2p_mm.utils.io import REMOTE_URI, check_output_path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    add = parser.add_argument
    add('config', help='test config file path')
    add('checkpoint', help='checkpoint file')
    add('--work-dir', help='where to save the metrics')
    add('--out', help='dump predictions (or metrics) to this .pkl file')
    add('--out-item',
        choices=['metrics', 'pred'],
        help='what --out holds. Defaults to predictions')
    add('--amp', action='store_true', help='mixed-precision test')
    add('--tta',
        action='store_true',
        help="test-time augmentation: the config's tta_model/tta_pipeline, "
        'else flip TTA averaging the scores (as mmpretrain)')
    add('--show-dir',
        help='save each --interval-th test image with its prediction here')
    add('--show',
        action='store_true',
        help='display the predictions in a window')
    add('--interval',
        type=at_least(1),
        default=1,
        help='draw every N-th test image. Defaults to 1')
    add('--wait-time',
        type=float,
        default=2,
        help='seconds each --show window stays. Defaults to 2')
    return parse_runner_args(parser, 'test', argv)


def merge_args(cfg, args):
    cfg.load_from = args.checkpoint
    if args.amp:
        cfg.test_cfg.fp16 = True
    if args.tta:
        configure_tta(cfg)
    if args.show or args.show_dir is not None:
        # mmpretrain's VisualizationHook (its default_runtime has it off)
        hook = cfg.get('default_hooks', {}).get('visualization')
        if hook is None:
            raise UserError(
                f'{args.config}: --show/--show-dir need '
                f'default_hooks.visualization (mmpretrain\'s '
                f'VisualizationHook), which this config does not have.')
        dataset = str(cfg.test_dataloader.dataset.get('type', ''))
        if args.tta or dataset.endswith('LatentDataset'):
            why = ('--tta loads several views of each.' if args.tta else
                   'this config loads codec latents: test with its image '
                   'config.')
            raise UserError(f'{args.config}: --show/--show-dir draw the test '
                            f'images as loaded; {why}')
        hook.update(
            enable=True,
            show=args.show,
            wait_time=args.wait_time,
            out_dir=args.show_dir,
            interval=args.interval)
    return merge_runner_args(cfg, args, ('test', ))


def test(argv=None) -> dict:
    """Run ``tools/test.py argv``; return the metrics."""
    args = parse_args(argv)
    if args.out is None and args.out_item is not None:  # as mmpretrain's
        raise UserError(f'--out-item {args.out_item}: give --out FILE.pkl '
                        f'to write it to.')
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise UserError(f'--out {args.out}: must be a .pkl file')
        check_output_path(args.out, args.checkpoint, args.config, what='--out')
    # A URI is read by mmengine's loader, as mmpretrain's tools/test.py does.
    if not REMOTE_URI.match(args.checkpoint) and \
            not osp.isfile(args.checkpoint):
        why = 'is not a file' if osp.lexists(
            args.checkpoint) else 'does not exist'
        raise UserError(f'Checkpoint {args.checkpoint} {why}.')
    runner = build_runner(merge_args(read_config(args.config), args))
    if args.out and args.out_item in (None, 'pred'):
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))
    metrics = runner.test()
    close_distributed()
    if args.out and args.out_item == 'metrics':
        mmengine.dump(metrics, args.out)  # through AtomicLocalBackend
    return metrics


def main(argv=None) -> int:
    test(argv)
    return 0
