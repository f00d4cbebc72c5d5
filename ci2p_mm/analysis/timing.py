"""What the benchmark modes (:mod:`.step`, :mod:`.end_to_end`,
:mod:`.latent_storage`) apply alike: the speed levers (precision, compile
settings, the config's optimizer and its implementation, channels_last),
building a config's model, the input-size bound, one step's peak memory,
the run's header and the settings its report names. The timer, the shared
options, tables and the JSON writer are :mod:`ci2p_mm.utils.timing`."""
import contextlib
import copy
import os.path as osp
import resource
import sys
from functools import partial

import torch
from mmengine.optim import build_optim_wrapper as build_mmengine_optim_wrapper
from mmpretrain.registry import MODELS

from ci2p_mm.codec import CodecWeightsError
from ci2p_mm.deployment import pytorch2onnx
from ci2p_mm.utils import is_ci2p_backbone, quiet_init_weights
from ci2p_mm.utils.errors import UserError
from ci2p_mm.utils.timing import describe_machine, loadavg

#: The command line the benchmark modules serve (printed in results).
TOOL = 'tools/analysis_tools/benchmark.py'
MIB = 1024 * 1024
#: The largest batch a measuring tool allocates, as (images, side): batch
#: 2048 at 256 x 256 (a GPU sweep goes to 1024; the input alone is 1.6 GB
#: as float32). One image is bounded as an ONNX export bounds it
#: (``MAX_PIXELS``, 2048 x 2048).
MAX_TIMED_BATCH = (2048, 256)


class InputSizeError(UserError, ValueError):
    """An input size or batch beyond what a measuring tool allocates, or
    one the model refuses."""


#: ``check_input_size(flags, hw, batch=1)``: the ONNX export's check with
#: the measuring tools' batch bound, wording and error.
check_input_size = partial(
    pytorch2onnx.check_input_size,
    max_batch=MAX_TIMED_BATCH,
    task='measured here',
    error=InputSizeError)

#: ``--amp``'s dtype, for torch's autocast and mmengine's AmpOptimWrapper.
AMP_DTYPES = dict(bf16=torch.bfloat16, fp16=torch.float16)


def autocast(args):
    """``torch.autocast`` with ``--amp``'s dtype; nothing without it."""
    if not args.amp:
        return contextlib.nullcontext()
    return torch.autocast(device_type=args.device, dtype=AMP_DTYPES[args.amp])


def synchronize(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def build_model(cfg,
                device: str = 'cpu',
                channels_last: bool = False,
                path: str = ''):
    """The config's model with its weights (codec weights are fetched here,
    not when building), on ``device``; channels_last for models that
    are not CI2P ones with ``--channels-last`` (CI2P configs get
    ``patch_cfg.channels_last`` instead); cuDNN autotuning as the config's
    ``env_cfg.cudnn_benchmark`` sets it for training (as mmengine's Runner
    does). ``cfg`` is prepared by ``load_model_config`` (the
    ``data_preprocessor`` in the model)."""
    model = MODELS.build(cfg.model)
    try:
        quiet_init_weights(model)
    except CodecWeightsError as err:
        raise CodecWeightsError(
            f'{path}: {err} Offline? Add --no-pretrained (speed does not '
            f'depend on the codec weights).') from err
    model.to(device)
    if channels_last and not is_ci2p_backbone(cfg.model.get('backbone')):
        model.to(memory_format=torch.channels_last)
    if device == 'cuda':
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
    set_optimizer_impl(optim_cfg['optimizer'],
                       getattr(args, 'optimizer_impl', 'config'))
    if args.amp and args.device == 'cuda':
        optim_cfg['type'] = 'AmpOptimWrapper'
        optim_cfg['dtype'] = AMP_DTYPES[args.amp]
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


def precision(args) -> str:
    """``fp32``/``bf16``/``fp16``, and the compile settings if compiled."""
    text = args.amp or 'fp32'
    if not args.compile:
        return text
    kwargs = compile_kwargs(args)
    return text + ', compiled' + (
        f' ({", ".join(f"{k}={v}" for k, v in kwargs.items())})'
        if kwargs else '')


def rss_bytes(field: str = 'VmRSS') -> int:
    """This process's resident set (``VmHWM``: its peak) in bytes, from
    ``/proc/self/status``; 0 where there is none (not Linux)."""
    if not osp.exists('/proc/self/status'):
        return 0
    with open('/proc/self/status') as f:
        return next(
            int(line.split()[1]) * 1024 for line in f
            if line.startswith(field + ':'))


@contextlib.contextmanager
def peak_memory(device: str):
    """``with peak_memory(device) as peak:`` fills ``peak`` on leaving with
    ``peak_bytes`` of what ran inside and ``how`` it was measured. CUDA:
    ``torch.cuda.max_memory_allocated()`` (absolute: weights, gradients,
    optimizer state and activations), reset on entry. CPU: the peak
    resident set (``VmHWM``, reset on entry through
    ``/proc/self/clear_refs``; where that is not writable ``ru_maxrss``, the
    lifetime peak), which also counts the imports and freed memory the C
    allocator keeps: subtract :func:`rss_bytes` taken before the model."""
    peak = {}
    synchronize(device)
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        yield peak
        synchronize(device)
        peak.update(
            peak_bytes=torch.cuda.max_memory_allocated(),
            how='torch.cuda.max_memory_allocated')
        return
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        reset = True
    except OSError:
        reset = False
    yield peak
    if reset:
        peak.update(
            peak_bytes=rss_bytes('VmHWM'), how='VmHWM (reset before the step)')
    else:  # ru_maxrss is in KiB on Linux, bytes on macOS
        scale = 1 if sys.platform == 'darwin' else 1024
        peak.update(
            peak_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss *
            scale,
            how='ru_maxrss (lifetime, incl. build)')


def print_header(args, settings: str) -> list:
    """The run's first line: machine, torch, threads, ``settings``, load
    average; returns the load average."""
    load = loadavg()
    print(f'# {describe_machine(args.device)}, torch {torch.__version__}, '
          f'{torch.get_num_threads()} threads, {settings}; load average '
          f'{load}')
    return load


def warn_slow_cpu_amp(args):
    """Autocast on a CPU without native bf16/fp16 runs reference kernels."""
    if args.device != 'cpu' or not args.amp:
        return
    try:
        native = getattr(torch.ops.mkldnn,
                         f'_is_mkldnn_{args.amp}_supported')()
    except (AttributeError, RuntimeError):
        return
    if not native:
        print(f'WARNING: this CPU has no native {args.amp} support in oneDNN '
              f'(capability {torch.backends.cpu.get_cpu_capability()}): '
              f'{args.amp} convolutions fall back to reference kernels, '
              'often 10-300x slower than fp32.')


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
