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


def freeze(*modules: nn.Module) -> None:
    """Eval mode and no gradients for each of ``modules``."""
    for module in modules:
        module.eval()
        module.requires_grad_(False)


class FrozenStagesMixin:
    """``train()`` for backbones with ``frozen_stages`` (and ``norm_eval``).

    ``nn.Module.train()`` puts every submodule back in training mode, so a
    frozen stage's BatchNorm statistics and dropout would start moving again
    after ``model.train()``; this re-freezes them each time (mmpretrain's
    ViT freezes only at construction) and, with ``norm_eval``, keeps every
    BatchNorm in eval mode. The backbone defines ``_freeze_stages()``.
    Put it first among the bases so that its ``train`` wins.
    """

    def has_frozen_stages(self) -> bool:
        """Whether ``frozen_stages`` freezes anything (mmpretrain's
        MobileNet-style backbones count from -1 and override this)."""
        return self.frozen_stages > 0

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.has_frozen_stages():
            self._freeze_stages()
        if mode and getattr(self, 'norm_eval', False):
            set_bn_eval(self)
        return self


@contextmanager
def codec_weights_kept(ci2p_encoder: nn.Module, init_cfg):
    """Restore the codec's weights after a parent's ``init_weights``.

    mmengine applies a parent's ``init_cfg`` (e.g. Kaiming on every
    ``Conv2d``) to all submodules, which would wipe the codec's
    rate-distortion weights (or CompressAI's own init of a random codec).
    Weights that arrive during the parent's ``init_weights`` win: the
    encoder's own ``init_weights`` fetching its pretrained codec (it runs
    after the parent's init_cfg), or a ``Pretrained`` init_cfg.

    Args:
        ci2p_encoder: a :class:`~ci2p_mm.models.CI2PEncoder`.
        init_cfg: the parent's ``init_cfg``.
    """
    cfgs = init_cfg if isinstance(init_cfg, list) else [init_cfg]
    if any(
            isinstance(c, dict) and c.get('type') == 'Pretrained'
            for c in cfgs):
        yield
        return
    encoder = ci2p_encoder.encoder
    saved = copy.deepcopy(encoder.state_dict())
    loads = ci2p_encoder.codec_weight_loads
    yield
    if ci2p_encoder.codec_weight_loads == loads:
        encoder.load_state_dict(saved)
