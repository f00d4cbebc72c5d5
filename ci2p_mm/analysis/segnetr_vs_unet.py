"""SegNetr against a vanilla U-Net: parameters and FLOPs, counted alike.

SegNetr's abstract (arXiv 2307.02953) claims 59% fewer parameters and 76%
fewer GFLOPs than a vanilla U-Net. This counts both with
:func:`ci2p_mm.analysis.model_flops` (one multiply-add is one FLOP)::

    python tools/analysis_tools/segnetr_vs_unet.py     # 224x224, 2 classes
    python tools/analysis_tools/segnetr_vs_unet.py --shape 256 --arch t

The U-Net is Ronneberger et al.'s (MICCAI 2015): 64, 128, 256, 512, 1024
channels, two 3x3 conv + ReLU per level, 2x2 max pooling, 2x2 transposed
convs that halve the channels, a 1x1 classifier; the 3x3 convs are padded
so that the output has the input's size (the original's valid convs would
shrink 572 to 388), which is how U-Net is run on 224x224 medical images.
SegNetr gets the 1x1 classifier that its mmseg config adds
(``FCNHead(num_convs=0)``).
"""
import argparse
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn

from ci2p_mm.models import SegNetr
from ci2p_mm.utils.cli import at_least
from ci2p_mm.utils.errors import UserError
from ci2p_mm.utils.timing import format_table as markdown_table
from .flops import model_flops
from .timing import check_input_size

#: The abstract's claim: fewer parameters / GFLOPs than a vanilla U-Net.
PAPER_REDUCTIONS = dict(params=0.59, flops=0.76)


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """U-Net's level: two padded 3x3 convs, each followed by ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1),
        nn.ReLU(inplace=True))


class VanillaUNet(nn.Module):
    """U-Net (Ronneberger et al., 2015) with padded convs.

    Args:
        num_classes (int): Output channels of the 1x1 classifier.
        in_channels (int): Image channels. Defaults to 3.
        widths (Sequence[int]): Channels per level. Defaults to the
            paper's (64, 128, 256, 512, 1024).
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int = 3,
                 widths: Sequence[int] = (64, 128, 256, 512, 1024)):
        super().__init__()
        self.down = nn.ModuleList(
            double_conv(c, w) for c, w in zip((in_channels, *widths), widths))
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(w, w // 2, 2, stride=2)
            for w in reversed(widths[1:]))
        self.up_convs = nn.ModuleList(
            double_conv(w, w // 2) for w in reversed(widths[1:]))
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, level in enumerate(self.down):
            if i:
                x = self.pool(x)
            x = level(x)
            skips.append(x)
        skips.pop()  # the bottleneck's own output
        for up, conv in zip(self.up, self.up_convs):
            x = conv(torch.cat([skips.pop(), up(x)], dim=1))
        return self.classifier(x)


class SegNetrWithClassifier(nn.Module):
    """SegNetr's full-resolution map and a 1x1 classifier (Figure 1's
    ``Conv 1x1``; mmseg's ``FCNHead(num_convs=0)`` in the config)."""

    def __init__(self, num_classes: int, arch='paper'):
        super().__init__()
        self.backbone = SegNetr(arch, out_indices=-1)
        self.classifier = nn.Conv2d(self.backbone.decoder_widths[-1],
                                    num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(x)[0])


def compare(shape: Sequence[int] = (224, 224),
            num_classes: int = 2,
            arch='paper') -> Dict[str, Dict[str, float]]:
    """Parameters and FLOPs of SegNetr and the vanilla U-Net at ``shape``.

    Returns:
        dict: ``{'unet': {...}, 'segnetr': {...}, 'reduction': {...}}``,
        each with ``params`` and ``flops``; ``reduction`` holds SegNetr's
        fractions fewer than the U-Net (0.59 is "59% fewer").
    """
    h, w = shape
    check_input_size(f'--shape {h} {w}', (h, w))
    if h % 32 or w % 32:
        raise UserError(f'--shape {h} {w}: SegNetr needs multiples of 32 '
                        f'(its 16x16 global groups at stride 2).')
    torch.manual_seed(0)
    counts = {}
    for name, model in (('unet', VanillaUNet(num_classes)),
                        ('segnetr', SegNetrWithClassifier(num_classes, arch))):
        r = model_flops(model, (h, w))
        counts[name] = dict(params=r['params'], flops=r['flops'])
    counts['reduction'] = {
        k: 1 - counts['segnetr'][k] / counts['unet'][k]
        for k in ('params', 'flops')
    }
    return counts


def format_table(counts: Dict[str, Dict[str, float]]) -> List[str]:
    """Markdown rows: each model's params (M) and GFLOPs, SegNetr's
    reductions next to the paper's."""
    counted = (('U-Net (Ronneberger)', counts['unet']), ('SegNetr',
                                                         counts['segnetr']))
    reductions = (('SegNetr vs U-Net, measured', counts['reduction']),
                  ("SegNetr vs U-Net, the paper's abstract", PAPER_REDUCTIONS))
    return markdown_table(
        ['model', 'params (M)', 'GFLOPs'],
        [[name, f"{c['params'] / 1e6:.2f}", f"{c['flops'] / 1e9:.2f}"]
         for name, c in counted] +
        [[name, f"-{r['params']:.0%}", f"-{r['flops']:.0%}"]
         for name, r in reductions],
        markdown=True).splitlines()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description='Params and FLOPs of SegNetr against a vanilla U-Net '
        '(one multiply-add = one FLOP).')
    parser.add_argument(
        '--shape',
        type=at_least(1),
        nargs='+',
        default=[224],
        metavar=('H', 'W'),
        help='input size (default 224)')
    parser.add_argument('--num-classes', type=at_least(1), default=2)
    parser.add_argument(
        '--arch',
        default='paper',
        choices=sorted(SegNetr.arch_zoo),
        help="SegNetr arch (default 'paper')")
    args = parser.parse_args(argv)
    if len(args.shape) > 2:
        parser.error('--shape takes H or H W')
    shape = args.shape * (3 - len(args.shape))
    counts = compare(shape[:2], args.num_classes, args.arch)
    print(f'{shape[0]}x{shape[1]}, {args.num_classes} classes')
    print('\n'.join(format_table(counts)))
    return 0
