"""Keeping frozen and pretrained parts as they are during training."""
import copy
from contextlib import contextmanager

import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm


def set_bn_eval(module: nn.Module) -> None:
    """Put every BatchNorm below ``module`` in eval mode (``norm_eval``)."""
    for m in module.modules():
        if isinstance(m, _BatchNorm):
            m.eval()


@contextmanager
def codec_weights_kept(encoder: nn.Module, init_cfg):
    """Restore ``encoder``'s weights after a parent's ``init_weights``.

    mmengine applies a parent's ``init_cfg`` (e.g. Kaiming on every
    ``Conv2d``) to all submodules, which would wipe the codec's
    rate-distortion weights. A ``Pretrained`` init_cfg is the exception:
    the loaded checkpoint's encoder weights are meant to win.
    """
    cfgs = init_cfg if isinstance(init_cfg, list) else [init_cfg]
    if any(isinstance(c, dict) and c.get('type') == 'Pretrained'
           for c in cfgs):
        yield
        return
    saved = copy.deepcopy(encoder.state_dict())
    yield
    encoder.load_state_dict(saved)
