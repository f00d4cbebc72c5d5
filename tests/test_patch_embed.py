"""CI2PPatchEmbed: shapes, freezing, and refusing input the codec can't
take."""
import pytest
import torch

from ci2p_mm.models import CI2PPatchEmbed, CI2PViT


@pytest.fixture
def embed():
    torch.manual_seed(0)
    return CI2PPatchEmbed(pretrained=False, embed_dims=96, input_size=256)


def test_tokens_and_grid(embed):
    tokens, hw = embed(torch.rand(2, 3, 256, 256))
    assert tokens.shape == (2, 64, 96) and hw == (8, 8)
    assert embed.init_out_size == (8, 8)
    tokens, hw = embed(torch.rand(1, 3, 320, 384))
    assert tokens.shape == (1, 120, 96) and hw == (10, 12)


def test_reshape_blocks_follow_the_paper():
    embed = CI2PPatchEmbed(pretrained=False)
    first, second = embed.reshape
    assert first.depthwise_conv.conv.kernel_size == (3, 3)
    assert first.expand_conv.conv.out_channels == 768
    assert first.with_res_shortcut
    assert second.depthwise_conv.conv.kernel_size == (5, 5)
    assert second.depthwise_conv.conv.stride == (2, 2)
    assert second.expand_conv.conv.out_channels == 1152
    assert second.linear_conv.conv.out_channels == 768


def test_frozen_encoder_gets_no_gradient_and_stays_in_eval(embed):
    embed.train()
    assert not embed.encoder.training and embed.reshape.training
    tokens, _ = embed(torch.rand(2, 3, 64, 64))
    tokens.sum().backward()
    assert all(p.grad is None for p in embed.encoder.parameters())
    assert all(not p.requires_grad for p in embed.encoder.parameters())
    assert all(p.grad is not None for p in embed.reshape.parameters())


def test_unfrozen_encoder_trains():
    embed = CI2PPatchEmbed(pretrained=False, frozen=False, embed_dims=32)
    embed.train()
    assert embed.encoder.training
    embed(torch.rand(1, 3, 64, 64))[0].sum().backward()
    assert all(p.grad is not None for p in embed.encoder.parameters())


@pytest.mark.parametrize('shape,pattern', [
    ((1, 1, 64, 64), r'\[B, 3, H, W\].*\[1, 1, 64, 64\]'),
    ((1, 4, 64, 64), r'\[1, 4, 64, 64\]'),
    ((1, 3, 250, 256), r'multiples of 32.*250x256'),
    ((1, 3, 16, 16), r'multiples of 32.*16x16'),
])
def test_bad_shapes_name_the_shape_and_rule(embed, shape, pattern):
    with pytest.raises(ValueError, match=pattern):
        embed(torch.rand(*shape))


def test_normalised_input_is_refused(embed):
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    normalised = (torch.rand(1, 3, 64, 64) * 255 - mean) / std
    with pytest.raises(ValueError, match=r'\[0, 1\].*CI2PDataPreprocessor'):
        embed(normalised)
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        CI2PPatchEmbed(pretrained=False)(torch.rand(1, 3, 64, 64) * 255)


def test_parent_init_cfg_does_not_wipe_codec_weights():
    torch.manual_seed(0)
    model = CI2PViT(
        arch='deit-t',
        img_size=64,
        patch_cfg=dict(pretrained=False),
        init_cfg=[
            dict(type='Kaiming', layer='Conv2d'),
            dict(type='Constant', layer='Linear', val=0.5)
        ])
    before = {
        k: v.clone()
        for k, v in model.patch_embed.encoder.state_dict().items()
    }
    model.init_weights()
    after = model.patch_embed.encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # ... while the rest of the model was initialised.
    assert torch.all(model.layers[0].attn.qkv.weight == 0.5)
