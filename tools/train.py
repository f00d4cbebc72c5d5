"""Train a model from an mmengine config (mmpretrain's tools/train.py).

    python tools/train.py configs/ci2p_vit_animals10.py [--amp] [--resume]
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS

import ci2p_mm  # noqa: F401  registers CI2P modules, safe checkpoint types
from ci2p_mm.utils import known_warnings_silenced
from ci2p_mm.engine import (CI2PRunner, close_distributed,
                            configure_launcher, set_default_dataloader_cfg)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or with no value from the latest '
        'checkpoint in the work dir')
    parser.add_argument(
        '--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument(
        '--compile',
        action='store_true',
        help="torch.compile the model (mmengine's cfg.compile)")
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by the actual total batch size against '
        'auto_scale_lr.base_batch_size')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='disable pin_memory in the dataloaders')
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='disable persistent_workers in the dataloaders')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. '
        'train_dataloader.dataset.data_root=/data/animals10')
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
    """Merge command-line arguments into the config."""
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    configure_launcher(cfg, args.launcher)

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.compile:
        cfg.compile = True

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True

    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    # After --cfg-options: the defaults depend on the final num_workers.
    for split in ('train', 'val', 'test'):
        set_default_dataloader_cfg(cfg, f'{split}_dataloader',
                                   args.no_pin_memory,
                                   args.no_persistent_workers)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    with known_warnings_silenced():  # mmengine's pkg_resources use
        cfg = merge_args(Config.fromfile(args.config), args)
    # CI2PRunner: checked checkpoint loading, atomic saving, exact resume.
    runner = (CI2PRunner.from_cfg(cfg)
              if 'runner_type' not in cfg else RUNNERS.build(cfg))
    runner.train()
    close_distributed()
    if getattr(runner, 'stopped_by', None):  # SIGTERM/SIGINT: saved, stopped
        sys.exit(128 + runner.stopped_by)
    return runner


if __name__ == '__main__':
    main()
