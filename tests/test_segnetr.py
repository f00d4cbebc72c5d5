"""SegNetr (arXiv 2307.02953) built to its Figure 1: partitions, patch
merging / reverse and the IRSC split, the MBConv, every stage's shape and
width, the paper's patch sizes, errors, and its parameters and FLOPs
against a vanilla U-Net. Plain torch + mmpretrain pieces; the mmseg
end-to-end run is tests/downstream/test_e2e_mmseg.py."""
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
from conftest import REPO

from ci2p_mm.analysis.segnetr_vs_unet import (VanillaUNet, compare,
                                              format_table, main)
from ci2p_mm.models import SegNetr
# yapf: disable
from ci2p_mm.models.backbones.segnetr import (MBConv, SegNetrBlock,
                                              SpatialInteraction,
                                              global_partition, global_reverse,
                                              irsc_split, local_partition,
                                              local_reverse, patch_merge,
                                              patch_reverse)
# yapf: enable
from ci2p_mm.utils.errors import UserError


def test_patch_merge_is_lossless_and_reverse_inverts_it():
    x = torch.rand(2, 6, 8, 12)
    merged = patch_merge(x)
    assert merged.shape == (2, 24, 4, 6)
    assert torch.equal(merged[:, :6], x[..., 0::2, 0::2])
    assert torch.equal(patch_reverse(merged), x)


def test_irsc_split_halves_hold_the_map_exactly():
    """Merging doubles the width going down; the skip half, patch-reversed,
    is the map's even channels on their own positions."""
    x = torch.rand(1, 8, 8, 8)
    down, skip = irsc_split(x)
    assert down.shape == (1, 16, 4, 4) and skip.shape == (1, 4, 8, 8)
    assert torch.equal(skip, x[:, 0::2])
    assert torch.equal(patch_reverse(down), x[:, 1::2])


@pytest.mark.parametrize('size', [2, 4, 8])
def test_partitions_invert(size):
    s = torch.rand(2, 16, 24)
    assert torch.equal(
        local_reverse(local_partition(s, size), size, 16, 24), s)
    assert torch.equal(
        global_reverse(global_partition(s, size), size, 16, 24), s)


