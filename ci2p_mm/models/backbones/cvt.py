"""CvT: Introducing Convolutions to Vision Transformers (Wu et al., ICCV 2021,
arXiv 2103.15808).

A three-stage hierarchy. Each stage starts with a *convolutional token
embedding* (an overlapping strided convolution on the 2-D token map, then
LayerNorm) and stacks *convolutional transformer blocks*, whose Q, K and V
come from *convolutional projections*: a depthwise convolution with
BatchNorm, then a pointwise projection. K and V use stride 2 (four times
fewer keys and values). There is no position embedding; a class token joins
only the last stage and feeds the classifier.

Written from the paper; hyper-parameters checked against the authors'
configs (github.com/microsoft/CvT, ``experiments/imagenet/cvt/*.yaml``). By
default it computes the authors' function (``lib/models/cls_cvt.py``), so
their released weights run as trained: attention logits scaled by
``1 / sqrt(embed_dims)`` (the full width, not the head width) and QuickGELU
(``x * sigmoid(1.702 x)``) in the MLP. Both are options (``attn_scale``,
``act_cfg``); transformers' port differs only in using plain GELU.
"""
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath
from mmcv.cnn.bricks.transformer import FFN
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.registry import MODELS

from ..utils.freezing import FrozenStagesMixin, freeze
from .settings import check_out_type, resolve_arch, stage_indices


def _resolved_activation(act_cfg: dict) -> dict:
    """``act_cfg`` with its type looked up in mmpretrain's registry.

    mmcv's ``FFN`` builds activations from mmengine's root registry, which
    holds mmcv's (GELU, ...) but not mmpretrain's (QuickGELU) unless a
    runner has set the default scope; a class as ``type`` works anywhere.
    """
    act_cfg = dict(act_cfg)
    name = act_cfg.get('type')
    if isinstance(name, str):
        act_cfg['type'] = MODELS.get(name)
        if act_cfg['type'] is None:
            raise ValueError(f'CvT act_cfg type {name!r} is not registered '
                             f'in mmpretrain (e.g. QuickGELU, GELU).')
    return act_cfg


class ConvTokenEmbed(BaseModule):
    """Convolutional token embedding: strided conv on the token map + LN.

    Args:
        in_channels (int): Channels of the input map.
        embed_dims (int): Channels of the tokens.
        kernel_size (int): Convolution kernel (7 in stage 1, then 3).
        stride (int): Convolution stride (4, then 2).
        padding (int): Convolution padding (2, then 1).
    """

    def __init__(self,
                 in_channels: int,
                 embed_dims: int,
                 kernel_size: int,
                 stride: int,
                 padding: int,
                 init_cfg=None):
        super().__init__(init_cfg)
        self.proj = nn.Conv2d(in_channels, embed_dims, kernel_size, stride,
                              padding)
        self.norm = nn.LayerNorm(embed_dims)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        x = self.proj(x)
        hw = tuple(x.shape[2:])
        return self.norm(x.flatten(2).transpose(1, 2)), hw


class ConvProjection(nn.Module):
    """Depthwise conv + BatchNorm on the token map, then a pointwise
    (linear) projection of the flattened tokens.

    Args:
        dims (int): Token channels (in and out).
        stride (int): 1 for queries, 2 for keys and values.
        kernel_size (int): Depthwise kernel. Defaults to 3.
        bias (bool): Bias of the pointwise projection.
    """

    def __init__(self,
                 dims: int,
                 stride: int,
                 kernel_size: int = 3,
                 bias: bool = True):
        super().__init__()
        self.depthwise = nn.Conv2d(
            dims,
            dims,
            kernel_size,
            stride,
            kernel_size // 2,
            groups=dims,
            bias=False)
        self.bn = nn.BatchNorm2d(dims)
        self.pointwise = nn.Linear(dims, dims, bias=bias)

    def forward(self, x_map: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.depthwise(x_map))
        return self.pointwise(x.flatten(2).transpose(1, 2))


