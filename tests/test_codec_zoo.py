"""Every zoo codec DESIGN.md names plugs into CI2PEncoder where g_a fits.

Randomly initialised (no download): the architecture, not the weights, is
under test.
"""
import os.path as osp

import pytest
import torch

from ci2p_mm.codec import supported_codecs
from ci2p_mm.models import CI2PEncoder

# (codec, a quality whose g_a ends in 192 channels)
FITTING = [
    ('bmshj2018-factorized', 5),
    ('bmshj2018-factorized-relu', 5),
    ('bmshj2018_factorized_relu', 1),  # CompressAI's other spelling
    ('bmshj2018-hyperprior', 5),
    ('mbt2018', 4),
    ('mbt2018-mean', 4),
    ('cheng2020-anchor', 6),
    ('cheng2020-attn', 4),
]

# (codec, quality, latent channels): the zoo's M (or N) is not 192.
NOT_FITTING = [
    ('bmshj2018-factorized', 6, 320),
    ('bmshj2018-hyperprior', 8, 320),
    ('mbt2018', 5, 320),
    ('mbt2018-mean', 5, 320),
    ('cheng2020-anchor', 1, 128),
]


@pytest.mark.parametrize('codec,quality', FITTING)
def test_zoo_codec_gives_192_channels_at_stride_16(codec, quality):
    encoder = CI2PEncoder(codec, quality, pretrained=False)
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        y = encoder(x)
        stages = encoder(x, return_stages=True)
    assert y.shape == (1, 192, 4, 6)
    assert [s.shape[-1] for s in stages] == [48, 24, 12, 6]
    assert not any(p.requires_grad for p in encoder.parameters())


def test_supported_table():
    supported = supported_codecs()
    assert supported['bmshj2018-factorized'] == (1, 2, 3, 4, 5)
    assert supported['bmshj2018-factorized-relu'] == (1, 2, 3, 4, 5)
    assert supported['bmshj2018-hyperprior'] == (1, 2, 3, 4, 5)
    assert supported['mbt2018'] == (1, 2, 3, 4)
    assert supported['mbt2018-mean'] == (1, 2, 3, 4)
    assert supported['cheng2020-anchor'] == (4, 5, 6)
    assert supported['cheng2020-attn'] == (4, 5, 6)


@pytest.mark.parametrize('codec,quality,channels', NOT_FITTING)
def test_unfitting_quality_names_the_supported_ones(codec, quality, channels):
    with pytest.raises(ValueError) as info:
        CI2PEncoder(codec, quality, pretrained=False)
    message = str(info.value)
    assert f'{channels}-channel latent' in message
    assert 'needs 192 channels' in message
    assert 'bmshj2018-factorized (quality 1, 2, 3, 4, 5)' in message
    assert 'cheng2020-attn (quality 4, 5, 6)' in message


def test_unknown_codec_and_quality_are_explained():
    with pytest.raises(ValueError, match='Unknown codec .*supports'):
        CI2PEncoder('jpeg2000', 5, pretrained=False)
    with pytest.raises(ValueError, match='no quality 9'):
        CI2PEncoder('bmshj2018-factorized', 9, pretrained=False)


def test_zoo_weights_load_offline_from_the_torch_hub_cache(
        tmp_path, monkeypatch):
    """pretrained=True finds a zoo file put in torch.hub's cache by hand.

    The file must match the SHA-256 prefix in its name; the test's own
    weights carry their own prefix (``plant_zoo_file`` renames the zoo URL).
    """
    from _hostile import plant_zoo_file

    from ci2p_mm.codec import build_codec

    reference = build_codec('bmshj2018-factorized', 5, pretrained=False)
    torch.save(reference.state_dict(), tmp_path / 'weights.pth')
    hub_dir = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / 'hub'))
    try:
        plant_zoo_file(
            tmp_path / 'hub',
            tmp_path / 'weights.pth',
            monkeypatch=monkeypatch)
        codec = build_codec('bmshj2018-factorized', 5, pretrained=True)
    finally:
        torch.hub.set_dir(hub_dir)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(codec.g_a(x), reference.g_a(x))


def test_offline_download_error_is_one_line_saying_what_to_do(
        tmp_path, monkeypatch):
    """What a CI2P config (pretrained=True) gives without internet."""
    from ci2p_mm.codec import CodecWeightsError, build_codec
    from ci2p_mm.models import CI2PPatchEmbed

    def offline(*args, **kwargs):
        raise OSError('<urlopen error [Errno -2] Name or service not known>')

    monkeypatch.setattr(torch.hub, 'download_url_to_file', offline)
    hub_dir = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    try:
        with pytest.raises(CodecWeightsError) as info:
            CI2PPatchEmbed(pretrained=True).init_weights()
    finally:
        torch.hub.set_dir(hub_dir)
    message = str(info.value)
    assert '\n' not in message
    assert 'Offline?' in message and 'Name or service not known' in message
    # Where the file comes from, where to put it, or how to pass one.
    assert 'bmshj2018-factorized-prior-5-866ba797.pth.tar' in message
    assert osp.join(str(tmp_path), 'checkpoints') in message
    assert 'pretrained="/path/to/codec.pth"' in message
    assert 'tools/train_codec.py' in message
    with pytest.raises(CodecWeightsError, match='publishes no mse weights'):
        build_codec('bmshj2018-factorized-relu', 5, pretrained=True)


@pytest.mark.parametrize('config', [
    'ci2p_vit_animals10.py', 'ci2p_vit_ds_animals10.py',
    'ci2p_vit_imagenet.py', 'ci2p_vit_ds_imagenet.py',
    'ci2p_vit_imagenet_strong.py'
])
def test_ci2p_configs_ask_for_compressai_weights(config):
    from conftest import REPO
    from mmengine.config import Config

    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    patch_cfg = cfg.model.backbone.patch_cfg
    assert patch_cfg.pretrained is True and patch_cfg.frozen is True
    assert (patch_cfg.codec, patch_cfg.quality) == ('bmshj2018-factorized', 5)


def test_corrupt_file_in_the_torch_hub_cache_is_named(tmp_path):
    from compressai.zoo import image as zoo_image

    from ci2p_mm.codec import CodecWeightsError, build_codec

    url = zoo_image.model_urls['bmshj2018-factorized']['mse'][5]
    hub_dir = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    try:
        cache = tmp_path / 'checkpoints'
        cache.mkdir()
        good = tmp_path / 'good.pth'
        torch.save(build_codec(pretrained=False).state_dict(), good)
        data = good.read_bytes()
        (cache / osp.basename(url)).write_bytes(data[:len(data) // 2])
        with pytest.raises(CodecWeightsError) as info:
            build_codec('bmshj2018-factorized', 5, pretrained=True)
    finally:
        torch.hub.set_dir(hub_dir)
    message = str(info.value)
    assert osp.join(str(cache), osp.basename(url)) in message
    assert 'are not the published file' in message
    assert 'Delete the file to download it again' in message
