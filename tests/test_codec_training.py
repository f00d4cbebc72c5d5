"""Codec training (ci2p_mm.codec.training): a small codec trained on
generated images.

CPU only, no network: the codec is trained from scratch for a few dozen
iterations on 64x64 crops.
"""
import json
import os.path as osp
import shutil

import numpy as np
import pytest
import torch
from conftest import codec_train_args as train_args
from conftest import train_codec
from PIL import Image

from ci2p_mm.codec import CodecWeightsError, training
from ci2p_mm.utils.images import ImageFolderError


def read_log(work_dir):
    with open(osp.join(work_dir, 'log.json')) as f:
        return [json.loads(line) for line in f]


def test_loss_goes_down(trained_codec):
    work_dir, _ = trained_codec
    log = read_log(work_dir)
    val = [e for e in log if e['mode'] == 'val']
    assert [e['iter'] for e in val] == [0, 20, 40]
    assert val[-1]['loss'] < 0.5 * val[0]['loss']
    assert val[-1]['psnr'] > val[0]['psnr']
    losses = [e['loss'] for e in log if e['mode'] == 'train']
    assert len(losses) == 8
    assert np.mean(losses[-2:]) < np.mean(losses[:2])


def test_final_checkpoint_is_compressai_format(trained_codec, codec_images):
    from compressai.models import FactorizedPrior
    from compressai.zoo import load_state_dict

    work_dir, final = trained_codec
    assert final == osp.join(str(work_dir), 'codec_final.pth')
    ckpt = torch.load(final, map_location='cpu', weights_only=True)
    assert ckpt['codec'] == 'bmshj2018-factorized'
    assert ckpt['quality'] == 5 and ckpt['lmbda'] == 0.025
    assert ckpt['iter'] == 40 and np.isfinite(ckpt['val']['psnr'])
    # update() ran: the entropy coder's tables are filled in.
    assert ckpt['state_dict']['entropy_bottleneck._quantized_cdf'].numel() > 0

    model = FactorizedPrior.from_state_dict(
        load_state_dict(ckpt['state_dict'])).eval()
    x = torch.from_numpy(np.array(Image.open(
        codec_images / 'img_00.png'))).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        enc = model.compress(x)
        x_hat = model.decompress(enc['strings'], enc['shape'])['x_hat']
    assert x_hat.shape == x.shape
    assert len(enc['strings'][0][0]) > 0


def test_final_checkpoint_loads_in_ci2p_with_identical_latents(trained_codec):
    from compressai.models import FactorizedPrior

    from ci2p_mm.codec import build_codec
    from ci2p_mm.models import CI2PPatchEmbed

    _, final = trained_codec
    ckpt = torch.load(final, map_location='cpu', weights_only=True)
    reference = FactorizedPrior.from_state_dict(ckpt['state_dict']).eval()
    embed = CI2PPatchEmbed(pretrained=final, embed_dims=96).eval()
    embed.init_weights()
    codec = build_codec('bmshj2018-factorized', 5, pretrained=final).eval()
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        y = reference.g_a(x)
        assert y.shape == (2, 192, 4, 6)
        assert torch.equal(embed.encoder(x), y)
        assert torch.equal(codec.g_a(x), y)
        tokens, hw = embed(x)
    assert hw == (2, 3) and tokens.shape == (2, 6, 96)
    assert not any(p.requires_grad for p in embed.encoder.parameters())


def test_checkpoint_of_another_quality_is_refused(trained_codec):
    from ci2p_mm.codec import build_codec

    _, final = trained_codec
    with pytest.raises(CodecWeightsError, match='quality 5'):
        build_codec('bmshj2018-factorized', 4, pretrained=final)


def test_resume_continues_the_iteration_count(trained_codec, codec_images,
                                              tmp_path):
    work_dir, _ = trained_codec
    resumed = tmp_path / 'resumed'
    shutil.copytree(work_dir, resumed)
    log_before = read_log(resumed)
    train_codec(train_args(codec_images, resumed, 50, '--resume'))
    latest = read_latest(resumed)
    assert latest['iter'] == 50
    # Adam's step counter went on from 40: the optimizer state was restored.
    steps = {int(s['step']) for s in latest['optimizer']['state'].values()}
    assert steps == {50}
    new = read_log(resumed)[len(log_before):]
    assert [e['iter'] for e in new if e['mode'] == 'train'] == [45, 50]
    assert [e['iter'] for e in new if e['mode'] == 'val'] == [50]
    assert [e['iter'] for e in latest['history']][-3:] == [40, 45, 50]
    final = torch.load(resumed / 'codec_final.pth', weights_only=True)
    assert final['iter'] == 50


