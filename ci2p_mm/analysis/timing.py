"""Timing helpers shared by the benchmark modes (:mod:`.step`,
:mod:`.end_to_end`, :mod:`.latent_storage`): precision and compile
settings, device synchronisation, the config's optimizer, and what else
ran on the machine while a step was timed."""
import contextlib
import copy
import json
import os
import os.path as osp
import platform
import resource
import time

import torch
from mmengine.optim import build_optim_wrapper as build_mmengine_optim_wrapper

from ci2p_mm.utils.io import write_text_atomically

#: The command line the benchmark modules serve (printed in results).
TOOL = 'tools/analysis_tools/benchmark.py'
MIB = 1024 * 1024


def amp_dtype(args):
    return {
        None: None,
        'bf16': torch.bfloat16,
        'fp16': torch.float16
    }[args.amp]


def autocast(args):
    dtype = amp_dtype(args)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=args.device, dtype=dtype)


def inference_context(args):
    """``inference_mode``; ``no_grad`` for compiled models (with torch 2.14
    dynamo fails a guard on mmcv's numpy ``drop_prob`` under inference_mode;
    mmengine's val/test loops use no_grad anyway)."""
    return torch.no_grad() if args.compile else torch.inference_mode()


def synchronize(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def set_cudnn_benchmark(cfg, args):
    """cuDNN autotuning as the config's ``env_cfg.cudnn_benchmark`` sets
    it for training (mmengine's Runner does the same)."""
    if args.device == 'cuda':
        torch.backends.cudnn.benchmark = bool(
            cfg.get('env_cfg', {}).get('cudnn_benchmark', False))


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


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors
               if isinstance(t, torch.Tensor))


def persistent_bytes(model, optim_wrapper, inputs) -> int:
    """Bytes a training process holds between steps: weights, buffers,
    optimizer state and the batch (for in-process peak memory)."""
    state = [
        v for s in optim_wrapper.optimizer.state.values() for v in s.values()
    ]
    return tensor_bytes(
        list(model.parameters()) + list(model.buffers()) + state + [inputs])


class OtherLoad:
    """CPU cores used by *other* processes over an interval (Linux).

    Busy time of the whole machine from ``/proc/stat`` minus this process's
    own CPU time: a direct measure of how much the rest of the machine
    competed with a timed step (``loadavg`` also counts this process).
    """

    def __init__(self):
        self.tick = os.sysconf('SC_CLK_TCK') if hasattr(os, 'sysconf') else 100
        self.ok = osp.exists('/proc/stat')

    def snapshot(self):
        if not self.ok:
            return None
        with open('/proc/stat') as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        busy = (sum(fields[:8]) - idle) / self.tick
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        mine = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
        return busy, mine, time.perf_counter()

    @staticmethod
    def cores(start, end):
        if start is None or end is None or end[2] <= start[2]:
            return None
        other = (end[0] - start[0]) - (end[1] - start[1])
        return max(0.0, other / (end[2] - start[2]))


def loadavg():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


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


def write_report(path: str, report: dict, quiet: bool = False) -> None:
    """A mode's results as JSON (written atomically)."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    write_text_atomically(path, json.dumps(report, indent=2))
    if not quiet:
        print(f'wrote {path}', flush=True)
