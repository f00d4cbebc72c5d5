"""Runner settings shared by tools/train.py and tools/test.py."""
import argparse
import contextlib
import os
import os.path as osp
from copy import deepcopy
from typing import List, Optional, Sequence

import torch
import torch.distributed as torch_dist
from mmengine.config import ConfigDict, DictAction
from mmengine.device import get_device
from mmengine.optim import OptimWrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from mmengine.runner.amp import autocast
from mmpretrain.registry import OPTIM_WRAPPERS

from ci2p_mm.utils.errors import ConfigError
from .runner import CI2PRunner


def configure_launcher(cfg, launcher: str) -> None:
    """Set the launcher; on machines without a GPU, run on gloo.

    mmengine's ``pytorch`` launcher calls ``torch.cuda.set_device``
    unconditionally, so without CUDA we start the gloo process group from
    torchrun's environment ourselves; the Runner then uses it as it is,
    and DDP wraps the CPU model without device ids.
    """
    cfg.launcher = launcher
    if launcher == 'none' or torch.cuda.is_available():
        return
    cfg.merge_from_dict({'env_cfg.dist_cfg.backend': 'gloo'})
    if launcher == 'pytorch' and not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo')
    # mmengine passes device_ids=[LOCAL_RANK] to DDP unless the wrapper cfg
    # says otherwise; CPU modules need None.
    cfg.setdefault(
        'model_wrapper_cfg',
        ConfigDict(type='MMDistributedDataParallel', broadcast_buffers=False))
    cfg.model_wrapper_cfg.setdefault('device_ids', None)


def close_distributed() -> None:
    """End the process group once a run is over.

    mmengine leaves it to interpreter shutdown, where gloo's threads can be
    torn down while another rank still talks to them and abort that rank
    ("terminate called without an active exception", SIGABRT; seen in the
    two-process CPU run of tests/test_tools.py). A barrier first, so that
    every rank has finished its last collective.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()


def set_default_dataloader_cfg(cfg,
                               field: str,
                               no_pin_memory: bool = False,
                               no_persistent_workers: bool = False) -> None:
    """mmpretrain's dataloader defaults, valid on CPU and with 0 workers.

    Call it after ``--cfg-options`` are merged: the defaults depend on the
    final ``num_workers``. ``no_pin_memory`` and ``no_persistent_workers``
    are mmpretrain's ``--no-pin-memory`` and ``--no-persistent-workers``.
    """
    if cfg.get(field, None) is None:
        return
    loader = ConfigDict(collate_fn=dict(type='default_collate'))
    loader.update(cfg[field])
    for key, low in (('batch_size', 1), ('num_workers', 0)):
        value = loader.get(key, low)
        whole = isinstance(value, int) and not isinstance(value, bool)
        if not whole or value < low:
            raise ConfigError(f'{field}.{key}={value!r}: must be a whole '
                              f'number of at least {low} (--cfg-options '
                              f'{field}.{key}=N).')
    loader.pin_memory = not no_pin_memory and loader.get(
        'pin_memory', torch.cuda.is_available())
    # torch refuses persistent workers without workers.
    workers = loader.get('num_workers', 0) > 0
    loader.persistent_workers = not no_persistent_workers and workers and \
        loader.get('persistent_workers', workers)
    cfg[field] = loader


def configure_tta(cfg) -> None:
    """mmpretrain's ``tools/test.py --tta``: the config's ``tta_model`` and
    ``tta_pipeline``, else flip TTA averaging the classification scores.

    The checkpoint is loaded into the wrapped classifier (``CI2PRunner``
    checks it against that model, as mmengine loads it).
    """
    if 'tta_model' not in cfg:
        cfg.tta_model = dict(type='mmpretrain.AverageClsScoreTTA')
    if 'tta_pipeline' not in cfg:
        test_pipeline = cfg.test_dataloader.dataset.pipeline
        cfg.tta_pipeline = deepcopy(test_pipeline)
        cfg.tta_pipeline[-1] = dict(
            type='TestTimeAug',
            transforms=[[
                dict(type='RandomFlip', prob=1.),
                dict(type='RandomFlip', prob=0.)
            ], [test_pipeline[-1]]])
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline


def parse_runner_args(parser: argparse.ArgumentParser,
                      verb: str,
                      argv: Optional[List[str]] = None):
    """Add the options ``tools/train.py`` and ``tools/test.py`` share, as
    mmpretrain's tools spell them (``verb``: 'train' or 'test'), and parse
    ``argv``."""
    add = parser.add_argument
    add('--no-pin-memory',
        action='store_true',
        help='disable pin_memory in the dataloaders')
    add('--no-persistent-workers',
        action='store_true',
        help='disable persistent_workers in the dataloaders')
    add('--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. '
        f'{verb}_dataloader.dataset.data_root=/data/animals10')
    add('--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    add('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    # torchrun sets LOCAL_RANK; older launchers pass --local_rank.
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_runner_args(cfg, args, splits: Sequence[str]):
    """After a tool's own options: the launcher, the work dir
    (``--work-dir``, else the config's, else ``work_dirs/<config name>``),
    ``--cfg-options``, then the dataloader defaults of ``splits`` (after
    ``--cfg-options``: they depend on the final ``num_workers``)."""
    configure_launcher(cfg, args.launcher)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    for split in splits:
        set_default_dataloader_cfg(cfg, f'{split}_dataloader',
                                   args.no_pin_memory,
                                   args.no_persistent_workers)
    return cfg


def build_runner(cfg) -> Runner:
    """:class:`~ci2p_mm.engine.CI2PRunner` (checked checkpoint loading,
    atomic saving, exact resume), or the config's ``runner_type``."""
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return CI2PRunner.from_cfg(cfg)


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """``--amp`` on the CPU: bf16 autocast around the forward and the loss.

    mmengine's ``AmpOptimWrapper`` asserts a GPU (CUDA, NPU or MLU); CPU
    autocast has one dtype, bfloat16, whose range is float32's, so no loss
    scaling is needed and a plain ``OptimWrapper`` steps.
    """

    @contextlib.contextmanager
    def optim_context(self, model):
        with super().optim_context(model), autocast(dtype=torch.bfloat16):
            yield


def configure_amp(cfg) -> None:
    """``tools/train.py --amp``: mmengine's ``AmpOptimWrapper`` (dynamic
    loss scaling) on a GPU, :class:`CPUAmpOptimWrapper` on the CPU."""
    if get_device() != 'cpu':
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
        return
    cfg.optim_wrapper.type = 'CPUAmpOptimWrapper'
    for key in ('loss_scale', 'dtype', 'use_fsdp'):
        cfg.optim_wrapper.pop(key, None)
