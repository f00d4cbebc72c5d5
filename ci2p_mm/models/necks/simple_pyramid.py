"""A ViTDet-style simple feature pyramid for single-scale CI2P backbones."""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmpretrain.models.utils import build_norm_layer
from mmpretrain.registry import MODELS


@MODELS.register_module()
class CI2PSimplePyramid(BaseModule):
    """Simple feature pyramid (ViTDet, Li et al. 2022) from one feature map.

    :class:`~ci2p_mm.models.CI2PViT` yields a single map at stride 32. This
    neck builds a pyramid from it with deconvolutions (up) and max pooling
    (down), as ViTDet's simple FPN does, without a top-down path. With
    ``out_channels=None`` it returns the raw pyramid, to feed mmdet's
    ``FPN`` (``neck=[dict(type='CI2PSimplePyramid'), dict(type='FPN',
    in_channels=[192, 384, 768, 768], ...)]``); with an int it ends each
    level with ViTDet's 1x1 + 3x3 convs (norm after each) to that width, and
    can replace the FPN.

    For ``in_channels=C`` at stride ``s`` (CI2PViT-B: C=768, s=32):

    ============= ========== ========= ================================
    scale_factor  stride     channels  ops
    ============= ========== ========= ================================
    4.0           s/4 (8)    C/4       deconv 2x2, norm, GELU, deconv
    2.0           s/2 (16)   C/2       deconv 2x2
    1.0           s (32)     C         identity
    0.5           2s (64)    C         max pool 2x2 (ceil mode)
    0.25          4s (128)   C         max pool 4x4 (ceil mode)
    ============= ========== ========= ================================

    (channels column: ``out_channels=None``; otherwise all ``out_channels``.)
    The output order follows ``scale_factors``; the default
    ``(4.0, 2.0, 1.0, 0.5)`` gives strides 8/16/32/64, finest first, as FPN
    expects.

    Args:
        in_channels (int): Channels of the input map. Defaults to 768.
        scale_factors (Sequence[float]): Subset of (4, 2, 1, 0.5, 0.25).
            Defaults to (4.0, 2.0, 1.0, 0.5).
        out_channels (int, optional): Width of every level after ViTDet's
            output convs; ``None`` (default) skips them.
        in_index (int): Which backbone output to use. Defaults to -1.
        norm_cfg (dict): Norm inside the 4x branch and after the output
            convs. Defaults to ``dict(type='LN2d', eps=1e-6)``.
        init_cfg (dict | list, optional): Initialization config.
    """
    _SUPPORTED = (4.0, 2.0, 1.0, 0.5, 0.25)

    def __init__(self,
                 in_channels: int = 768,
                 scale_factors: Sequence[float] = (4.0, 2.0, 1.0, 0.5),
                 out_channels: Optional[int] = None,
                 in_index: int = -1,
                 norm_cfg: dict = dict(type='LN2d', eps=1e-6),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        bad = [s for s in scale_factors if float(s) not in self._SUPPORTED]
        if bad or not scale_factors:
            raise ValueError(f'scale_factors must be a non-empty subset of '
                             f'{self._SUPPORTED}; got {tuple(scale_factors)}.')
        if in_channels % 4:
            raise ValueError(f'in_channels must be divisible by 4; got '
                             f'{in_channels}.')
        self.in_channels = in_channels
        self.scale_factors = tuple(float(s) for s in scale_factors)
        self.in_index = in_index
        c = in_channels
        self.stages = nn.ModuleList()
        level_channels: List[int] = []
        for scale in self.scale_factors:
            width = int(c / max(scale, 1.))  # up: fewer channels; down: same
            if scale == 4.0:
                stage = nn.Sequential(
                    nn.ConvTranspose2d(c, c // 2, 2, stride=2),
                    build_norm_layer(norm_cfg, c // 2), nn.GELU(),
                    nn.ConvTranspose2d(c // 2, c // 4, 2, stride=2))
            elif scale == 2.0:
                stage = nn.ConvTranspose2d(c, c // 2, 2, stride=2)
            elif scale == 1.0:
                stage = nn.Identity()
            else:
                k = int(round(1 / scale))
                stage = nn.MaxPool2d(kernel_size=k, stride=k, ceil_mode=True)
            if out_channels is not None:
                stage = nn.Sequential(
                    stage, nn.Conv2d(width, out_channels, 1, bias=False),
                    build_norm_layer(norm_cfg, out_channels),
                    nn.Conv2d(
                        out_channels, out_channels, 3, padding=1, bias=False),
                    build_norm_layer(norm_cfg, out_channels))
                width = out_channels
            self.stages.append(stage)
            level_channels.append(width)
        #: Channels of each output level (FPN's ``in_channels``).
        self.out_channels = level_channels

    def forward(self,
                inputs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        x = inputs[self.in_index] if isinstance(inputs,
                                                (list, tuple)) else inputs
        if x.dim() != 4 or x.size(1) != self.in_channels:
            raise ValueError(
                f'CI2PSimplePyramid expects an NCHW map with '
                f'{self.in_channels} channels (the backbone needs '
                f'out_type="featmap"); got '
                f'{tuple(x.shape)}.')
        return tuple(stage(x) for stage in self.stages)
