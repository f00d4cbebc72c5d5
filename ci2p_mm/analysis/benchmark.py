"""``tools/analysis_tools/benchmark.py``: speed and memory of config models.

This module only parses the command line and hands it to a mode:

* default: model steps on a batch in memory, inference and training, with
  peak memory (:mod:`.step`);
* ``--end-to-end``: training iterations with the config's data loading
  from files, latent stores encoded once (:mod:`.end_to_end`);
* ``--latent-storage``: latent store formats side by side
  (:mod:`.latent_storage`).

Around the first two: ``--batch-sizes`` runs the mode once per batch size
(:mod:`.sweep`); ``--profile`` and ``--report-sdpa`` profile the models
after timing (:mod:`.profile`). The speed levers every mode applies alike
(precision, ``--compile-mode``, ``--optimizer-impl``, channels_last) are in
:mod:`.timing`; the timer itself, torch.utils.benchmark's, in
:mod:`ci2p_mm.utils.timing`.
"""
import argparse
import sys

import torch
from mmengine.config import DictAction

from . import end_to_end, latent_storage, profile, step, sweep
from .timing import COMPILE_MODES, OPTIMIZER_IMPLS


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Throughput (img/s) and peak memory of models built '
        'from configs; ratios against the first config.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('configs', nargs='+', help='config file(s)')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument(
        '--img-size', type=int, default=256, help='square input size')
    parser.add_argument(
        '--device',
        choices=['cpu', 'cuda'],
        default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument(
        '--amp',
        choices=['bf16', 'fp16'],
        help='autocast dtype (default: fp32). CUDA training uses '
        "mmengine's AmpOptimWrapper (loss scaling); CPU uses torch.autocast "
        'with the plain OptimWrapper.')
    parser.add_argument(
        '--channels-last',
        action='store_true',
        help='channels_last memory format: CI2P configs get '
        'patch_cfg.channels_last=True (the encoder and reshape convs run '
        'NHWC); other models are converted with '
        'model.to(memory_format=torch.channels_last) and NHWC input')
    parser.add_argument(
        '--compile',
        action='store_true',
        help="torch.compile the model's forward (as tools/train.py "
        '--compile does)')
    parser.add_argument(
        '--compile-mode',
        choices=COMPILE_MODES,
        default=None,
        help='torch.compile mode (with --compile): reduce-overhead replays '
        'CUDA graphs (static shapes), max-autotune-no-cudagraphs tunes '
        'kernels without them')
    parser.add_argument(
        '--compile-backend',
        default='inductor',
        help="torch.compile backend (with --compile); 'eager' or "
        "'aot_eager' check tracing without code generation")
    parser.add_argument(
        '--optimizer-impl',
        choices=OPTIMIZER_IMPLS,
        default='config',
        help="the optimizer's implementation: as the config says (torch "
        'picks foreach on CUDA), foreach (multi-tensor kernels) or fused '
        "(torch's fused kernel; optim_wrapper.optimizer.fused=True in a "
        'config)')
    parser.add_argument(
        '--memory',
        choices=['probe', 'in-process', 'none'],
        default='probe',
        help='peak memory of the step mode: a fresh process per model and '
        'mode (probe), or on CUDA in this process (weights, optimizer '
        'state and batch + the step\'s rise; cheap, for sweeps)')
    parser.add_argument(
        '--warmup',
        type=int,
        default=2,
        help='untimed steps per model and mode first')
    parser.add_argument(
        '--no-pretrained',
        action='store_true',
        help='build CI2P codecs with random weights instead of downloading '
        'CompressAI weights (speed does not depend on them)')
    parser.add_argument(
        '--threads',
        type=int,
        help='torch.set_num_threads (default: torch default)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', help='write the results as JSON here')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of every config')
    step.add_arguments(parser)
    end_to_end.add_arguments(parser)
    latent_storage.add_arguments(parser)
    sweep.add_arguments(parser)
    profile.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.no_memory:
        args.memory = 'none'
    if args.memory == 'in-process' and args.device != 'cuda':
        parser.error('--memory in-process needs --device cuda (CPU peaks '
                     'need a fresh process: --memory probe)')
    if args.profile_steps < 1:
        parser.error('--profile-steps must be >= 1')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda but CUDA is not available')
    if args.img_size % 32:
        parser.error('--img-size must be a multiple of 32 (CI2P needs it)')
    if min(args.repeats, args.iters, args.batch_size) < 1 or args.warmup < 0:
        parser.error('--repeats, --iters, --batch-size must be >= 1 and '
                     '--warmup >= 0')
    if args.compile and args.warmup < 3:
        # First calls compile, and eval/train switches recompile once.
        print(
            f'--compile: raising --warmup from {args.warmup} to 3', flush=True)
        args.warmup = 3
    return args


def run_mode(args, argv):
    """Run the one mode ``args`` asks for; return its report."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.probe:
        return step.run_probe(args)
    if args.end_to_end:
        return end_to_end.run(args, argv)
    if args.latent_storage:
        return latent_storage.run(args, argv)
    return step.run(args, argv)


def run(argv=None):
    """Run what ``argv`` asks for (a mode, or a sweep of it); return the
    report."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.batch_sizes and not args.probe:
        return sweep.run(args, argv, parse_args, run_mode)
    return run_mode(args, argv)


def main(argv=None) -> int:
    run(argv)
    return 0


if __name__ == '__main__':  # the memory probes run this module
    from ci2p_mm.utils.cli import run as run_cli
    run_cli(main)
