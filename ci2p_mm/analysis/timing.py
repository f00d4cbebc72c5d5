"""Timing helpers shared by the benchmark modes (:mod:`.step`,
:mod:`.end_to_end`, :mod:`.latent_storage`): precision and compile
settings, device synchronisation, the config's optimizer, and what else
ran on the machine while a step was timed."""
import contextlib
import copy
import os
import os.path as osp
import platform
import resource
import time

import torch
from mmengine.optim import build_optim_wrapper as build_mmengine_optim_wrapper

from ci2p_mm.engine import compile_forward

#: The command line the benchmark modules serve (printed in results).
TOOL = 'tools/analysis_tools/benchmark.py'
MIB = 1024 * 1024


def amp_dtype(args):
    return {None: None, 'bf16': torch.bfloat16, 'fp16': torch.float16}[
        args.amp]


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


def build_optim_wrapper(model, optim_cfg, args):
    """The config's optimizer in an OptimWrapper (AMP one on CUDA)."""
    optim_cfg = copy.deepcopy(optim_cfg)
    optim_cfg.pop('type', None)
    if args.amp and args.device == 'cuda':
        optim_cfg['type'] = 'AmpOptimWrapper'
        optim_cfg['dtype'] = {'bf16': 'bfloat16', 'fp16': 'float16'}[args.amp]
        optim_cfg.setdefault('loss_scale', 'dynamic')
    else:
        # mmengine's AmpOptimWrapper asserts CUDA; on CPU autocast is
        # applied around the forward by this tool instead.
        optim_cfg['type'] = 'OptimWrapper'
    return build_mmengine_optim_wrapper(model, optim_cfg)


def maybe_compile(model, args):
    """The model with its forward compiled as ``tools/train.py --compile``
    compiles it (:func:`ci2p_mm.engine.compile_forward`)."""
    if not args.compile:
        return model
    kwargs = {} if args.compile_mode is None else dict(mode=args.compile_mode)
    return compile_forward(model, **kwargs)


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
    check = dict(bf16='_is_mkldnn_bf16_supported',
                 fp16='_is_mkldnn_fp16_supported')[args.amp]
    try:
        native = getattr(torch.ops.mkldnn, check)()
    except (AttributeError, RuntimeError):
        return
    if not native:
        print(f'WARNING: this CPU has no native {args.amp} support in oneDNN '
              f'(capability {torch.backends.cpu.get_cpu_capability()}): '
              f'{args.amp} convolutions fall back to reference kernels, '
              'often 10-300x slower than fp32.', flush=True)
