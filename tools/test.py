"""Evaluate a checkpoint (mmpretrain's tools/test.py).

    python tools/test.py CONFIG CHECKPOINT [--out preds.pkl] [--amp]

Prints the metrics as mmpretrain does (``accuracy/top1: ...``).
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.evaluator import DumpResults
from mmengine.registry import RUNNERS

import ci2p_mm  # noqa: F401  registers CI2P modules, safe checkpoint types
from ci2p_mm.utils import known_warnings_silenced
from ci2p_mm.engine import (CI2PRunner, close_distributed,
                            configure_launcher, configure_tta,
                            set_default_dataloader_cfg)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where to save the metrics')
    parser.add_argument(
        '--out', help='dump predictions (or metrics) to this .pkl file')
    parser.add_argument(
        '--out-item',
        choices=['metrics', 'pred'],
        default='pred',
        help='what --out holds. Defaults to predictions')
    parser.add_argument(
        '--amp', action='store_true', help='mixed-precision test')
    parser.add_argument(
        '--tta',
        action='store_true',
        help="test-time augmentation: the config's tta_model/tta_pipeline, "
        'else flip TTA averaging the scores (as mmpretrain)')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='disable pin_memory in the dataloader')
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='disable persistent_workers in the dataloader')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. '
        'test_dataloader.dataset.data_root=/data/animals10')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg, args):
    configure_launcher(cfg, args.launcher)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.amp:
        cfg.test_cfg.fp16 = True
    if args.tta:
        configure_tta(cfg)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    # After --cfg-options: the defaults depend on the final num_workers.
    set_default_dataloader_cfg(cfg, 'test_dataloader', args.no_pin_memory,
                               args.no_persistent_workers)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise SystemExit('--out must be a .pkl file')
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'Checkpoint {args.checkpoint} does not exist.')
    with known_warnings_silenced():  # mmengine's pkg_resources use
        cfg = merge_args(Config.fromfile(args.config), args)
    # CI2PRunner: checked checkpoint loading, atomic saving, exact resume.
    runner = (CI2PRunner.from_cfg(cfg)
              if 'runner_type' not in cfg else RUNNERS.build(cfg))
    if args.out and args.out_item == 'pred':
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))
    metrics = runner.test()
    close_distributed()
    if args.out and args.out_item == 'metrics':
        import mmengine
        mmengine.dump(metrics, args.out)
    return metrics


if __name__ == '__main__':
    main()
