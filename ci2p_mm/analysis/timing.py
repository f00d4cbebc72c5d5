"""What the benchmark modes (:mod:`.step`, :mod:`.end_to_end`,
:mod:`.latent_storage`) apply alike: the speed levers (precision, compile
settings, the config's optimizer and its implementation, channels_last),
building a config's model, the machine's description and the JSON report.
The timer itself is :mod:`ci2p_mm.utils.timing` (torch.utils.benchmark)."""
import contextlib
import copy
import json
import os
import os.path as osp
import platform

import torch
from mmengine.optim import build_optim_wrapper as build_mmengine_optim_wrapper
from mmpretrain.registry import MODELS

from ci2p_mm.codec import CodecWeightsError
from ci2p_mm.utils import is_ci2p_backbone, quiet_init_weights
from ci2p_mm.utils.io import write_text_atomically
from ci2p_mm.utils.timing import loadavg

#: The command line the benchmark modules serve (printed in results).
TOOL = 'tools/analysis_tools/benchmark.py'
MIB = 1024 * 1024


def autocast(args):
    """``torch.autocast`` with ``--amp``'s dtype; nothing without it."""
    if not args.amp:
        return contextlib.nullcontext()
    dtype = dict(bf16=torch.bfloat16, fp16=torch.float16)[args.amp]
    return torch.autocast(device_type=args.device, dtype=dtype)


def inference_context(args):
    """``inference_mode``; ``no_grad`` for compiled models (with torch 2.14
    dynamo fails a guard on mmcv's numpy ``drop_prob`` under inference_mode;
    mmengine's val/test loops use no_grad anyway)."""
    return torch.no_grad() if args.compile else torch.inference_mode()


