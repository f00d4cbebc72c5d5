"""FLOPs: multiply-adds, attention matmuls included, against a hand count."""
import os.path as osp

import pytest
from conftest import REPO
from mmpretrain.models.backbones import VisionTransformer

from ci2p_mm.analysis import get_flops, model_flops
from ci2p_mm.analysis.timing import InputSizeError
from ci2p_mm.models import CI2PViT


def test_tiny_vit_against_hand_count():
    d, f, heads, layers, patch, size = 64, 128, 2, 2, 16, 64
    model = VisionTransformer(
        arch=dict(
            embed_dims=d,
            num_layers=layers,
            num_heads=heads,
            feedforward_channels=f),
        img_size=size,
        patch_size=patch,
        out_type='avg_featmap',
        with_cls_token=False)
    n = (size // patch)**2
    per_layer = (
        n * d * 3 * d  # qkv
        + 2 * n * n * d  # Q K^T and A V
        + n * d * d  # projection
        + 2 * n * d * f  # MLP
        + 2 * 5 * n * d)  # two affine LayerNorms (mmengine: 5 per element)
    hand = (
        n * 3 * patch * patch * d  # patch embedding conv
        + layers * per_layer + 5 * n * d  # final norm
        + 5 * d)  # the norm after average pooling
    result = model_flops(model, (size, size))
    assert result['flops'] == hand
    assert result['attention_flops'] == layers * 2 * n * n * d
    assert result['params'] == sum(p.numel() for p in model.parameters())


def test_ci2p_attention_is_a_sixteenth_of_vit_b16s():
    # 4x fewer tokens: attention matmuls scale with N^2.
    ci2p = model_flops(
        CI2PViT('deit-t', img_size=128, patch_cfg=dict(pretrained=False)),
        (128, 128))
    vit = model_flops(
        VisionTransformer(
            'deit-t',
            img_size=128,
            out_type='avg_featmap',
            with_cls_token=False), (128, 128))
    assert ci2p['attention_flops'] * 16 == vit['attention_flops']
    # The codec's convs are counted: far more than the transformer alone.
    assert ci2p['flops'] > 12 * 4 * 12 * 192**2 * 16


def test_get_flops_tool_table_and_refused_size(capsys):
    """tools/analysis_tools/get_flops.py as the README runs it (smaller)."""
    vit, ci2p = (
        osp.join(REPO, 'configs', name)
        for name in ('vit_b16_animals10.py', 'ci2p_vit_animals10.py'))
    assert get_flops.main([vit, ci2p, '--no-pretrained', '--shape', '64']) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == [
        'config', 'input', 'GFLOPs', 'attn', 'G', 'params', 'M', 'vs', 'first'
    ]
    rows = {line.split()[0]: line.split() for line in table[2:]}
    assert rows[vit][1] == rows[ci2p][1] == '64x64'
    # a quarter of the tokens: fewer FLOPs than ViT-B/16 at any size
    assert rows[vit][-1] == 'baseline' and rows[ci2p][-1].startswith('-')
    assert float(rows[ci2p][2]) < float(rows[vit][2])
    # A size the model itself refuses: one line naming config and option.
    with pytest.raises(InputSizeError) as err:
        get_flops.main([ci2p, '--no-pretrained', '--sizes', '64', '250'])
    assert str(err.value).startswith(f'{ci2p}: --sizes 250: the model '
                                     f'refuses 250x250 inputs. CI2P needs')
