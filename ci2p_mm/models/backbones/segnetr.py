"""SegNetr (Cheng et al., MICCAI 2023, arXiv 2307.02953).

A lightweight U-shaped segmentation network, built as the paper's Figure 1
draws it (``C`` = ``base_channels``)::

    (H, 3) -MBConv-> (H, C/2) -merge-> (H/2, C) -SegNetr, merge-> (H/4, 2C)
    -SegNetr, merge-> (H/8, 4C) -SegNetr, merge-> (H/16, 8C)
    bottleneck: SegNetr (H/16, 8C) -MBConv-> 16C -1x1 conv-> 2C
    decoder, at H/8, H/4, H/2, H: upsample, concatenate the IRSC skip,
    SegNetr: (H/8, C), (H/4, C/2), (H/2, C/4), (H, C/2)

and a 1x1 classifier on the last map (the segmentor's head). A *SegNetr
block* is MBConv, then two parallel spatial interactions at linear cost (a
*local* one inside non-overlapping P x P patches and a *global* one inside
spatially non-contiguous groups of 2P x 2P positions), fused by a weighted
sum, then norm, FFN and residuals. *Patch merging* is a lossless 2x2
space-to-depth (``w -> 4w`` channels at half the size); the *information
retention skip connection* (IRSC) sends alternately half of the merged
channels to the decoder through *patch reverse* (the inverse of merging:
``2w -> w/2`` channels, back on their own positions), while the other half
(``2w``) goes on down the encoder. See ``docs/segmentation.md`` for what the
figure and text fix and what this implementation chose.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule, ModuleList, Sequential
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.models.utils import InvertedResidual, build_norm_layer
from mmpretrain.registry import MODELS

from .settings import resolve_arch, stage_indices


def patch_merge(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W] -> [B, 4C, H/2, W/2]``, losslessly.

    Channel block ``k`` (``C`` channels each) holds the pixels at offset
    ``(k % 2, k // 2)`` of every 2x2 patch (Swin's order).
    """
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 5, 3, 1, 2, 4)
    return x.reshape(b, 4 * c, h // 2, w // 2)


def patch_reverse(x: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`patch_merge`: ``[B, 4C, h, w] -> [B, C, 2h,
    2w]``."""
    b, c4, h, w = x.shape
    if c4 % 4:
        raise ValueError(f'patch_reverse needs channels divisible by 4; got '
                         f'{c4}.')
    x = x.reshape(b, 2, 2, c4 // 4, h, w).permute(0, 3, 4, 2, 5, 1)
    return x.reshape(b, c4 // 4, 2 * h, 2 * w)


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


class MBConv(InvertedResidual):
    """The paper's MBConv: 1x1 conv + BN + Swish, depthwise 3x3 + BN +
    Swish, squeeze-excitation, 1x1 conv + BN, and the residual when the
    width is kept (mmpretrain's ``InvertedResidual``).

    The hidden width is ``expand_ratio`` times the input width and the
    squeeze-excitation squeezes to ``se_ratio`` times it, as in
    MobileNetV2 / EfficientNet (mmpretrain's convention). With
    ``expand_input=False`` both are taken from the output width instead
    (MaxViT's convention, timm's ``expand_output``): SegNetr uses it for
    its first MBConv, whose input is the 3-channel image.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        expand_ratio (int): Hidden width over the input (or output) width.
            Defaults to 4.
        se_ratio (float): Squeeze width over the input (or output) width.
            Defaults to 0.25.
        expand_input (bool): Scale the input width (True) or the output
            width (False). Defaults to True.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 expand_ratio: int = 4,
                 se_ratio: float = 0.25,
                 expand_input: bool = True,
                 init_cfg=None):
        width = in_channels if expand_input else out_channels
        mid = width * expand_ratio
        swish = dict(type='SiLU')  # Swish
        super().__init__(
            in_channels,
            out_channels,
            mid,
            kernel_size=3,
            se_cfg=dict(
                channels=mid,
                squeeze_channels=max(1, int(width * se_ratio)),
                act_cfg=(swish, dict(type='Sigmoid'))),
            act_cfg=swish,
            init_cfg=init_cfg)


class SegNetrBlock(BaseModule):
    """MBConv, local + global interaction (weighted sum), norm, FFN.

    ``x = MBConv(x); x = x + a * Local(LN(x)) + b * Global(LN(x));
    x = x + FFN(LN(x))`` with learnable ``a, b`` (both 0.5 at first).

    Args:
        in_channels (int): Input channels (MBConv maps them to
            ``channels``: the decoder's blocks narrow the concatenated
            map this way).
        channels (int): Width of the block.
        patch_size (int): ``P`` of the local branch.
        global_size (int): Group side of the global branch (``2P``).
        expand_ratio (int): MBConv expansion. Defaults to 4.
        mlp_ratio (int): FFN expansion. Defaults to 4.
        se_ratio (float): Squeeze-excitation width in MBConv. Defaults to
            0.25.
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
        self.mbconv = MBConv(in_channels, channels, expand_ratio, se_ratio)
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


def irsc_split(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Patch merging with the IRSC split: ``[B, w, H, W]`` ->
    (``[B, 2w, H/2, W/2]`` on down the encoder, ``[B, w/2, H, W]`` to the
    decoder).

    Of the ``4w`` merged channels, the odd ones go down and the even ones
    are patch-reversed, which puts them back on their own positions (they
    are the even channels of ``x``): together the two halves hold ``x``
    exactly.
    """
    merged = patch_merge(x)
    return merged[:, 1::2], patch_reverse(merged[:, 0::2])


@MODELS.register_module()
class SegNetr(BaseBackbone):
    """SegNetr's encoder, bottleneck and decoder, joined by IRSC skips.

    With ``C = base_channels`` (Figure 1 of the paper):

    - an MBConv maps the image to ``C/2`` channels at full resolution;
    - patch merging with the IRSC split (:func:`irsc_split`) follows it
      and every encoder stage but the last, so encoder stage ``i`` (a
      stack of SegNetr blocks) runs at ``H / 2**(i+1)`` with ``C * 2**i``
      channels, ``i = 0..3``;
    - the bottleneck: the last encoder stage (``8C`` at ``H/16``), an
      MBConv to ``16C`` and a 1x1 conv to ``2C``;
    - decoder stage ``j = 0..3`` runs at ``H / 2**(3-j)``: it upsamples
      the deeper map 2x (bilinear, no parameters), concatenates the IRSC
      skip of that resolution (as many channels as the upsampled map) and
      runs SegNetr blocks whose first MBConv narrows the concatenation to
      the width of the next skip (``4C -> C``, ``2C -> C/2``, ``C ->
      C/4``; the full-resolution stage keeps ``C/2``).

    The segmentor's head is the 1x1 classifier: with mmseg, an
    ``EncoderDecoder`` with an ``FCNHead(num_convs=0)`` on out index -1
    predicts at full resolution.

    ============ ================================ ========== ========
    out index    map                              channels   stride
    ============ ================================ ========== ========
    0            bottleneck (after the 1x1 conv)  2 C        16
    1            decoder stage 0                  C          8
    2            decoder stage 1                  C / 2      4
    3            decoder stage 2                  C / 4      2
    4 (-1)       decoder stage 3                  C / 2      1
    ============ ================================ ========== ========

    Args:
        arch (str | dict): ``'paper'`` (``C = 64``, one SegNetr block per
            stage, as Figure 1 draws them), ``'t'`` (``C = 16``, for tests)
            or a dict with ``base_channels`` (a multiple of 4),
            ``encoder_depths`` and ``decoder_depths`` (4 ints each).
        patch_sizes (Sequence[int]): Local ``P`` of encoder stages 0-3.
            Defaults to the paper's (8, 4, 2, 1).
        global_sizes (Sequence[int]): Global group side of encoder stages
            0-3. Defaults to the paper's (16, 8, 4, 2).
        decoder_patch_sizes (Sequence[int], optional): Local ``P`` of
            decoder stages 0-3 (at H/8, H/4, H/2, H). Defaults to the
            encoder's at the same resolution, (2, 4, 8), and for the
            full-resolution stage, which has no encoder counterpart, the
            largest, 8.
        decoder_global_sizes (Sequence[int], optional): Likewise for the
            global branch; defaults to (4, 8, 16, 16).
        in_channels (int): Image channels. Defaults to 3.
        out_indices (int | Sequence[int]): Which maps to return (see the
            table). Defaults to -1.
        expand_ratio (int): MBConv expansion. Defaults to 4.
        mlp_ratio (int): FFN expansion in SegNetr blocks. Defaults to 4.
        norm_cfg (dict): Norm of the SegNetr blocks' interactions and FFN.
            Defaults to ``LN2d``.
    """
    arch_zoo = {
        'paper':
        dict(
            base_channels=64,
            encoder_depths=(1, 1, 1, 1),
            decoder_depths=(1, 1, 1, 1)),
        't':
        dict(
            base_channels=16,
            encoder_depths=(1, 1, 1, 1),
            decoder_depths=(1, 1, 1, 1)),
    }
    num_stages = 4
    num_outs = 5

    def __init__(self,
                 arch: Union[str, dict] = 'paper',
                 patch_sizes: Sequence[int] = (8, 4, 2, 1),
                 global_sizes: Sequence[int] = (16, 8, 4, 2),
                 decoder_patch_sizes: Optional[Sequence[int]] = None,
                 decoder_global_sizes: Optional[Sequence[int]] = None,
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = -1,
                 expand_ratio: int = 4,
                 mlp_ratio: int = 4,
                 norm_cfg: dict = dict(type='LN2d', eps=1e-6),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        arch = resolve_arch(
            'SegNetr', self.arch_zoo, arch,
            ('base_channels', 'encoder_depths', 'decoder_depths'))
        if (len(arch['encoder_depths']) != self.num_stages
                or len(arch['decoder_depths']) != self.num_stages):
            raise ValueError('SegNetr arch needs 4 encoder_depths and 4 '
                             f'decoder_depths; got {arch!r}.')
        self.arch_settings = arch
        if decoder_patch_sizes is None:
            decoder_patch_sizes = (*patch_sizes[2::-1], max(patch_sizes))
        if decoder_global_sizes is None:
            decoder_global_sizes = (*global_sizes[2::-1], max(global_sizes))
        sizes = dict(
            patch_sizes=patch_sizes,
            global_sizes=global_sizes,
            decoder_patch_sizes=decoder_patch_sizes,
            decoder_global_sizes=decoder_global_sizes)
        for name, value in sizes.items():
            if len(value) != self.num_stages:
                raise ValueError(f'SegNetr has 4 encoder and 4 decoder '
                                 f'stages: {name} needs 4 values; got '
                                 f'{tuple(value)}.')
            setattr(self, name, tuple(value))
        c = self.arch_settings['base_channels']
        if c % 4:
            raise ValueError(f'base_channels must be a multiple of 4 (the '
                             f'first IRSC skip has C/4 channels); got {c}.')
        self.base_channels = c
        #: encoder stage widths C, 2C, 4C, 8C
        self.widths = tuple(c * 2**i for i in range(self.num_stages))
        #: decoder stage widths (H/8 .. H): C, C/2, C/4, C/2
        self.decoder_widths = (c, c // 2, c // 4, c // 2)
        # As given (not sorted): each index names one map (see above).
        self.out_indices = [
            stage_indices(i, self.num_outs, 'output map')[0] for i in (
                [out_indices] if isinstance(out_indices, int) else out_indices)
        ]
        block = dict(
            expand_ratio=expand_ratio, mlp_ratio=mlp_ratio, norm_cfg=norm_cfg)

        self.stem = MBConv(
            in_channels, c // 2, expand_ratio, expand_input=False)
        self.encoder = ModuleList(
            self._stage(f'encoder stage {i}', w, w, depth, self.patch_sizes[i],
                        self.global_sizes[i], block)
            for i, (w, depth) in enumerate(
                zip(self.widths, self.arch_settings['encoder_depths'])))
        self.bottleneck = Sequential(
            MBConv(8 * c, 16 * c, expand_ratio), nn.Conv2d(16 * c, 2 * c, 1))
        # skip widths at H/8, H/4, H/2, H: half of each merged map, reversed
        skips = (2 * c, c, c // 2, c // 4)
        self.decoder = ModuleList(
            self._stage(f'decoder stage {j}', 2 *
                        skip, width, depth, self.decoder_patch_sizes[j],
                        self.decoder_global_sizes[j], block)
            for j, (skip, width, depth) in enumerate(
                zip(skips, self.decoder_widths,
                    self.arch_settings['decoder_depths'])))
        self.upsample = nn.Upsample(
            scale_factor=2, mode='bilinear', align_corners=False)

    @staticmethod
    def _stage(name, in_channels, channels, depth, patch_size, global_size,
               block) -> Sequential:
        if depth < 1:
            raise ValueError(f'every SegNetr stage needs >= 1 block; {name} '
                             f'has {depth}.')
        return Sequential(*[
            SegNetrBlock(in_channels if j == 0 else channels, channels,
                         patch_size, global_size, **block)
            for j in range(depth)
        ])

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        x, skip = irsc_split(self.stem(x))
        skips: List[torch.Tensor] = [skip]
        for i, stage in enumerate(self.encoder):
            x = stage(x)
            if i < self.num_stages - 1:
                x, skip = irsc_split(x)
                skips.append(skip)
        x = self.bottleneck(x)
        outs = [x]
        for stage, skip in zip(self.decoder, reversed(skips)):
            x = stage(torch.cat([skip, self.upsample(x)], dim=1))
            outs.append(x)
        return tuple(outs[i] for i in self.out_indices)

    def train(self, mode: bool = True):
        # mmpretrain's BaseBackbone.train returns None; nn.Module returns
        # the module, which ``model = SegNetr(...).eval()`` relies on.
        super().train(mode)
        return self