def test_local_groups_are_contiguous_global_groups_span_the_map():
    s = torch.arange(64.).view(1, 8, 8)  # value = 8 * row + col
    local = local_partition(s, 4)[0, 0].view(4, 4)
    assert torch.equal(local, s[0, :4, :4])
    group = global_partition(s, 4)[0, 0]  # 2x2 patches of 2x2, half apart
    rows, cols = group // 8, group % 8
    assert sorted(set(rows.tolist())) == [0, 1, 4, 5]
    assert sorted(set(cols.tolist())) == [0, 1, 4, 5]
    # every global group has one patch in each quadrant of the map
    for g in global_partition(s, 4)[0]:
        quadrants = {(int(r) // 4, int(c) // 4) for r, c in zip(g // 8, g % 8)}
        assert quadrants == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_spatial_interaction_reweights_within_groups_only():
    """Changing one group's input changes no other group's output."""
    torch.manual_seed(0)
    branch = SpatialInteraction(4, 'local')
    x = torch.rand(1, 3, 8, 8)
    y = x.clone()
    y[..., :4, :4] += 1.0
    out_x, out_y = branch(x), branch(y)
    assert not torch.allclose(out_x[..., :4, :4], out_y[..., :4, :4])
    assert torch.equal(out_x[..., 4:, :], out_y[..., 4:, :])
    assert torch.equal(out_x[..., :4, 4:], out_y[..., :4, 4:])


def test_patch_size_one_local_branch_is_identity():
    branch = SpatialInteraction(1, 'local')
    x = torch.rand(1, 4, 5, 7)
    assert torch.allclose(branch(x), x)


def test_mbconv_is_figure_1s():
    """1x1 conv BN Swish, depthwise 3x3 BN Swish, SE, 1x1 conv BN (no
    activation), residual when the width is kept; hidden width 4x the
    input (or, for the image stem, 4x the output)."""
    block = MBConv(16, 16)
    assert block.expand_conv.conv.kernel_size == (1, 1)
    assert block.expand_conv.conv.out_channels == 64
    assert isinstance(block.expand_conv.bn, nn.BatchNorm2d)
    assert isinstance(block.expand_conv.activate, nn.SiLU)
    dw = block.depthwise_conv.conv
    assert dw.kernel_size == (3, 3) and dw.groups == 64
    assert isinstance(block.depthwise_conv.activate, nn.SiLU)
    assert block.se.conv1.conv.out_channels == 4  # 0.25 x 16
    assert isinstance(block.linear_conv.bn, nn.BatchNorm2d)
    assert not block.linear_conv.with_activation
    assert block.with_res_shortcut
    narrowing = MBConv(32, 8)
    assert narrowing.expand_conv.conv.out_channels == 128
    assert not narrowing.with_res_shortcut
    stem = MBConv(3, 8, expand_input=False)
    assert stem.expand_conv.conv.out_channels == 32
    assert stem.se.conv1.conv.out_channels == 2
    assert stem(torch.rand(1, 3, 4, 4)).shape == (1, 8, 4, 4)


def test_block_narrows_and_backpropagates():
    block = SegNetrBlock(32, 8, patch_size=4, global_size=8)
    x = torch.rand(2, 32, 16, 16, requires_grad=True)
    out = block(x)
    assert out.shape == (2, 8, 16, 16)
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert block.branch_weights.grad is not None


def stage_inputs(model, x):
    """Input shapes of every encoder and decoder stage, and the
    bottleneck's, for one forward."""
    seen = {}

    def record(name):

        def hook(module, args, out):
            seen[name] = (tuple(args[0].shape[1:]), tuple(out.shape[1:]))

        return hook

    hooks = [
        m.register_forward_hook(record(name)) for name, m in [
            *((f'enc{i}', s) for i, s in enumerate(model.encoder)),
            ('bottleneck',
             model.bottleneck), *((f'dec{j}', s)
                                  for j, s in enumerate(model.decoder))
        ]
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return seen


def test_segnetr_follows_figure_1():
    """C = 16: (H, C/2) -> (H/2, C), (H/4, 2C), (H/8, 4C), (H/16, 8C)
    -> 16C -> 2C; decoder concatenations of 4C, 2C, C, C/2 narrowed to
    C, C/2, C/4, C/2, the last at full resolution."""
    model = SegNetr('t', out_indices=(0, 1, 2, 3, 4)).eval()
    assert model.base_channels == 16
    x = torch.rand(2, 3, 64, 96)
    seen = stage_inputs(model, x)
    assert seen == {
        'enc0': ((16, 32, 48), (16, 32, 48)),
        'enc1': ((32, 16, 24), (32, 16, 24)),
        'enc2': ((64, 8, 12), (64, 8, 12)),
        'enc3': ((128, 4, 6), (128, 4, 6)),
        'bottleneck': ((128, 4, 6), (32, 4, 6)),
        'dec0': ((64, 8, 12), (16, 8, 12)),
        'dec1': ((32, 16, 24), (8, 16, 24)),
        'dec2': ((16, 32, 48), (4, 32, 48)),
        'dec3': ((8, 64, 96), (8, 64, 96)),
    }
    assert model.bottleneck[0].linear_conv.conv.out_channels == 256  # 16C
    assert model.stem(x).shape == (2, 8, 64, 96)  # MBConv to C/2
    with torch.no_grad():
        outs = model(x)
    assert [tuple(o.shape) for o in outs] == [(2, 32, 4, 6), (2, 16, 8, 12),
                                              (2, 8, 16, 24), (2, 4, 32, 48),
                                              (2, 8, 64, 96)]


def test_segnetr_trains_end_to_end_at_full_resolution():
    torch.manual_seed(0)
    model = SegNetr('t')
    assert model.train() is model and model.eval() is model
    model.train()
    x = torch.rand(2, 3, 32, 32)
    (out, ) = model(x)
    assert out.shape == (2, 8, 32, 32)
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_segnetr_paper_arch():
    model = SegNetr('paper')
    assert model.widths == (64, 128, 256, 512)
    assert model.decoder_widths == (64, 32, 16, 32)
    assert [len(s) for s in (*model.encoder, *model.decoder)] == [1] * 8
    assert model.stem.linear_conv.conv.out_channels == 32  # C/2
    mbconv, conv = model.bottleneck
    assert (mbconv.linear_conv.conv.in_channels,
            mbconv.linear_conv.conv.out_channels) == (2048, 1024)
    assert (conv.in_channels, conv.out_channels,
            conv.kernel_size) == (1024, 128, (1, 1))
    local = [s[0].local_branch.size for s in model.encoder]
    glob = [s[0].global_branch.size for s in model.encoder]
    assert local == [8, 4, 2, 1] and glob == [16, 8, 4, 2]
    # decoder stages at H/8, H/4, H/2 take the encoder's sizes there; the
    # full-resolution one the largest
    assert [s[0].local_branch.size for s in model.decoder] == [2, 4, 8, 8]
    assert [s[0].global_branch.size for s in model.decoder] == [4, 8, 16, 16]
    n = sum(p.numel() for p in model.parameters())
    assert n == 11_302_700  # docs/segmentation.md's figure


def test_segnetr_errors_name_the_setting():
    with pytest.raises(ValueError, match='arch'):
        SegNetr('huge')
    with pytest.raises(ValueError, match='decoder_depths'):
        SegNetr(
            dict(
                base_channels=16,
                encoder_depths=(1, 1, 1, 1),
                decoder_depths=(1, 1, 1)))
    with pytest.raises(ValueError, match='multiple of 4'):
        SegNetr(
            dict(
                base_channels=18,
                encoder_depths=(1, 1, 1, 1),
                decoder_depths=(1, 1, 1, 1)))
    with pytest.raises(ValueError, match='patch_sizes'):
        SegNetr('t', patch_sizes=(8, 4, 2))
    with pytest.raises(ValueError, match='decoder_global_sizes'):
        SegNetr('t', decoder_global_sizes=(4, 8, 16))
    with pytest.raises(ValueError, match='out_indices'):
        SegNetr('t', out_indices=5)
    model = SegNetr('t')
    with pytest.raises(ValueError, match='multiple'):
        model(torch.rand(1, 3, 48, 48))  # 24x24 at stage 0: no 16x16 groups


def unet_reference_counts(h,
                          w,
                          num_classes=2,
                          widths=(64, 128, 256, 512, 1024)):
    """U-Net's params and multiply-adds written out by hand: 3x3 convs,
    2x2 transposed convs, the 1x1 classifier (pooling, ReLU: none)."""
    params = macs = 0

    def conv(cin, cout, k, pixels):
        nonlocal params, macs
        params += cin * cout * k * k + cout
        macs += cin * cout * k * k * pixels

    cin = 3
    for level, width in enumerate(widths):
        pixels = (h >> level) * (w >> level)
        conv(cin, width, 3, pixels)
        conv(width, width, 3, pixels)
        cin = width
    for level in range(len(widths) - 1, 0, -1):
        width, pixels = widths[level], (h >> level) * (w >> level)
        conv(width, width // 2, 2, pixels)  # transposed: input pixels
        conv(width, width // 2, 3, 4 * pixels)
        conv(width // 2, width // 2, 3, 4 * pixels)
    conv(widths[0], num_classes, 1, h * w)
    return params, macs


@pytest.fixture(scope='module')
def counts_224():
    return compare((224, 224), 2)


def test_vanilla_unet_keeps_the_input_size():
    model = VanillaUNet(3)
    with torch.no_grad():
        assert model(torch.rand(1, 3, 32, 48)).shape == (1, 3, 32, 48)
    assert [m.out_channels for m in model.up] == [512, 256, 128, 64]


def test_segnetr_vs_unet_at_224(counts_224):
    """The figures docs/segmentation.md and the README publish; the
    counter's U-Net figures are the hand count's."""
    unet, segnetr = counts_224['unet'], counts_224['segnetr']
    assert (unet['params'], unet['flops']) == unet_reference_counts(224, 224)
    assert unet['params'] == 31_031_810
    assert segnetr['params'] == 11_302_700 + 32 * 2 + 2  # + 1x1 classifier
    assert segnetr['flops'] / 1e9 == pytest.approx(6.28, abs=0.005)
    red = counts_224['reduction']
    assert round(red['params'], 2) == 0.64 and round(red['flops'], 2) == 0.83
    rows = format_table(counts_224)
    assert rows[-2] == '| SegNetr vs U-Net, measured | -64% | -83% |'
    assert rows[-1].endswith('| -59% | -76% |')


@pytest.mark.slow
def test_segnetr_vs_unet_cli(capsys):
    assert main(['--shape', '64', '96', '--arch', 't']) == 0
    out = capsys.readouterr().out
    assert out.startswith('64x96, 2 classes') and '| SegNetr |' in out
    with pytest.raises(UserError, match='multiples of 32'):
        main(['--shape', '48'])
    proc = subprocess.run([
        sys.executable, 'tools/analysis_tools/segnetr_vs_unet.py', '--shape',
        '48'
    ],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        'segnetr_vs_unet.py: error: --shape 48 48: SegNetr needs multiples '
        'of 32 (its 16x16 global groups at stride 2).')


@pytest.mark.parametrize('option', [['--shape', '0'], ['--num-classes', '0']])
def test_segnetr_vs_unet_refuses_empty_sizes(option, capsys):
    """--shape 0 passed the multiple-of-32 check and --num-classes 0 built
    an empty classifier: both ended in a conv's RuntimeError."""
    with pytest.raises(SystemExit) as exit_:
        main(option)
    assert exit_.value.code == 2
    assert f'argument {option[0]}: must be >= 1, not 0' in \
        capsys.readouterr().err
