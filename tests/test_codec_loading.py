"""CI2P's encoder loads CompressAI checkpoints exactly, and says why not."""
import os

import pytest
import torch
from compressai.models import FactorizedPrior, ScaleHyperprior

from ci2p_mm.models import CI2PPatchEmbed, CodecWeightsError, build_codec


@pytest.fixture(scope='module')
def codec():
    torch.manual_seed(0)
    model = FactorizedPrior(128, 192)
    # Non-default weights, so a load that silently kept the init would show.
    with torch.no_grad():
        for p in model.g_a.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    model.update(force=True)
    return model


@pytest.mark.parametrize(
    'wrapped', [False, True],
    ids=['plain-state-dict', 'training-example-dict'])
def test_encoder_equals_compressai_g_a(tmp_path, codec, wrapped):
    path = tmp_path / 'codec.pth.tar'
    sd = codec.state_dict()
    torch.save({'epoch': 3, 'state_dict': sd} if wrapped else sd, path)
    embed = CI2PPatchEmbed(pretrained=str(path))
    embed.init_weights()  # weights arrive here, not in the constructor
    reference = FactorizedPrior.from_state_dict(sd).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(embed.encoder(x), reference.g_a(x))
    assert embed.encoder is embed.ci2p_encoder.encoder


def test_missing_file_is_named(tmp_path):
    path = tmp_path / 'nope.pth'
    with pytest.raises(CodecWeightsError, match='nope.pth.*does not exist'):
        build_codec(pretrained=str(path))


def test_corrupt_and_truncated_files_are_named(tmp_path, codec):
    good = tmp_path / 'good.pth'
    torch.save(codec.state_dict(), good)
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(good.read_bytes()[:good.stat().st_size // 2])
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'not a checkpoint at all')
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    for path in (truncated, garbage, empty):
        with pytest.raises(CodecWeightsError) as info:
            build_codec(pretrained=str(path))
        assert path.name in str(info.value)


def test_other_quality_is_refused_with_shapes(tmp_path):
    path = tmp_path / 'q6.pth'
    torch.save(FactorizedPrior(192, 320).state_dict(), path)
    with pytest.raises(CodecWeightsError) as info:
        build_codec('bmshj2018-factorized', 5, pretrained=str(path))
    message = str(info.value)
    assert 'q6.pth' in message and 'different shapes' in message
    assert 'g_a.0.weight' in message


def test_other_codec_with_same_g_a_is_refused(tmp_path):
    # A hyperprior's g_a has exactly the factorized prior's keys and shapes:
    # only its other keys tell them apart.
    path = tmp_path / 'hyper.pth'
    torch.save(ScaleHyperprior(128, 192).state_dict(), path)
    with pytest.raises(
            CodecWeightsError,
            match='not in the model: .*gaussian_conditional'):
        build_codec('bmshj2018-factorized', 5, pretrained=str(path))


def test_recorded_identity_must_match(tmp_path, codec):
    path = tmp_path / 'trained.pth'
    torch.save(
        {
            'state_dict': codec.state_dict(),
            'codec': 'bmshj2018-factorized',
            'quality': 3
        }, path)
    with pytest.raises(CodecWeightsError, match='quality 3.*quality 5'):
        build_codec('bmshj2018-factorized', 5, pretrained=str(path))
    # A zoo file keeps its name in torch.hub's cache: that names its quality.
    zoo_name = tmp_path / 'bmshj2018-factorized-prior-4-1ed4405a.pth.tar'
    torch.save(codec.state_dict(), zoo_name)
    with pytest.raises(CodecWeightsError, match='quality 4'):
        build_codec('bmshj2018-factorized', 5, pretrained=str(zoo_name))
    assert build_codec('bmshj2018-factorized', 4, pretrained=str(zoo_name))


def test_pretrained_true_downloads_the_zoo_url_with_its_hash(
        tmp_path, monkeypatch, codec):
    """The URL and hash prefix given to torch.hub's downloader."""
    import hashlib
    import shutil

    weights = tmp_path / 'weights.pth'
    torch.save(codec.state_dict(), weights)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    seen = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        seen.append((url, dst, hash_prefix))
        shutil.copyfile(weights, dst)

    monkeypatch.setattr(torch.hub, 'download_url_to_file', fake_download)
    hub_dir = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / 'hub'))
    try:
        embed = CI2PPatchEmbed(pretrained=True)
        assert not seen  # constructing never downloads
        # The published file's hash is not ours: refused after download.
        with pytest.raises(
                CodecWeightsError, match='are not the published file'):
            embed.init_weights()
        (url, dst, prefix), = seen
        assert os.path.basename(url) == os.path.basename(dst) == \
            'bmshj2018-factorized-prior-5-866ba797.pth.tar'
        assert prefix == '866ba797'
        os.remove(dst)
        from compressai.zoo import image as zoo_image
        urls = zoo_image.model_urls['bmshj2018-factorized']['mse']
        monkeypatch.setitem(urls, 5, url.replace('866ba797', digest[:8]))
        embed = CI2PPatchEmbed(pretrained=True)
        embed.init_weights()
    finally:
        torch.hub.set_dir(hub_dir)
    assert seen[-1][2] == digest[:8]
    assert torch.equal(embed.encoder[0].weight, codec.g_a[0].weight)
