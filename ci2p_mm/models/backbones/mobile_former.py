"""Mobile-Former: Bridging MobileNet and Transformer (Chen et al., CVPR 2022,
arXiv 2108.05895).

A MobileNet ("Mobile", local features) and a tiny Transformer ("Former", a
handful of learnable global tokens) run in parallel and talk through a
two-way bridge in every block:

* Mobile -> Former: the tokens query the local feature map; the key and
  value projections on the (large) local side are removed.
* Former: attention among the tokens, FFN (expansion 2), post-LayerNorm.
* Mobile: an inverted bottleneck whose activations are dynamic ReLUs with
  coefficients from an MLP on the first token.
* Mobile <- Former: the local features query the tokens; the query
  projection on the local side is removed.

Written from the paper; block settings, the gating of the bridge and the
lightweight token attention (query projection only) were read from the
authors' code (github.com/AAboys/MobileFormer), which the paper's
params/FLOPs describe.
"""
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule, ModuleList
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.models.utils import channel_shuffle
from mmpretrain.registry import MODELS

from ..utils.freezing import FrozenStagesMixin, freeze
from .settings import check_out_type, resolve_arch, stage_indices


def conv_bn(in_channels: int,
            out_channels: int,
            kernel_size: int = 1,
            stride: int = 1,
            groups: int = 1) -> nn.Sequential:
    """Bias-free convolution followed by BatchNorm."""
    return nn.Sequential(
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            kernel_size // 2,
            groups=groups,
            bias=False), nn.BatchNorm2d(out_channels))


