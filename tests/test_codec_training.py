"""Codec training (ci2p_mm.codec.training): a small codec trained on
generated images, on the project's mmengine runner.

CPU only, no network: the codec is trained from scratch for a few dozen
iterations on 64x64 crops.
"""
import json
import os.path as osp
import shutil
from glob import glob

import numpy as np
import pytest
import torch
from conftest import codec_train_args as train_args
from conftest import train_codec
from mmengine.registry import DefaultScope
from mmpretrain.registry import DATASETS, MODELS
from PIL import Image

from ci2p_mm.codec import CodecWeightsError, training
from ci2p_mm.utils import read_config
from ci2p_mm.utils.image_files import ImageFolderError
from ci2p_mm.utils.package_files import configs_root


def read_log(work_dir, run=-1):
    """A run's ``vis_data/scalars.json`` (the newest by default) as entries
    with ``mode`` (train / val), ``iter`` and the values."""
    runs = sorted(glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    entries = []
    with open(runs[run]) as f:
        for raw in map(json.loads, f):
            if 'codec/loss' in raw:  # a validation, at iteration `step`
                entries.append(
                    dict(
                        {
                            k[len('codec/'):]: v
                            for k, v in raw.items() if k.startswith('codec/')
                        },
                        mode='val',
                        iter=raw['step']))
            else:
                entries.append(dict(raw, mode='train'))
    return entries


def read_latest(work_dir):
    """The checkpoint ``last_checkpoint`` points to."""
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return torch.load(f.read().strip(), weights_only=True)


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
    from compressai.zoo import bmshj2018_factorized, load_state_dict

    work_dir, final = trained_codec
    assert final == osp.join(str(work_dir), 'codec_final.pth')
    ckpt = torch.load(final, map_location='cpu', weights_only=True)
    assert ckpt['codec'] == 'bmshj2018-factorized'
    assert ckpt['quality'] == 5 and ckpt['lmbda'] == 0.025
    assert ckpt['iter'] == 40 and np.isfinite(ckpt['val']['psnr'])
    assert ckpt['metric'] == 'mse' and ckpt['patch_size'] == 64
    assert ckpt['val']['iter'] == 40 and ckpt['epoch'] == 40 * 4 / 18
    # update() ran: the entropy coder's tables are filled in.
    assert ckpt['state_dict']['entropy_bottleneck._quantized_cdf'].numel() > 0

    model = FactorizedPrior.from_state_dict(
        load_state_dict(ckpt['state_dict'])).eval()
    # CompressAI's zoo builder takes it as its own weights, too.
    zoo_model = bmshj2018_factorized(quality=5).eval()
    zoo_model.load_state_dict(ckpt['state_dict'])
    x = torch.from_numpy(np.array(Image.open(
        codec_images / 'img_00.png'))).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        enc = model.compress(x)
        x_hat = model.decompress(enc['strings'], enc['shape'])['x_hat']
        zoo_enc = zoo_model.compress(x)
    assert x_hat.shape == x.shape
    assert len(enc['strings'][0][0]) > 0
    assert zoo_enc['strings'] == enc['strings']


def test_final_checkpoint_loads_in_ci2p_with_identical_latents(trained_codec):
    from compressai.models import FactorizedPrior

    from ci2p_mm.codec import build_codec
    from ci2p_mm.models import CI2PEncoder, CI2PPatchEmbed

    _, final = trained_codec
    ckpt = torch.load(final, map_location='cpu', weights_only=True)
    reference = FactorizedPrior.from_state_dict(ckpt['state_dict']).eval()
    embed = CI2PPatchEmbed(pretrained=final, embed_dims=96).eval()
    embed.init_weights()
    encoder = CI2PEncoder(pretrained=final)
    encoder.init_weights()
    codec = build_codec('bmshj2018-factorized', 5, pretrained=final).eval()
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        y = reference.g_a(x)
        assert y.shape == (2, 192, 4, 6)
        assert torch.equal(embed.encoder(x), y)
        assert torch.equal(encoder(x), y)
        assert torch.equal(codec.g_a(x), y)
        tokens, hw = embed(x)
    assert hw == (2, 3) and tokens.shape == (2, 6, 96)
    assert not any(p.requires_grad for p in embed.encoder.parameters())


def test_checkpoint_of_another_quality_is_refused(trained_codec):
    from ci2p_mm.codec import build_codec

    _, final = trained_codec
    with pytest.raises(CodecWeightsError, match='quality 5'):
        build_codec('bmshj2018-factorized', 4, pretrained=final)


@pytest.mark.slow  # end to end (pytest.ini)
def test_resume_continues_the_iteration_count(trained_codec, codec_images,
                                              tmp_path):
    work_dir, _ = trained_codec
    resumed = tmp_path / 'resumed'
    shutil.copytree(work_dir, resumed)
    train_codec(train_args(codec_images, resumed, 50, '--resume'))
    latest = read_latest(resumed)
    assert latest['meta']['iter'] == 50
    # Adam's step counter went on from 40: the optimizer state was restored.
    for name in ('net', 'aux'):
        state = latest['optimizer'][name]['state'].values()
        assert {int(s['step']) for s in state} == {50}
    new = read_log(resumed)  # the resumed run's log
    assert [e['iter'] for e in new if e['mode'] == 'train'] == [45, 50]
    assert [e['iter'] for e in new if e['mode'] == 'val'] == [50]
    history = read_log(resumed, 0) + new
    assert [e['iter'] for e in history if e['mode'] == 'train'][-3:] == \
        [40, 45, 50]
    # The message hub's history, too (one loss per iteration).
    hub = latest['message_hub']['log_scalars']['train/loss']
    assert len(hub.data[0]) == 50
    final = torch.load(resumed / 'codec_final.pth', weights_only=True)
    assert final['iter'] == 50 and final['val']['iter'] == 50


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
    training.check_args(args)
    model = MODELS.build(training.build_config(args, 1, 0).model)
    model.init_weights()
    assert torch.equal(model.codec.g_a[0].weight, start['g_a.0.weight'])


def test_a_checkpoint_of_another_codec_is_not_resumed(trained_codec,
                                                      codec_images, tmp_path):
    work_dir, _ = trained_codec
    shutil.copytree(work_dir, tmp_path / 'w')
    with pytest.raises(
            training.CodecTrainingError,
            match="'bmshj2018-factorized' quality 5, not "
            "'bmshj2018-factorized' quality 4"):
        train_codec(
            train_args(codec_images, tmp_path / 'w', 50, '--resume',
                       '--quality', '4'))


def test_truncated_checkpoints_are_named(trained_codec, codec_images,
                                         tmp_path):
    from ci2p_mm.models import CI2PPatchEmbed

    work_dir, final = trained_codec
    (tmp_path / 'w').mkdir()
    for name in ('epoch_1.pth', 'codec_final.pth'):
        data = (work_dir / name).read_bytes()
        (tmp_path / 'w' / name).write_bytes(data[:len(data) // 2])
    with pytest.raises(
            CodecWeightsError,
            match=r'w/epoch_1.pth cannot be read.*truncated'):
        train_codec(
            train_args(codec_images, tmp_path / 'w', 50, '--resume',
                       str(tmp_path / 'w' / 'epoch_1.pth')))
    with pytest.raises(
            CodecWeightsError,
            match=r'w/codec_final.pth cannot be read.*truncated'):
        CI2PPatchEmbed(pretrained=str(tmp_path / 'w' /
                                      'codec_final.pth')).init_weights()


def test_resume_without_checkpoint_is_explained(codec_images, tmp_path):
    with pytest.raises(training.CodecTrainingError, match='last_checkpoint'):
        train_codec(train_args(codec_images, tmp_path, 2, '--resume'))
    # A cut *.pth is no checkpoint to resume either.
    (tmp_path / 'iter_2.pth').write_bytes(b'PK\x03\x04 cut')
    with pytest.raises(training.CodecTrainingError, match='last_checkpoint'):
        train_codec(train_args(codec_images, tmp_path, 2, '--resume'))


def test_resume_without_the_pointer_takes_a_complete_checkpoint(
        codec_images, tmp_path):
    # The runner falls back to the newest complete *.pth when the
    # last_checkpoint pointer is lost, so --resume must not refuse first.
    args = training.parse_args(
        train_args(codec_images, tmp_path, 2, '--resume'))
    torch.save({'meta': {'iter': 2}}, tmp_path / 'iter_2.pth')
    training.check_resume(args)


def test_empty_folder_is_explained(tmp_path):
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'notes.txt').write_text('no images here')
    with pytest.raises(ImageFolderError, match='No images found under'):
        train_codec(train_args(tmp_path / 'empty', tmp_path / 'w'))


def test_a_diverging_run_stops_and_says_what_to_do(codec_images, tmp_path):
    with pytest.raises(
            training.CodecTrainingError,
            match=r'Non-finite loss at iteration \d+ .*loss=nan.*Lower --lr '
            r'\(now 1000\) and start again'):
        train_codec(
            train_args(codec_images, tmp_path, 6, '--lr', '1000',
                       '--warmup-iters', '0', '--patch-size', '32',
                       '--val-ratio', '0'))
    assert not glob(str(tmp_path / '*.pth'))


def test_small_images_are_reflection_padded(tmp_path):
    """The presets' pipelines: crops of 64 from a 20x30 image (mirrored
    content, no resampling) and from an 80x70 one (its own pixels)."""
    small = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
    big = np.random.default_rng(0).integers(0, 256, (70, 80, 3), np.uint8)
    (tmp_path / 'images').mkdir()
    Image.fromarray(small).save(tmp_path / 'images' / 'a_small.png')
    Image.fromarray(big).save(tmp_path / 'images' / 'b_big.png')
    args = training.parse_args(
        [str(tmp_path / 'images'), '--work-dir', 'w', '--quick'])
    training.check_args(args)
    cfg = training.build_config(args, 2, 1)
    for split in ('train', 'val'):
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            dataset = DATASETS.build(
                dict(
                    cfg[f'{split}_dataloader'].dataset,
                    split='train',
                    val_ratio=0))
        padded = dataset[0]['inputs'].permute(1, 2, 0).numpy()[..., ::-1]
        assert padded.shape == (64, 64, 3)
        # Every pixel is one of the image's (reflection, no interpolation).
        assert set(map(tuple, padded.reshape(-1, 3))) <= set(
            map(tuple, small.reshape(-1, 3)))
        crop = dataset[1]['inputs'].permute(1, 2, 0).numpy()[..., ::-1]
        assert crop.shape == (64, 64, 3)
        windows = [
            big[y:y + 64, x:x + 64] for y in range(7) for x in range(17)
        ]
        assert any(np.array_equal(crop, w) for w in windows)


def test_default_lambda_is_the_zoos():
    args = training.parse_args(['x', '--work-dir', 'y', '--quality', '3'])
    training.check_args(args)
    assert args.lmbda == 0.0067 and args.patch_size == 256
    quick = training.parse_args(
        ['x', '--work-dir', 'y', '--quick', '--batch-size', '2'])
    assert quick.patch_size == 64 and quick.batch_size == 2
    recipe = read_config(training.preset(quick)).codec_recipe
    assert quick.iters == recipe['iters'] == 400
    with pytest.raises(training.CodecTrainingError, match='multiple'):
        training.check_args(
            training.parse_args(['x', '--work-dir', 'y', '--patch-size',
                                 '72']))


@pytest.mark.parametrize('name', sorted(training.PRESETS.values()))
def test_presets_build_the_codec_and_its_two_optimizers(name):
    from mmengine.optim import OptimWrapperDict, build_optim_wrapper
    cfg = read_config(osp.join(configs_root(), 'codec', f'{name}.py'))
    assert cfg.runner_type == 'CI2PRunner'
    assert cfg.model.pretrained == ('finetune' in name)
    model = MODELS.build(dict(cfg.model, pretrained=False))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        wrappers = build_optim_wrapper(model, cfg.optim_wrapper)
    assert isinstance(wrappers, OptimWrapperDict)
    aux = [p for g in wrappers['aux'].param_groups for p in g['params']]
    assert aux == [model.codec.entropy_bottleneck.quantiles]
    net = sum(len(g['params']) for g in wrappers['net'].param_groups)
    assert net == len(list(model.parameters())) - 1


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


FLOAT_OPTIONS = ('--epochs', '--lr', '--aux-lr', '--clip-max-norm', '--lambda')


@pytest.mark.parametrize('option,value,rule', [
    ('--batch-size', '0', 'positive'),
    ('--epochs', '0', 'positive'),
    ('--lr', '0', 'positive'),
    ('--aux-lr', 'nan', 'positive'),
    ('--warmup-iters', '-1', '0 or more'),
    ('--lr-patience', '-1', '0 or more'),
    ('--num-workers', '-1', '0 or more'),
    ('--clip-max-norm', '-1.5', '0 or more'),
    ('--lambda', 'nan', 'positive'),
])
def test_out_of_range_numbers_are_refused_in_one_line(option, value, rule):
    """--warmup-iters -1 and --num-workers -1 ended in tracebacks from
    mmengine's scheduler and the DataLoader; --lr-patience -1 trained."""
    args = training.parse_args(['x', '--work-dir', 'y', option, value])
    with pytest.raises(training.CodecTrainingError) as err:
        training.check_args(args)
    got = float(value) if option in FLOAT_OPTIONS else int(value)
    assert str(err.value) == f'{option} must be {rule}; got {got}.'


@pytest.mark.parametrize('ratio', ['1.5', '1', '-0.1', 'nan'])
def test_val_ratio_outside_0_to_1_is_refused(ratio):
    """1.5 kept one training image, -0.1 silently validated on nothing."""
    args = training.parse_args(['x', '--work-dir', 'y', '--val-ratio', ratio])
    with pytest.raises(training.CodecTrainingError) as err:
        training.check_args(args)
    assert str(err.value) == ('--val-ratio must be at least 0 (0: no '
                              'validation) and below 1; got '
                              f'{float(ratio)}.')
    training.check_args(
        training.parse_args(['x', '--work-dir', 'y', '--val-ratio', '0']))