def synchronize(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def build_model(cfg, args, path: str = ''):
    """The config's model with its weights (codec weights are fetched here,
    not when building), on ``args.device``; channels_last for models that
    are not CI2P ones with ``--channels-last`` (CI2P configs get
    ``patch_cfg.channels_last`` instead); cuDNN autotuning as the config's
    ``env_cfg.cudnn_benchmark`` sets it for training (as mmengine's Runner
    does)."""
    model_cfg = cfg.model
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    model = MODELS.build(model_cfg)
    try:
        quiet_init_weights(model)
    except CodecWeightsError as err:
        raise CodecWeightsError(
            f'{path}: {err} Offline? Add --no-pretrained (speed does not '
            f'depend on the codec weights).') from err
    model.to(args.device)
    if args.channels_last and not is_ci2p_backbone(model_cfg.get('backbone')):
        model.to(memory_format=torch.channels_last)
    if args.device == 'cuda':
        torch.backends.cudnn.benchmark = bool(
            cfg.get('env_cfg', {}).get('cudnn_benchmark', False))
    return model


#: ``--optimizer-impl``: torch's implementations of Adam/AdamW/SGD...
#: ``config``: as the config says (torch then picks ``foreach`` on CUDA,
#: the per-parameter loop on the CPU); ``foreach``: one multi-tensor kernel
#: per operation; ``fused``: one fused kernel per parameter group (CUDA and,
#: since torch 2.4, CPU).
OPTIMIZER_IMPLS = ('config', 'foreach', 'fused')


def set_optimizer_impl(optimizer_cfg: dict, impl: str) -> dict:
    """The optimizer config with ``foreach``/``fused`` set for ``impl``."""
    if impl not in OPTIMIZER_IMPLS:
        raise ValueError(f'optimizer implementation {impl!r}: choose one of '
                         f'{OPTIMIZER_IMPLS}')
    if impl != 'config':
        optimizer_cfg.pop('foreach', None)
        optimizer_cfg.pop('fused', None)
        optimizer_cfg[impl] = True
    return optimizer_cfg


def build_optim_wrapper(model, optim_cfg, args):
    """The config's optimizer in an OptimWrapper (AMP one on CUDA), with
    ``--optimizer-impl``."""
    optim_cfg = copy.deepcopy(optim_cfg)
    optim_cfg.pop('type', None)
    set_optimizer_impl(optim_cfg['optimizer'],
                       getattr(args, 'optimizer_impl', 'config'))
    if args.amp and args.device == 'cuda':
        optim_cfg['type'] = 'AmpOptimWrapper'
        optim_cfg['dtype'] = {'bf16': 'bfloat16', 'fp16': 'float16'}[args.amp]
        optim_cfg.setdefault('loss_scale', 'dynamic')
    else:
        # mmengine's AmpOptimWrapper asserts CUDA; on CPU autocast is
        # applied around the forward by this tool instead.
        optim_cfg['type'] = 'OptimWrapper'
    return build_mmengine_optim_wrapper(model, optim_cfg)


#: ``--compile-mode`` values (torch.compile's modes; ``default`` is torch's
#: default). ``reduce-overhead`` replays CUDA graphs (static shapes only).
COMPILE_MODES = ('default', 'reduce-overhead', 'max-autotune',
                 'max-autotune-no-cudagraphs')
#: Compiled forwards one process may hold: every model, train/eval mode and
#: input shape is a graph of the same ``forward`` code, and dynamo's
#: default limit (8) would silently fall back to eager after that.
RECOMPILE_LIMIT = 64


def compile_kwargs(args) -> dict:
    """``torch.compile`` arguments from ``--compile-mode``/``-backend``."""
    kwargs = {}
    if args.compile_mode not in (None, 'default'):
        kwargs['mode'] = args.compile_mode
    if getattr(args, 'compile_backend', 'inductor') != 'inductor':
        kwargs['backend'] = args.compile_backend
    return kwargs


def uses_cudagraphs(args) -> bool:
    return bool(args.compile) and args.device == 'cuda' and \
        args.compile_mode == 'reduce-overhead'


def step_begin(args) -> None:
    """Tell CUDA-graph trees that a new iteration starts (its outputs may
    reuse the previous iteration's memory); nothing otherwise."""
    if uses_cudagraphs(args):
        torch.compiler.cudagraph_mark_step_begin()


def maybe_compile(model, args):
    """The model with its forward compiled as ``tools/train.py --compile``
    compiles it (``nn.Module.compile()``, as
    ``CI2PRunner._maybe_compile``)."""
    if not args.compile:
        return model
    dynamo = torch._dynamo.config
    for name in ('recompile_limit', 'cache_size_limit'):  # old name
        if hasattr(dynamo, name):
            setattr(dynamo, name, max(getattr(dynamo, name), RECOMPILE_LIMIT))
            break
    model.compile(**compile_kwargs(args))
    return model


def cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(args):
    if args.device == 'cuda':
        return torch.cuda.get_device_name()
    return f'{cpu_name()}, {os.cpu_count()} logical CPUs'


def print_header(args, settings: str) -> list:
    """The run's first line: machine, torch, threads, ``settings``, load
    average; returns the load average."""
    load = loadavg()
    print(
        f'# {device_name(args)}, torch {torch.__version__}, '
        f'{torch.get_num_threads()} threads, {settings}; load average '
        f'{load}',
        flush=True)
    return load


def warn_slow_cpu_amp(args):
    """Autocast on a CPU without native bf16/fp16 runs reference kernels."""
    if args.device != 'cpu' or not args.amp:
        return
    check = dict(
        bf16='_is_mkldnn_bf16_supported',
        fp16='_is_mkldnn_fp16_supported')[args.amp]
    try:
        native = getattr(torch.ops.mkldnn, check)()
    except (AttributeError, RuntimeError):
        return
    if not native:
        print(
            f'WARNING: this CPU has no native {args.amp} support in oneDNN '
            f'(capability {torch.backends.cpu.get_cpu_capability()}): '
            f'{args.amp} convolutions fall back to reference kernels, '
            'often 10-300x slower than fp32.',
            flush=True)


def report_settings(args, argv) -> dict:
    """What the step and end-to-end reports both say of their run (the
    levers ``lever_table`` compares)."""
    return dict(
        command=' '.join([TOOL] + list(argv)),
        torch=torch.__version__,
        batch_size=args.batch_size,
        img_size=args.img_size,
        channels_last=args.channels_last,
        compile_kwargs=compile_kwargs(args) if args.compile else None,
        optimizer_impl=args.optimizer_impl)


def write_report(path: str, report: dict, quiet: bool = False) -> None:
    """A mode's results as JSON (written atomically)."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    write_text_atomically(path, json.dumps(report, indent=2))
    if not quiet:
        print(f'wrote {path}', flush=True)