def read_latest(work_dir):
    return torch.load(osp.join(work_dir, 'latest.pth'), weights_only=True)


def test_init_from_a_codec_and_resume_refuses_a_final_file(
        trained_codec, codec_images, tmp_path):
    _, final = trained_codec
    with pytest.raises(training.CodecTrainingError, match='--init'):
        train_codec(
            train_args(codec_images, tmp_path / 'r', 2, '--resume', final))
    # --init starts from the codec's weights (and --quick does not re-init).
    start = torch.load(final, weights_only=True)['state_dict']
    args = training.parse_args(
        train_args(codec_images, tmp_path / 'i', 1, '--init', final))
    assert not args.data_init and args.lr == 1e-4
    model = training.build_model(args)
    assert torch.equal(model.g_a[0].weight, start['g_a.0.weight'])


def test_truncated_checkpoints_are_named(trained_codec, codec_images,
                                         tmp_path):
    from ci2p_mm.models import CI2PPatchEmbed

    work_dir, final = trained_codec
    (tmp_path / 'w').mkdir()
    for name in ('latest.pth', 'codec_final.pth'):
        data = (work_dir / name).read_bytes()
        (tmp_path / 'w' / name).write_bytes(data[:len(data) // 2])
    with pytest.raises(
            CodecWeightsError,
            match=r'w/latest.pth cannot be read.*truncated'):
        train_codec(train_args(codec_images, tmp_path / 'w', 50, '--resume'))
    with pytest.raises(
            CodecWeightsError,
            match=r'w/codec_final.pth cannot be read.*truncated'):
        CI2PPatchEmbed(pretrained=str(tmp_path / 'w' /
                                      'codec_final.pth')).init_weights()


def test_resume_without_checkpoint_is_explained(codec_images, tmp_path):
    with pytest.raises(training.CodecTrainingError, match='latest.pth'):
        train_codec(train_args(codec_images, tmp_path, 2, '--resume'))


def test_empty_folder_is_explained(tmp_path):
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'notes.txt').write_text('no images here')
    with pytest.raises(ImageFolderError, match='No images found under'):
        train_codec(train_args(tmp_path / 'empty', tmp_path / 'w'))


def test_small_images_are_reflection_padded(tmp_path):
    img = Image.fromarray(
        np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3))
    padded = training.pad_to_min_size(img, 64)
    assert padded.size == (64, 64)
    dataset = training.ImageFiles([], 64, train=True)
    assert dataset.transform(padded).shape == (3, 64, 64)
    big = Image.new('RGB', (80, 70))
    assert training.pad_to_min_size(big, 64) is big


def test_default_lambda_is_the_zoos():
    args = training.parse_args(['x', '--work-dir', 'y', '--quality', '3'])
    training.check_args(args)
    assert args.lmbda == 0.0067 and args.patch_size == 256
    quick = training.parse_args(
        ['x', '--work-dir', 'y', '--quick', '--batch-size', '2'])
    assert quick.patch_size == 64 and quick.batch_size == 2
    assert quick.iters == training.QUICK['iters']
    with pytest.raises(training.CodecTrainingError, match='multiple'):
        training.check_args(
            training.parse_args(['x', '--work-dir', 'y', '--patch-size',
                                 '72']))


def test_hyperprior_codec_trains_and_loads_in_ci2p(codec_images, tmp_path):
    from compressai.models import ScaleHyperprior

    from ci2p_mm.models import CI2PEncoder

    final = train_codec([
        str(codec_images), '--work-dir',
        str(tmp_path), '--codec', 'bmshj2018-hyperprior', '--quality', '3',
        '--quick', '--iters', '2', '--batch-size', '2', '--val-ratio', '0',
        '--no-progress'
    ])
    ckpt = torch.load(final, map_location='cpu', weights_only=True)
    assert ckpt['lmbda'] == 0.0067
    reference = ScaleHyperprior.from_state_dict(ckpt['state_dict'])
    encoder = CI2PEncoder('bmshj2018-hyperprior', 3, pretrained=final)
    encoder.init_weights()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(encoder(x), reference.g_a(x))
