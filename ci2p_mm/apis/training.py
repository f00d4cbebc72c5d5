"""Train a model from an mmengine config (mmpretrain's tools/train.py).

    python tools/train.py configs/ci2p_vit_animals10.py [--amp] [--resume]
"""
import argparse

from ci2p_mm.engine import (build_runner, close_distributed, configure_amp,
                            merge_runner_args, parse_runner_args)
from ci2p_mm.utils import read_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model')
    add = parser.add_argument
    add('config', help='train config file path')
    add('--work-dir', help='the dir to save logs and models')
    add('--resume',
        nargs='?',
        const='auto',
        help='resume from this checkpoint, or with no value from the latest '
        'checkpoint in the work dir')
    add('--amp',
        action='store_true',
        help='automatic mixed precision (fp16 with loss scaling on a GPU, '
        'bf16 autocast on the CPU)')
    add('--compile',
        action='store_true',
        help="torch.compile the model's forward (mmengine's cfg.compile)")
    add('--device-latents',
        action='store_true',
        help='latent configs: load the training latent store into device '
        'memory once and draw batches there, without DataLoader workers '
        '(train_dataloader.device_resident=True; same batches and exact '
        'resume as the DataLoader path, see ci2p_mm/latents/device.py)')
    add('--no-validate',
        action='store_true',
        help='do not evaluate checkpoints during training')
    add('--auto-scale-lr',
        action='store_true',
        help='scale the lr by the actual total batch size against '
        'auto_scale_lr.base_batch_size')
    return parse_runner_args(parser, 'train', argv)


def merge_args(cfg, args):
    """Merge command-line arguments into the config."""
    if args.amp:
        configure_amp(cfg)
    if args.compile:
        cfg.compile = True
    if args.device_latents:
        cfg.train_dataloader.device_resident = True

    if args.resume is not None:  # 'auto': the work dir's latest
        cfg.resume = True
        cfg.load_from = None if args.resume == 'auto' else args.resume

    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    cfg = merge_runner_args(cfg, args, ('train', 'val', 'test'))
    # After --cfg-options (mmpretrain's tools/train.py does it before): a
    # val_dataloader.* option merged into None was a TypeError.
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    return cfg


def train(argv=None):
    """Run ``tools/train.py argv``; return the runner after training."""
    args = parse_args(argv)
    runner = build_runner(merge_args(read_config(args.config), args))
    runner.train()
    close_distributed()
    return runner


def main(argv=None) -> int:
    runner = train(argv)
    # SIGTERM/SIGINT: a resumable checkpoint is saved; exit as signalled.
    stopped_by = getattr(runner, 'stopped_by', None)
    return 128 + stopped_by if stopped_by else 0
