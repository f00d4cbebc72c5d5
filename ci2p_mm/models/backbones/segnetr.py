"""SegNetr (Cheng et al., MICCAI 2023, arXiv 2307.02953).

A lightweight U-shaped segmentation network. Every stage is a stack of
SegNetr blocks: MBConv, then two parallel spatial interactions at linear cost
(a *local* one inside non-overlapping P x P patches and a *global* one inside
spatially non-contiguous groups of 2P x 2P positions), fused by a weighted
sum, then norm, FFN and residuals. Patch merging halves the resolution and
quadruples the channels without loss; the *information retention skip
connection* (IRSC) sends alternately half of the merged channels back to the
decoder through *patch reverse* (the inverse of patch merging), while the
other half goes on down the encoder.

The body (encoder and decoder) is one backbone here, since the IRSC skips
tie the two together; an mmseg ``EncoderDecoder`` puts a 1x1 classifier on
its output (``FCNHead`` with ``num_convs=0``). See ``docs/segmentation.md``
for what the paper's text fixes and what this implementation chose.
"""
from typing import Dict, List, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule, ModuleList, Sequential
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.models.utils import InvertedResidual, build_norm_layer
from mmpretrain.registry import MODELS


def patch_merge(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W] -> [B, 4C, H/2, W/2]``, losslessly.

    Channel block ``k`` (``C`` channels each) holds the pixels at offset
    ``(k % 2, k // 2)`` of every 2x2 patch (Swin's order).
    """
    return torch.cat([x[..., 0::2, 0::2], x[..., 1::2, 0::2],
                      x[..., 0::2, 1::2], x[..., 1::2, 1::2]], dim=1)


def patch_reverse(x: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`patch_merge`: ``[B, 4C, h, w] -> [B, C, 2h,
    2w]``."""
    b, c4, h, w = x.shape
    if c4 % 4:
        raise ValueError(f'patch_reverse needs channels divisible by 4; got '
                         f'{c4}.')
    parts = x.chunk(4, dim=1)
    out = x.new_empty(b, c4 // 4, 2 * h, 2 * w)
    out[..., 0::2, 0::2], out[..., 1::2, 0::2] = parts[0], parts[1]
    out[..., 0::2, 1::2], out[..., 1::2, 1::2] = parts[2], parts[3]
    return out


def local_partition(s: torch.Tensor, p: int) -> torch.Tensor:
    """``[B, H, W] -> [B, H/p * W/p, p*p]``: non-overlapping p x p patches."""
    b, h, w = s.shape
    s = s.view(b, h // p, p, w // p, p).permute(0, 1, 3, 2, 4)
    return s.reshape(b, -1, p * p)


def local_reverse(t: torch.Tensor, p: int, h: int, w: int) -> torch.Tensor:
    b = t.size(0)
    t = t.view(b, h // p, w // p, p, p).permute(0, 1, 3, 2, 4)
    return t.reshape(b, h, w)


def global_partition(s: torch.Tensor, g: int) -> torch.Tensor:
    """``[B, H, W] -> [B, H/g * W/g, g*g]``: groups of 2 x 2 patches of size
    ``g/2``, taken half a map apart along each axis.

    The map is cut into ``g/2 x g/2`` patches (the local partition at this
    size); each group gathers the patch at patch-grid position ``(a, b)``
    and those shifted by half the grid down, right, and both. A group is
    ``g x g`` positions, like a ``2P`` window, but its four patches are not
    neighbours: every position meets others from across the whole map.
    """
    b, h, w = s.shape
    p = g // 2
    s = s.view(b, 2, h // g, p, 2, w // g, p)  # (k, a, oh, l, b, ow)
    s = s.permute(0, 2, 5, 1, 3, 4, 6)  # (a, b, k, oh, l, ow)
    return s.reshape(b, -1, g * g)


def global_reverse(t: torch.Tensor, g: int, h: int, w: int) -> torch.Tensor:
    b, p = t.size(0), g // 2
    t = t.view(b, h // g, w // g, 2, p, 2, p)  # (a, b, k, oh, l, ow)
    t = t.permute(0, 3, 1, 4, 5, 2, 6)  # (k, a, oh, l, b, ow)
    return t.reshape(b, h, w)


PARTITIONS = {
    'local': (local_partition, local_reverse),
    'global': (global_partition, global_reverse),
}


class SpatialInteraction(BaseModule):
    """One branch of the SegNetr block's local-global interaction.

    Partition the map into groups of ``size x size`` positions, average the
    channels, map each group's ``size**2`` values with an FFN over the
    spatial positions, softmax them and reweight the input with the
    result, then undo the partition. Cost is linear in ``H x W``.

    The softmax weights are multiplied by the group size (so that uniform
    weights leave the input unchanged): without it the branch would scale
    its input by ``1 / size**2``.

    Args:
        size (int): Group side: ``P`` (local) or ``2P`` (global).
        partition (str): ``'local'`` or ``'global'``.
    """

    def __init__(self, size: int, partition: str, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if partition not in PARTITIONS:
            raise ValueError(f'partition must be one of {list(PARTITIONS)}; '
                             f'got {partition!r}.')
        if partition == 'global' and size % 2:
            raise ValueError(f'a global group needs an even size; got {size}.')
        self.size = size
        self.partition = partition
        n = size * size
        self.ffn = nn.Sequential(nn.Linear(n, n), nn.GELU(), nn.Linear(n, n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % self.size or w % self.size:
            raise ValueError(
                f'SegNetr: a {h}x{w} map does not split into {self.partition}'
                f' groups of {self.size}x{self.size}; the input size must be '
                f'a multiple of the largest group size times the stride.')
        split, merge = PARTITIONS[self.partition]
        groups = split(x.mean(dim=1), self.size)
        weights = self.ffn(groups).softmax(dim=-1) * groups.size(-1)
        return x * merge(weights, self.size, h, w).unsqueeze(1)

    def extra_repr(self) -> str:
        return f'size={self.size}, partition={self.partition!r}'


class SegNetrBlock(BaseModule):
    """MBConv, local + global interaction (weighted sum), norm, FFN.

    ``x = MBConv(x); x = x + a * Local(LN(x)) + b * Global(LN(x));
    x = x + FFN(LN(x))`` with learnable ``a, b`` (both 0.5 at first).

    Args:
        in_channels (int): Input channels (MBConv maps them to
            ``channels``).
        channels (int): Width of the block.
        patch_size (int): ``P`` of the local branch.
        global_size (int): Group side of the global branch (``2P``).
        expand_ratio (int): MBConv expansion. Defaults to 4.
        mlp_ratio (int): FFN expansion. Defaults to 4.
        se_ratio (float): Squeeze-excitation width in MBConv, as a fraction
            of ``in_channels`` (EfficientNet's and MaxViT's convention).
            Defaults to 0.25.
    """

    def __init__(self,
                 in_channels: int,
                 channels: int,
                 patch_size: int,
                 global_size: int,
                 expand_ratio: int = 4,
                 mlp_ratio: int = 4,
                 se_ratio: float = 0.25,
                 norm_cfg: dict = dict(type='LN2d', eps=1e-6),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        mid = channels * expand_ratio
        self.mbconv = InvertedResidual(
            in_channels, channels, mid, kernel_size=3,
            se_cfg=dict(channels=mid,
                        squeeze_channels=max(1, int(in_channels * se_ratio)),
                        act_cfg=(dict(type='GELU'), dict(type='Sigmoid'))),
            act_cfg=dict(type='GELU'))
        self.norm1 = build_norm_layer(norm_cfg, channels)
        self.local_branch = SpatialInteraction(patch_size, 'local')
        self.global_branch = SpatialInteraction(global_size, 'global')
        self.branch_weights = nn.Parameter(torch.full((2, ), 0.5))
        self.norm2 = build_norm_layer(norm_cfg, channels)
        self.ffn = nn.Sequential(
            nn.Conv2d(channels, channels * mlp_ratio, 1), nn.GELU(),
            nn.Conv2d(channels * mlp_ratio, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mbconv(x)
        y = self.norm1(x)
        a, b = self.branch_weights
        x = x + a * self.local_branch(y) + b * self.global_branch(y)
        return x + self.ffn(self.norm2(x))


@MODELS.register_module()
class SegNetr(BaseBackbone):
    """SegNetr's encoder and decoder, joined by IRSC skips.

    Encoder stage ``i`` (width ``C_i = C * 2**i``, patch size ``P_i``) is a
    stack of SegNetr blocks; patch merging then turns its ``C_i`` channels
    at ``H_i`` into ``4 C_i`` at ``H_i / 2``. The odd channels of that
    (``2 C_i = C_{i+1}``) go on to stage ``i + 1``; the even ones are
    patch-reversed to ``C_i / 2`` channels at ``H_i`` (IRSC: they land back
    on their own positions). Decoder stage ``i`` patch-reverses the deeper
    decoder map (``C_{i+1} -> C_i / 2`` channels, twice the size; no
    parameters), concatenates the IRSC skip and runs SegNetr blocks with the
    encoder's patch sizes.

    A stride-2 3x3 conv stem comes first, so stage 0 runs at ``H/2``; the
    segmentor's head upsamples its logits to the input size.

    ============ ============================ ========== ========
    out index    map                          channels   stride
    ============ ============================ ========== ========
    0            bottleneck (encoder stage 3) 8 C        16
    1            decoder stage 2              4 C        8
    2            decoder stage 1              2 C        4
    3 (-1)       decoder stage 0              C          2
    ============ ============================ ========== ========

    Args:
        arch (str | dict): ``'paper'`` (C=64, encoder depths (2, 2, 2, 2),
            decoder depths (1, 1, 1)), ``'t'`` (a tiny one for tests) or a
            dict with ``base_channels``, ``encoder_depths`` (4 ints) and
            ``decoder_depths`` (3 ints).
        patch_sizes (Sequence[int]): Local ``P`` per stage. Defaults to the
            paper's (8, 4, 2, 1).
        global_sizes (Sequence[int]): Global group side per stage. Defaults
            to the paper's (16, 8, 4, 2).
        in_channels (int): Image channels. Defaults to 3.
        out_indices (int | Sequence[int]): Which maps to return (see the
            table). Defaults to -1.
    """
    arch_zoo = {
        'paper': dict(base_channels=64, encoder_depths=(2, 2, 2, 2),
                      decoder_depths=(1, 1, 1)),
        't': dict(base_channels=16, encoder_depths=(1, 1, 1, 1),
                  decoder_depths=(1, 1, 1)),
    }
    num_stages = 4

    def __init__(self,
                 arch: Union[str, dict] = 'paper',
                 patch_sizes: Sequence[int] = (8, 4, 2, 1),
                 global_sizes: Sequence[int] = (16, 8, 4, 2),
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = -1,
                 expand_ratio: int = 4,
                 mlp_ratio: int = 4,
                 norm_cfg: dict = dict(type='LN2d', eps=1e-6),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = self._arch_settings(arch)
        if len(patch_sizes) != 4 or len(global_sizes) != 4:
            raise ValueError(f'SegNetr has 4 stages: patch_sizes and '
                             f'global_sizes need 4 values each; got '
                             f'{tuple(patch_sizes)}, {tuple(global_sizes)}.')
        self.patch_sizes = tuple(patch_sizes)
        self.global_sizes = tuple(global_sizes)
        c = self.arch_settings['base_channels']
        if c % 2:
            raise ValueError(f'base_channels must be even (IRSC halves '
                             f'it); got {c}.')
        self.widths = tuple(c * 2**i for i in range(self.num_stages))
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        self.out_indices = [i % self.num_stages for i in out_indices]
        block = dict(expand_ratio=expand_ratio, mlp_ratio=mlp_ratio,
                     norm_cfg=norm_cfg)

        self.stem = ConvModule(in_channels, c, 3, stride=2, padding=1,
                               norm_cfg=dict(type='BN'),
                               act_cfg=dict(type='GELU'))
        self.encoder = ModuleList()
        for i, depth in enumerate(self.arch_settings['encoder_depths']):
            self.encoder.append(
                self._stage(self.widths[i], self.widths[i], depth, i, block))
        self.decoder = ModuleList()
        for i, depth in zip((2, 1, 0), self.arch_settings['decoder_depths']):
            # patch-reversed decoder map (C_i / 2) + IRSC skip (C_i / 2)
            self.decoder.append(
                self._stage(self.widths[i], self.widths[i], depth, i, block))

    def _arch_settings(self, arch) -> Dict:
        if isinstance(arch, str):
            if arch not in self.arch_zoo:
                raise ValueError(f'SegNetr arch {arch!r} is not one of '
                                 f'{list(self.arch_zoo)}.')
            return dict(self.arch_zoo[arch])
        keys = {'base_channels', 'encoder_depths', 'decoder_depths'}
        if not isinstance(arch, dict) or set(arch) != keys:
            raise ValueError(f'a custom SegNetr arch is a dict with keys '
                             f'{sorted(keys)}; got {arch!r}.')
        if len(arch['encoder_depths']) != 4 or len(
                arch['decoder_depths']) != 3:
            raise ValueError('SegNetr arch needs 4 encoder_depths and 3 '
                             f'decoder_depths; got {arch!r}.')
        return dict(arch)

    def _stage(self, in_channels, channels, depth, i, block) -> Sequential:
        if depth < 1:
            raise ValueError(f'every SegNetr stage needs >= 1 block; stage '
                             f'{i} has {depth}.')
        return Sequential(*[
            SegNetrBlock(in_channels if j == 0 else channels, channels,
                         self.patch_sizes[i], self.global_sizes[i], **block)
            for j in range(depth)
        ])

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        x = self.stem(x)
        skips: List[torch.Tensor] = []
        for i, stage in enumerate(self.encoder):
            x = stage(x)
            if i < self.num_stages - 1:
                merged = patch_merge(x)
                skips.append(patch_reverse(merged[:, 0::2]))  # IRSC
                x = merged[:, 1::2]
        outs = [x]
        for stage, skip in zip(self.decoder, reversed(skips)):
            x = stage(torch.cat([patch_reverse(x), skip], dim=1))
            outs.append(x)
        return tuple(outs[i] for i in self.out_indices)