def multi_head_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                         num_heads: int) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d)) V for ``[B, N, C]`` inputs, ``num_heads``
    heads (plain matmuls, so FLOP counters see them)."""
    b, n, c = q.shape

    def heads(t):
        return t.reshape(b, t.size(1), num_heads, -1).transpose(1, 2)

    q, k, v = heads(q), heads(k), heads(v)
    attn = (q @ k.transpose(-2, -1)) * q.size(-1)**-0.5
    out = attn.softmax(dim=-1) @ v
    return out.transpose(1, 2).reshape(b, n, -1)


class DynamicReLU(nn.Module):
    """Dynamic ReLU ``max(a1 * x, a2 * x)``, per channel, with ``a1`` in
    [0, 2] and ``a2`` in [-1, 1] from two linear layers on a token."""

    def __init__(self, channels: int, token_dims: int, reduction: int = 4):
        super().__init__()
        self.coefficients = nn.Sequential(
            nn.Linear(token_dims, token_dims // reduction),
            nn.ReLU(inplace=True),
            nn.Linear(token_dims // reduction, 2 * channels), nn.Hardsigmoid())

    def forward(self, x: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
        a1, a2 = self.coefficients(token)[:, :, None, None].chunk(2, dim=1)
        return torch.maximum(x * (2 * a1), x * (2 * a2 - 1))


class MobileToFormer(nn.Module):
    """Tokens attend to the local features (keys = values = the features,
    no projections on the local side); the result is gated per channel by
    the tokens, projected back and added, then LayerNorm."""

    def __init__(self,
                 channels: int,
                 token_dims: int,
                 num_heads: int = 2,
                 drop_path_rate: float = 0.):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(token_dims, channels)
        self.gate = nn.Sequential(
            nn.Linear(token_dims, channels), nn.Hardsigmoid())
        self.proj = nn.Linear(channels, token_dims)
        self.drop_path = DropPath(drop_path_rate)
        self.norm = nn.LayerNorm(token_dims)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        local = x.flatten(2).transpose(1, 2)  # [B, HW, C]
        out = multi_head_attention(
            self.q(tokens), local, local, self.num_heads)
        out = self.proj(out * (2 * self.gate(tokens)))
        return self.norm(tokens + self.drop_path(out))


class Former(nn.Module):
    """Attention among the global tokens (query projection only: keys and
    values are the tokens), output projection, then an FFN with
    expansion 2; both residuals post-LayerNorm."""

    def __init__(self,
                 token_dims: int,
                 num_heads: int = 4,
                 ffn_ratio: int = 2,
                 drop_path_rate: float = 0.):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(token_dims, token_dims)
        self.proj = nn.Linear(token_dims, token_dims)
        self.norm1 = nn.LayerNorm(token_dims)
        self.ffn = nn.Sequential(
            nn.Linear(token_dims, token_dims * ffn_ratio), nn.GELU(),
            nn.Linear(token_dims * ffn_ratio, token_dims))
        self.norm2 = nn.LayerNorm(token_dims)
        self.drop_path = DropPath(drop_path_rate)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out = multi_head_attention(
            self.q(tokens), tokens, tokens, self.num_heads)
        tokens = self.norm1(tokens + self.drop_path(self.proj(out)))
        return self.norm2(tokens + self.ffn(tokens))


class FormerToMobile(nn.Module):
    """Local features attend to the tokens (queries = the features, no
    projection on the local side); the result is added to the features."""

    def __init__(self,
                 channels: int,
                 token_dims: int,
                 num_heads: int = 2,
                 drop_path_rate: float = 0.):
        super().__init__()
        self.num_heads = num_heads
        self.k = nn.Linear(token_dims, channels)
        self.v = nn.Linear(token_dims, channels)
        self.drop_path = DropPath(drop_path_rate)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        out = multi_head_attention(
            x.flatten(2).transpose(1, 2), self.k(tokens), self.v(tokens),
            self.num_heads)
        return x + self.drop_path(out.transpose(1, 2).reshape(b, c, h, w))


class LiteBottleneck(nn.Module):
    """Stage-1 block of the Mobile side (no bridge): a 3x3 depthwise conv
    that expands the channels, ReLU6, a pointwise projection."""

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int,
                 expand_ratio: int,
                 groups: int = 1):
        super().__init__()
        hidden = in_channels * expand_ratio
        self.depthwise = conv_bn(
            in_channels, hidden, 3, stride, groups=in_channels)
        self.pointwise = conv_bn(hidden, out_channels, groups=groups)
        self.shuffle_groups = in_channels if groups > 1 else 1
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor, tokens: torch.Tensor):
        out = F.relu6(self.depthwise(x))
        if self.shuffle_groups > 1:
            out = channel_shuffle(out, self.shuffle_groups)
        out = self.pointwise(out)
        return (x + out if self.residual else out), tokens


class MobileFormerBlock(BaseModule):
    """Mobile -> Former, Former, Mobile (dynamic ReLU), Mobile <- Former.

    The Mobile sub-block is an inverted bottleneck (1x1 expand, 3x3
    depthwise, 1x1 project; dynamic ReLU after the first two) at stride 1.
    Downsampling blocks use 3x3 depthwise (stride 2, channel multiplier
    ``expand_ratio``) -> 1x1 project -> 3x3 depthwise (multiplier
    ``expand_ratio2``) -> 1x1 project, with a residual around the second
    pair and dynamic ReLU after both depthwise convs.

    Args:
        in_channels (int): Local input channels.
        out_channels (int): Local output channels.
        stride (int): 1 or 2.
        expand_ratio (int): Expansion of the first conv.
        expand_ratio2 (int): Expansion of the second depthwise conv
            (downsampling blocks).
        token_dims (int): Width of the global tokens.
        groups (int): Groups of the pointwise convs (channel shuffle
            after them when > 1). Defaults to 1.
        drop_path_rate (float): Stochastic depth of all residuals.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int,
                 expand_ratio: int,
                 expand_ratio2: int,
                 token_dims: int,
                 groups: int = 1,
                 drop_path_rate: float = 0.,
                 init_cfg=None):
        super().__init__(init_cfg)
        self.stride = stride
        self.groups = groups
        self.mobile_to_former = MobileToFormer(
            in_channels, token_dims, drop_path_rate=drop_path_rate)
        self.former = Former(token_dims, drop_path_rate=drop_path_rate)
        hidden = in_channels * expand_ratio
        if stride == 1:
            self.conv1 = conv_bn(in_channels, hidden, groups=groups)
            self.conv2 = conv_bn(hidden, hidden, 3, groups=hidden)
            self.conv3 = conv_bn(hidden, out_channels, groups=groups)
            self.act1 = DynamicReLU(hidden, token_dims)
            self.act2 = DynamicReLU(hidden, token_dims)
        else:
            hidden2 = out_channels * expand_ratio2
            self.conv1 = conv_bn(
                in_channels, hidden, 3, stride, groups=in_channels)
            self.conv2 = conv_bn(hidden, out_channels, groups=groups)
            self.conv3 = conv_bn(out_channels, hidden2, 3, groups=out_channels)
            self.conv4 = conv_bn(hidden2, out_channels, groups=groups)
            self.act1 = DynamicReLU(hidden, token_dims)
            self.act2 = DynamicReLU(hidden2, token_dims)
        self.drop_path = DropPath(drop_path_rate)
        self.former_to_mobile = FormerToMobile(
            out_channels, token_dims, drop_path_rate=drop_path_rate)
        self.residual = stride == 1 and in_channels == out_channels

    def _shuffle(self, x: torch.Tensor, groups: int) -> torch.Tensor:
        return channel_shuffle(x, groups) if self.groups > 1 else x

    def mobile(self, x: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            out = self._shuffle(self.conv1(x), self.groups)
            out = self.act2(self.conv2(self.act1(out, token)), token)
            return self._shuffle(self.conv3(out), self.groups)
        out = self._shuffle(self.conv1(x), x.size(1))
        out = self.conv2(self.act1(out, token))
        inner = self._shuffle(self.conv3(out), out.size(1))
        return out + self.drop_path(self.conv4(self.act2(inner, token)))

    def forward(self, x: torch.Tensor, tokens: torch.Tensor):
        tokens = self.former(self.mobile_to_former(x, tokens))
        out = self.mobile(x, tokens[:, 0])
        if self.residual:
            out = x + self.drop_path(out)
        return self.former_to_mobile(out, tokens), tokens


@MODELS.register_module()
class MobileFormer(FrozenStagesMixin, BaseBackbone):
    """Mobile-Former backbone.

    Stages group the blocks by output stride: 2, 4, 8, 16, 32 (the 52M and
    26M variants start at stride 4: their stage-1 block downsamples).
    ``out_type='pool_token'`` ends the network as the paper's head does
    before its two FC layers: one more Mobile -> Former bridge, a 1x1 conv
    expanding the channels 6x (BN, ReLU6), global average pooling,
    h-swish, concatenated with the first global token. Pair it with
    ``StackedLinearClsHead(mid_channels=[head_channels], norm_cfg=BN1d,
    act_cfg=HSwish)``.

    Paper figures (224x224, ImageNet head): 508M 14.0M params, 294M 11.4M,
    214M 9.4M, 151M 7.6M, 96M 4.6M, 52M 3.5M, 26M 3.2M; the name is the
    multiply-adds.

    Args:
        arch (str | dict): ``'508m'``, ``'294m'``, ``'214m'``, ``'151m'``,
            ``'96m'``, ``'52m'``, ``'26m'`` or a dict with ``stem_channels``,
            ``stages`` (lists of ``(expand_ratio, out_channels, stride,
            expand_ratio2)``; ``expand_ratio2 == 0`` marks the lite
            bottleneck of stage 1), ``num_tokens``, ``token_dims``,
            ``head_channels`` and optionally ``groups``.
            Defaults to ``'294m'``.
        in_channels (int): Image channels. Defaults to 3.
        out_indices (int | Sequence[int]): Stages to output (negative counts
            from the end). Defaults to -1.
        out_type (str): ``'pool_token'`` (last stage only, see above) or
            ``'featmap'`` (the local feature map of each stage).
            Defaults to ``'pool_token'``.
        drop_path_rate (float): Stochastic depth, rising over the blocks.
        frozen_stages (int): Freeze the stem, the global tokens and this many
            stages (-1: none; 0: stem and tokens only).
        norm_eval (bool): Keep BatchNorms in eval mode while training.
        init_cfg (dict | list, optional): Defaults to Kaiming (fan-out)
            convs, N(0, 0.01) linears and unit norms, as the authors.
    """
    arch_zoo = {
        '508m':
        dict(
            stem_channels=24,
            num_tokens=6,
            token_dims=192,
            head_channels=1920,
            stages=[[(2, 24, 1, 0)], [(6, 40, 2, 4), (3, 40, 1, 3)],
                    [(6, 72, 2, 4), (3, 72, 1, 3)],
                    [(6, 128, 2, 4), (4, 128, 1, 4), (6, 176, 1, 4),
                     (6, 176, 1, 4)],
                    [(6, 240, 2, 4), (6, 240, 1, 4), (6, 240, 1, 4)]]),
        '294m':
        dict(
            stem_channels=16,
            num_tokens=6,
            token_dims=192,
            head_channels=1920,
            stages=[[(2, 16, 1, 0)], [(6, 24, 2, 4), (4, 24, 1, 4)],
                    [(6, 48, 2, 4), (4, 48, 1, 4)],
                    [(6, 96, 2, 4), (4, 96, 1, 4), (6, 128, 1, 4),
                     (6, 128, 1, 4)],
                    [(6, 192, 2, 4), (6, 192, 1, 4), (6, 192, 1, 4)]]),
        '214m':
        dict(
            stem_channels=12,
            num_tokens=6,
            token_dims=192,
            head_channels=1600,
            stages=[[(2, 12, 1, 0)], [(6, 20, 2, 4), (3, 20, 1, 4)],
                    [(6, 40, 2, 4), (4, 40, 1, 4)],
                    [(6, 80, 2, 4), (4, 80, 1, 4), (6, 112, 1, 4),
                     (6, 112, 1, 4)],
                    [(6, 160, 2, 4), (6, 160, 1, 4), (6, 160, 1, 4)]]),
        '151m':
        dict(
            stem_channels=12,
            num_tokens=6,
            token_dims=192,
            head_channels=1280,
            stages=[[(2, 12, 1, 0)], [(6, 16, 2, 4), (3, 16, 1, 3)],
                    [(6, 32, 2, 4), (3, 32, 1, 3)],
                    [(6, 64, 2, 4), (4, 64, 1, 4), (6, 88, 1, 4),
                     (6, 88, 1, 4)],
                    [(6, 128, 2, 4), (6, 128, 1, 4), (6, 128, 1, 4)]]),
        '96m':
        dict(
            stem_channels=12,
            num_tokens=4,
            token_dims=128,
            head_channels=1280,
            stages=[[(2, 12, 1, 0)], [(6, 16, 2, 4)],
                    [(6, 32, 2, 4), (3, 32, 1, 3)],
                    [(6, 64, 2, 4), (4, 64, 1, 4), (6, 88, 1, 4)],
                    [(6, 128, 2, 4), (6, 128, 1, 4)]]),
        '52m':
        dict(
            stem_channels=8,
            num_tokens=3,
            token_dims=128,
            head_channels=1024,
            stages=[[(3, 12, 2, 0), (3, 12, 1, 3)],
                    [(6, 24, 2, 4), (3, 24, 1, 3)],
                    [(6, 48, 2, 4), (4, 48, 1, 4), (6, 64, 1, 4)],
                    [(6, 96, 2, 4), (6, 96, 1, 4)]]),
    }
    # 26M: the 52M layout with grouped (4) pointwise convs.
    arch_zoo['26m'] = dict(arch_zoo['52m'], groups=4)
    OUT_TYPES = {'pool_token', 'featmap'}
    #: Expansion of the 1x1 conv before pooling (``out_type='pool_token'``).
    LAST_EXPANSION = 6

    def __init__(self,
                 arch: Union[str, dict] = '294m',
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = -1,
                 out_type: str = 'pool_token',
                 drop_path_rate: float = 0.,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = [
                     dict(
                         type='Kaiming',
                         layer='Conv2d',
                         mode='fan_out',
                         nonlinearity='relu',
                         distribution='normal'),
                     dict(type='Normal', layer='Linear', std=0.01),
                     dict(
                         type='Constant',
                         layer=['_BatchNorm', 'LayerNorm'],
                         val=1.,
                         bias=0.)
                 ]):
        super().__init__(init_cfg)
        arch = resolve_arch('MobileFormer', self.arch_zoo, arch,
                            ('stem_channels', 'stages', 'num_tokens',
                             'token_dims', 'head_channels'))
        self.out_type = check_out_type(out_type, self.OUT_TYPES)
        self.arch_settings = arch
        self.token_dims = arch['token_dims']
        self.head_channels = arch['head_channels']
        groups = arch.get('groups', 1)

        self.tokens = nn.Parameter(
            torch.zeros(arch['num_tokens'], self.token_dims))
        self.stem = nn.Sequential(
            *conv_bn(in_channels, arch['stem_channels'], 3, 2),
            nn.ReLU6(inplace=True))

        num_blocks = sum(len(stage) for stage in arch['stages'])
        dpr = iter(np.linspace(0, drop_path_rate, num_blocks + 1)[1:])
        self.stages = ModuleList()
        self.out_channels = []
        channels = arch['stem_channels']
        for stage_cfg in arch['stages']:
            stage = ModuleList()
            for expand, out_channels, stride, expand2 in stage_cfg:
                rate = float(next(dpr))
                if expand2 == 0:
                    block = LiteBottleneck(channels, out_channels, stride,
                                           expand, groups)
                else:
                    block = MobileFormerBlock(channels, out_channels, stride,
                                              expand, expand2, self.token_dims,
                                              groups, rate)
                stage.append(block)
                channels = out_channels
            self.stages.append(stage)
            self.out_channels.append(channels)
        self.num_stages = len(self.stages)

        self.out_indices = stage_indices(out_indices, self.num_stages)
        if out_type == 'pool_token':
            if self.out_indices != [self.num_stages - 1]:
                raise ValueError("out_type='pool_token' is for the last "
                                 "stage only; use 'featmap' for multi-scale "
                                 'outputs.')
            # Built only for classification, so that detection backbones
            # carry no unused parameters.
            self.final_bridge = MobileToFormer(
                channels, self.token_dims, drop_path_rate=drop_path_rate)
            self.last_conv = conv_bn(
                channels, channels * self.LAST_EXPANSION, groups=groups)
        self.groups = groups
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        if frozen_stages >= 0:
            self._freeze_stages()

    @property
    def pool_token_channels(self) -> int:
        """Channels of the ``'pool_token'`` output."""
        return self.out_channels[-1] * self.LAST_EXPANSION + self.token_dims

    def init_weights(self):
        super().init_weights()
        if not (isinstance(self.init_cfg, dict)
                and self.init_cfg['type'] == 'Pretrained'):
            nn.init.normal_(self.tokens)  # nn.Embedding's N(0, 1)

    def _freeze_stages(self):
        self.tokens.requires_grad = False
        freeze(self.stem, *self.stages[:self.frozen_stages])

    def has_frozen_stages(self) -> bool:
        return self.frozen_stages >= 0  # 0: the stem (mmpretrain MobileNet)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        tokens = self.tokens.expand(x.size(0), -1, -1)
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages):
            for block in stage:
                x, tokens = block(x, tokens)
            if i not in self.out_indices:
                continue
            if self.out_type == 'featmap':
                outs.append(x)
                continue
            tokens = self.final_bridge(x, tokens)
            local = channel_shuffle(x, self.groups) if self.groups > 1 else x
            local = self.last_conv(local)
            local = F.hardswish(
                F.adaptive_avg_pool2d(F.relu6(local), 1).flatten(1))
            outs.append(torch.cat([local, tokens[:, 0]], dim=1))
        return tuple(outs)
