"""``tools/analysis_tools/benchmark.py``: speed and memory of config models.

This module only parses the command line and hands it to a mode:

* default: model steps on a batch in memory, inference and training, with
  peak memory (:mod:`.step`);
* ``--end-to-end``: training iterations with the config's data loading
  from files, latent stores encoded once (:mod:`.end_to_end`);
* ``--latent-storage``: latent store formats side by side
  (:mod:`.latent_storage`).

The shared timing helpers are in :mod:`.timing`.
"""
import argparse
import sys

import torch
from mmengine.config import DictAction

from . import end_to_end, latent_storage, step


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Throughput (img/s) and peak memory of models built '
        'from configs; ratios against the first config.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('configs', nargs='+', help='config file(s)')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--img-size', type=int, default=256,
                        help='square input size')
    parser.add_argument(
        '--device', choices=['cpu', 'cuda'],
        default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument(
        '--amp', choices=['bf16', 'fp16'],
        help='autocast dtype (default: fp32). CUDA training uses '
        "mmengine's AmpOptimWrapper (loss scaling); CPU uses torch.autocast "
        'with the plain OptimWrapper.')
    parser.add_argument(
        '--channels-last', action='store_true',
        help='channels_last memory format: CI2P configs get '
        'patch_cfg.channels_last=True (the encoder and reshape convs run '
        'NHWC); other models are converted with '
        'model.to(memory_format=torch.channels_last) and NHWC input')
    parser.add_argument(
        '--compile', action='store_true',
        help="torch.compile the model's forward (as tools/train.py "
        '--compile does)')
    parser.add_argument('--compile-mode', default=None,
                        help='torch.compile mode, e.g. max-autotune')
    parser.add_argument('--warmup', type=int, default=2,
                        help='untimed steps per model and mode first')
    parser.add_argument(
        '--no-pretrained', action='store_true',
        help='build CI2P codecs with random weights instead of downloading '
        'CompressAI weights (speed does not depend on them)')
    parser.add_argument('--threads', type=int,
                        help='torch.set_num_threads (default: torch default)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', help='write the results as JSON here')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of every config')
    step.add_arguments(parser)
    end_to_end.add_arguments(parser)
    latent_storage.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda but CUDA is not available')
    if args.img_size % 32:
        parser.error('--img-size must be a multiple of 32 (CI2P needs it)')
    if min(args.repeats, args.iters, args.batch_size) < 1 or args.warmup < 0:
        parser.error('--repeats, --iters, --batch-size must be >= 1 and '
                     '--warmup >= 0')
    if args.compile and args.warmup < 3:
        # First calls compile, and eval/train switches recompile once.
        print(f'--compile: raising --warmup from {args.warmup} to 3',
              flush=True)
        args.warmup = 3
    return args


def run(argv=None):
    """Run the mode ``argv`` asks for; return its result rows."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.probe:
        return step.run_probe(args)
    if args.end_to_end:
        return end_to_end.run(args, argv)
    if args.latent_storage:
        return latent_storage.run(args, argv)
    return step.run(args, argv)


def main(argv=None) -> int:
    run(argv)
    return 0


if __name__ == '__main__':  # the memory probes run this module
    from ci2p_mm.utils.cli import run as run_cli
    run_cli(main)