class ConvAttention(BaseModule):
    """Multi-head self-attention with convolutional Q/K/V projections.

    A class token (when present) bypasses the convolutions: it is projected
    by the pointwise layers only and attends / is attended to as usual.

    Args:
        embed_dims (int): Token channels.
        num_heads (int): Attention heads.
        stride_kv (int): Stride of the key/value projections. Defaults to 2.
        qkv_bias (bool): Defaults to True.
        attn_drop (float): Dropout on attention weights.
        proj_drop (float): Dropout after the output projection.
        attn_scale (str): What the attention logits ``q . k`` are divided
            by: ``'embed_dims'``, ``sqrt(embed_dims)`` (the authors' code,
            ``dim_out ** -0.5``, and transformers' port), or
            ``'head_dims'``, ``sqrt(embed_dims / num_heads)`` (the usual
            multi-head attention). Defaults to ``'embed_dims'``.
    """
    ATTN_SCALES = ('embed_dims', 'head_dims')

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 stride_kv: int = 2,
                 qkv_bias: bool = True,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.,
                 attn_scale: str = 'embed_dims',
                 init_cfg=None):
        super().__init__(init_cfg)
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} is not divisible by '
                             f'num_heads {num_heads}.')
        if attn_scale not in self.ATTN_SCALES:
            raise ValueError(f'attn_scale {attn_scale!r} is not one of '
                             f'{self.ATTN_SCALES}.')
        self.num_heads = num_heads
        scaled_dims = embed_dims if attn_scale == 'embed_dims' \
            else embed_dims // num_heads
        self.scale = scaled_dims**-0.5
        self.attn_drop = attn_drop
        self.q = ConvProjection(embed_dims, 1, bias=qkv_bias)
        self.k = ConvProjection(embed_dims, stride_kv, bias=qkv_bias)
        self.v = ConvProjection(embed_dims, stride_kv, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self,
                x: torch.Tensor,
                hw: Tuple[int, int],
                num_cls: int = 0) -> torch.Tensor:
        b, _, c = x.shape
        cls, patches = x[:, :num_cls], x[:, num_cls:]
        x_map = patches.transpose(1, 2).reshape(b, c, *hw)

        def project(proj):
            tokens = proj(x_map)
            if num_cls:
                tokens = torch.cat([proj.pointwise(cls), tokens], dim=1)
            return tokens.reshape(b, -1, self.num_heads,
                                  c // self.num_heads).transpose(1, 2)

        q, k, v = project(self.q), project(self.k), project(self.v)
        x = F.scaled_dot_product_attention(
            q,
            k,
            v,
            dropout_p=self.attn_drop if self.training else 0.,
            scale=self.scale)
        x = x.transpose(1, 2).reshape(b, -1, c)
        return self.proj_drop(self.proj(x))


class CvTBlock(BaseModule):
    """Pre-norm transformer block with convolutional attention.

    Args:
        embed_dims (int): Token channels.
        num_heads (int): Attention heads.
        mlp_ratio (float): FFN hidden size over ``embed_dims``.
        stride_kv (int): Key/value stride.
        qkv_bias (bool): Bias of the Q/K/V projections.
        drop_rate (float): Dropout after projections and in the FFN.
        attn_drop_rate (float): Dropout on attention weights.
        drop_path_rate (float): Stochastic depth of both residuals.
        attn_scale (str): See :class:`ConvAttention`.
        act_cfg (dict): The MLP's activation, a type in mmpretrain's
            ``MODELS`` (which sees mmcv's too). Defaults to QuickGELU.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 mlp_ratio: float = 4.,
                 stride_kv: int = 2,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 attn_scale: str = 'embed_dims',
                 act_cfg: dict = dict(type='QuickGELU'),
                 init_cfg=None):
        super().__init__(init_cfg)
        self.ln1 = nn.LayerNorm(embed_dims)
        self.attn = ConvAttention(embed_dims, num_heads, stride_kv, qkv_bias,
                                  attn_drop_rate, drop_rate, attn_scale)
        self.drop_path = DropPath(drop_path_rate)
        self.ln2 = nn.LayerNorm(embed_dims)
        self.ffn = FFN(
            embed_dims=embed_dims,
            feedforward_channels=int(embed_dims * mlp_ratio),
            ffn_drop=drop_rate,
            dropout_layer=dict(type='DropPath', drop_prob=drop_path_rate),
            act_cfg=_resolved_activation(act_cfg))

    def forward(self,
                x: torch.Tensor,
                hw: Tuple[int, int],
                num_cls: int = 0) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.ln1(x), hw, num_cls))
        return self.ffn(self.ln2(x), identity=x)


class CvTStage(BaseModule):
    """Convolutional token embedding, optional class token, blocks."""

    def __init__(self, in_channels: int, embed_dims: int, num_heads: int,
                 patch_settings: Tuple[int, int, int], with_cls_token: bool,
                 drop_path_rates: Sequence[float], **block_kwargs):
        super().__init__()
        self.embed = ConvTokenEmbed(in_channels, embed_dims, *patch_settings)
        self.cls_token = nn.Parameter(torch.zeros(
            1, 1, embed_dims)) if with_cls_token else None
        self.blocks = ModuleList([
            CvTBlock(
                embed_dims, num_heads, drop_path_rate=dpr, **block_kwargs)
            for dpr in drop_path_rates
        ])

    def forward(self, x_map: torch.Tensor):
        """Returns (tokens [B, N(+1), C], (H, W))."""
        x, hw = self.embed(x_map)
        num_cls = 0
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.size(0), -1, -1), x], 1)
            num_cls = 1
        for block in self.blocks:
            x = block(x, hw, num_cls)
        return x, hw


@MODELS.register_module()
class CvT(FrozenStagesMixin, BaseBackbone):
    """Convolutional vision Transformer (CvT).

    ======= ================ ============= =========== =====================
    stage   token embedding  tokens @224   width       (13 / 21 / W24)
    ======= ================ ============= =========== =====================
    0       7x7, stride 4    56x56         64 / 64 / 192
    1       3x3, stride 2    28x28         192 / 192 / 768
    2       3x3, stride 2    14x14 (+cls)  384 / 384 / 1024
    ======= ================ ============= =========== =====================

    Depths: 13 = (1, 2, 10), 21 = (1, 4, 16), W24 = (2, 2, 20); heads are
    width / 64. Paper figures (ImageNet head): CvT-13 20M params, 4.5G FLOPs
    at 224; CvT-21 32M, 7.1G at 224; CvT-W24 277M, 193.2G at 384.

    Args:
        arch (str | dict): ``'13'``, ``'21'``, ``'w24'`` or a dict with
            ``embed_dims``, ``depths``, ``num_heads`` (one entry per stage).
            Defaults to ``'13'``.
        in_channels (int): Image channels. Defaults to 3.
        out_indices (int | Sequence[int]): Stages to output (negative counts
            from the end). Defaults to -1.
        out_type (str): ``'cls_token'`` (final-LN class token; last stage
            only), ``'avg_featmap'`` (final-LN mean of the patch tokens; last
            stage only), ``'featmap'`` (NCHW map of every stage) or
            ``'raw'`` (tokens ``[B, N, C]``, class token first in the last
            stage). Defaults to ``'cls_token'``.
        mlp_ratio (float): Defaults to 4.
        qkv_bias (bool): Defaults to True.
        drop_rate (float): Dropout in the blocks. Defaults to 0.
        attn_drop_rate (float): Attention dropout. Defaults to 0.
        drop_path_rate (float): Stochastic depth, rising linearly over the
            blocks of the last stage only (as the authors' configs: 0.1 for
            CvT-13/21, 0.3 for W24). Defaults to 0.
        with_cls_token (bool): Class token in the last stage. Defaults to
            True (False turns ``'cls_token'`` output off).
        attn_scale (str): ``'embed_dims'``: attention logits divided by
            ``sqrt(embed_dims)``, the authors' rule (``dim_out ** -0.5`` in
            ``cls_cvt.py``), also transformers'; ``'head_dims'``: by
            ``sqrt(embed_dims / num_heads)``, the usual multi-head rule.
            Defaults to ``'embed_dims'``.
        act_cfg (dict): The MLP activation. Defaults to
            ``dict(type='QuickGELU')`` (mmpretrain's, ``x * sigmoid(1.702
            x)``), the authors'; ``dict(type='GELU')`` computes
            transformers' ``CvtForImageClassification``, which runs the
            same weights with plain GELU.
        frozen_stages (int): Freeze this many stages (-1: none).
        norm_eval (bool): Keep the BatchNorms of the projections in eval
            mode while training (detection fine-tuning).
        init_cfg (dict | list, optional): Defaults to truncated-normal
            Linear weights (std 0.02) and unit norms.
    """
    arch_zoo = {
        '13':
        dict(
            embed_dims=[64, 192, 384], depths=[1, 2, 10], num_heads=[1, 3, 6]),
        '21':
        dict(
            embed_dims=[64, 192, 384], depths=[1, 4, 16], num_heads=[1, 3, 6]),
        'w24':
        dict(
            embed_dims=[192, 768, 1024],
            depths=[2, 2, 20],
            num_heads=[3, 12, 16]),
    }
    #: Token embedding of each stage: (kernel, stride, padding).
    PATCH_SETTINGS = ((7, 4, 2), (3, 2, 1), (3, 2, 1))
    OUT_TYPES = {'cls_token', 'avg_featmap', 'featmap', 'raw'}

    def __init__(self,
                 arch: Union[str, dict] = '13',
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = -1,
                 out_type: str = 'cls_token',
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 with_cls_token: bool = True,
                 attn_scale: str = 'embed_dims',
                 act_cfg: dict = dict(type='QuickGELU'),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = [
                     dict(
                         type='TruncNormal', layer='Linear', std=.02, bias=0.),
                     dict(
                         type='Constant',
                         layer=['LayerNorm', '_BatchNorm'],
                         val=1.,
                         bias=0.)
                 ]):
        super().__init__(init_cfg)
        arch = resolve_arch('CvT', self.arch_zoo, arch,
                            ('embed_dims', 'depths', 'num_heads'))
        self.out_type = check_out_type(out_type, self.OUT_TYPES)
        if out_type == 'cls_token' and not with_cls_token:
            raise ValueError("out_type='cls_token' needs with_cls_token.")
        self.arch_settings = arch
        self.embed_dims = list(arch['embed_dims'])
        self.num_stages = len(self.embed_dims)
        self.with_cls_token = with_cls_token

        self.stages = ModuleList()
        channels = in_channels
        for i in range(self.num_stages):
            last = i == self.num_stages - 1
            depth = arch['depths'][i]
            dpr = np.linspace(0, drop_path_rate, depth).tolist() \
                if last else [0.] * depth
            self.stages.append(
                CvTStage(
                    channels,
                    self.embed_dims[i],
                    arch['num_heads'][i],
                    self.PATCH_SETTINGS[i],
                    with_cls_token=with_cls_token and last,
                    drop_path_rates=dpr,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    drop_rate=drop_rate,
                    attn_drop_rate=attn_drop_rate,
                    attn_scale=attn_scale,
                    act_cfg=act_cfg))
            channels = self.embed_dims[i]

        self.out_indices = stage_indices(out_indices, self.num_stages)
        if out_type in ('cls_token', 'avg_featmap') and self.out_indices != [
                self.num_stages - 1
        ]:
            raise ValueError(f"out_type={out_type!r} is for the last stage "
                             f"only; use 'featmap' for multi-scale outputs.")
        if out_type in ('cls_token', 'avg_featmap'):
            self.ln_out = nn.LayerNorm(self.embed_dims[-1])
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        if frozen_stages > 0:
            self._freeze_stages()

    def init_weights(self):
        super().init_weights()
        if not (isinstance(self.init_cfg, dict)
                and self.init_cfg['type'] == 'Pretrained'):
            last = self.stages[-1]
            if last.cls_token is not None:
                trunc_normal_(last.cls_token, std=.02)

    def _freeze_stages(self):
        freeze(*self.stages[:self.frozen_stages])

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        outs = []
        for i, stage in enumerate(self.stages):
            tokens, hw = stage(x)
            num_cls = 0 if stage.cls_token is None else 1
            patches = tokens[:, num_cls:]
            x = patches.transpose(1, 2).reshape(x.size(0), -1, *hw)
            if i not in self.out_indices:
                continue
            if self.out_type == 'featmap':
                outs.append(x)
            elif self.out_type == 'raw':
                outs.append(tokens)
            elif self.out_type == 'cls_token':
                outs.append(self.ln_out(tokens[:, 0]))
            else:
                outs.append(self.ln_out(patches).mean(dim=1))
        return tuple(outs)
