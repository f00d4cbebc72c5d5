"""Checkpoints that do not fit fail loudly, naming the file and the misfit.

Issue 6, point 3: tools/test.py, load_from, --resume and
init_cfg=dict(type='Pretrained'), each with a checkpoint of another
architecture, another codec or quality, and corrupt or truncated files;
foreign files load with torch's safe loading only. End-to-end runs through
the tools cover each entry point; the many variants of "does not fit" are
checked on the same functions directly, which is faster.
"""
import os
import os.path as osp

import pytest
import torch
from _reliability import TINY_ARCH, make_toy_data, write_config
from mmengine.config import Config
from mmengine.registry import DefaultScope

import ci2p_mm.apis
from ci2p_mm.engine import CheckpointError, read_checkpoint_file
from ci2p_mm.engine.checkpoint import (check_codecs, check_state_dict_fits,
                                       extract_state_dict)

# Every test here trains or tests a real checkpoint: the slow tier.
pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """One epoch of the tiny CI2P-ViT: its config and checkpoint."""
    tmp = tmp_path_factory.mktemp('ckpt')
    root = make_toy_data(tmp / 'data', 2, 64, 0.5)
    config = write_config(tmp, root, epochs=1)
    work_dir = str(tmp / 'work')
    ci2p_mm.apis.train([config, '--work-dir', work_dir])
    return config, osp.join(work_dir, 'epoch_1.pth')


def run_test(config, checkpoint, *options):
    # A work dir beside the config: the default (./work_dirs) is the checkout.
    argv = [
        config, checkpoint, '--work-dir',
        osp.join(osp.dirname(config), 'test_work')
    ]
    if options:
        argv += ['--cfg-options', *options]
    return ci2p_mm.apis.test(argv)


def run_train(config, work_dir, *options, resume=None):
    argv = [config, '--work-dir', str(work_dir)]
    if resume:
        argv += ['--resume', resume]
    if options:
        argv += ['--cfg-options', *options]
    return ci2p_mm.apis.train(argv)


def other_arch(**changes):
    return [f'model.backbone.arch.{k}={v}' for k, v in changes.items()]


def build_model(config, backbone=None, head=None):
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(config).model
    if backbone and 'type' in backbone:
        cfg.backbone = backbone
    else:
        cfg.backbone.update(backbone or {})
    cfg.head.update(head or {})
    return MODELS.build(cfg)


def fits(model, ckpt):
    checkpoint = read_checkpoint_file(ckpt)
    check_codecs(model, checkpoint, ckpt)
    check_state_dict_fits(model, extract_state_dict(checkpoint, ckpt), ckpt,
                          'the model', checkpoint)


# ---- tools/test.py end to end -------------------------------------------


def test_test_tool(trained, tmp_path):
    config, ckpt = trained
    assert 'accuracy/top1' in run_test(config, ckpt)  # its own: fine
    with pytest.raises(CheckpointError) as info:  # another architecture
        run_test(config, ckpt, *other_arch(embed_dims=96),
                 'model.head.in_channels=96')
    message = str(info.value)
    assert f'Checkpoint {ckpt} does not fit the model of this config' in \
        message and 'different shapes: backbone.' in message
    assert 'saved from a model with backbone CI2PViT' in message
    with pytest.raises(CheckpointError) as info:  # same shapes, other codec
        run_test(config, ckpt, 'model.backbone.patch_cfg.quality=4')
    assert f"Checkpoint {ckpt} was trained with codec 'bmshj2018-" \
        f"factorized' quality 5, but the model is built with 'bmshj2018-" \
        f"factorized' quality 4" in str(info.value)
    truncated = str(tmp_path / 'truncated.pth')
    with open(ckpt, 'rb') as f, open(truncated, 'wb') as out:
        out.write(f.read()[:os.path.getsize(ckpt) // 2])
    with pytest.raises(
            CheckpointError,
            match=f'Checkpoint {truncated} cannot be read.*'
            'truncated'):
        run_test(config, truncated)


# ---- the variants of "does not fit" -----------------------------------


@pytest.mark.parametrize(
    'backbone,head,expect', [
        (dict(arch=dict(TINY_ARCH, num_layers=3)), None,
         'missing from the file: backbone.layers.2.'),
        (dict(arch=dict(TINY_ARCH, num_layers=1)), None,
         'not in the model: backbone.layers.1.'),
        (None, dict(num_classes=5),
         r'head.fc.weight: file (10, 64) vs model (5, 64)'),
        (dict(
            type='DualScaleViT',
            arch='t',
            img_size=64,
            patch_cfg=dict(pretrained=False)), dict(in_channels=192),
         'not in the model: backbone.patch_embed.ci2p_encoder.'),
    ],
    ids=['deeper', 'shallower', 'other-head', 'dual-scale'])
def test_other_architectures(trained, backbone, head, expect):
    config, ckpt = trained
    model = build_model(config, backbone, head)
    with pytest.raises(CheckpointError) as info:
        fits(model, ckpt)
    assert ckpt in str(info.value) and expect in str(info.value)


@pytest.mark.parametrize(
    'codec,quality',
    [
        ('bmshj2018-factorized', 3),
        ('bmshj2018-hyperprior', 5),  # same g_a shapes as the factorized prior
        ('mbt2018-mean', 4),
    ])
def test_other_codecs(trained, tmp_path, codec, quality):
    config, ckpt = trained
    model = build_model(
        config,
        dict(patch_cfg=dict(codec=codec, quality=quality, pretrained=False)))
    with pytest.raises(
            CheckpointError, match=f"built with {codec!r} "
            f"quality {quality}"):
        fits(model, ckpt)
    # Files saved without CI2PRunner's record: read from the saved config.
    checkpoint = torch.load(ckpt, weights_only=True)
    del checkpoint['meta']['ci2p_codecs']
    old = str(tmp_path / 'old.pth')
    torch.save(checkpoint, old)
    with pytest.raises(
            CheckpointError,
            match="trained with codec "
            "'bmshj2018-factorized' quality 5"):
        fits(model, old)
    fits(build_model(config), old)  # the right codec


class _Exploit:

    def __reduce__(self):
        return (os.system, ('touch /tmp/ci2p_pwned_by_checkpoint', ))


def test_unreadable_and_unsafe_files(trained, tmp_path):
    _, ckpt = trained
    data = open(ckpt, 'rb').read()
    third = len(data) // 3
    files = {
        'empty.pth': (b'', 'is empty (0 bytes)'),
        'truncated.pth': (data[:len(data) // 2], 'cannot be read'),
        'text.pth': (b'not a checkpoint\n' * 10, 'cannot be read'),
        # Bits flipped inside tensor data: torch.load would not notice.
        'flipped.pth':
        (data[:third] + bytes(b ^ 0xFF for b in data[third:third + 4096]) +
         data[third + 4096:], 'fails the CRC-32 check'),
    }
    for name, (content, expect) in files.items():
        path = str(tmp_path / name)
        with open(path, 'wb') as f:
            f.write(content)
        with pytest.raises(CheckpointError) as info:
            read_checkpoint_file(path)
        assert f'Checkpoint {path} ' in str(info.value) and expect in str(
            info.value), (name, str(info.value))
    with pytest.raises(CheckpointError, match='nope.pth does not exist'):
        read_checkpoint_file(str(tmp_path / 'nope.pth'))

    marker = '/tmp/ci2p_pwned_by_checkpoint'
    if osp.exists(marker):
        os.remove(marker)
    checkpoint = torch.load(ckpt, weights_only=True)
    checkpoint['meta']['payload'] = _Exploit()
    evil = str(tmp_path / 'evil.pth')
    torch.save(checkpoint, evil)
    with pytest.raises(CheckpointError, match="safe loading .*refuses"):
        read_checkpoint_file(evil)
    assert not osp.exists(marker)


def test_pos_embed_resizing_is_not_a_mismatch():
    from ci2p_mm.models import CI2PViT
    vits = [
        CI2PViT(
            arch=TINY_ARCH,
            img_size=size,
            patch_cfg=dict(pretrained=False),
            with_cls_token=False,
            out_type='avg_featmap') for size in (64, 128)
    ]
    check_state_dict_fits(vits[1], vits[0].state_dict(), 'x.pth', 'a ViT')


# ---- load_from, --resume, init_cfg=Pretrained end to end -------------


def test_training_entry_points(trained, tmp_path):
    config, ckpt = trained
    deeper = other_arch(num_layers=3)
    with pytest.raises(
            CheckpointError,
            match=f'{ckpt} does not fit .*'
            'missing from the file'):
        run_train(config, tmp_path / 'a', f'load_from={ckpt}', *deeper)
    with pytest.raises(CheckpointError, match=f'{ckpt} does not fit'):
        run_train(config, tmp_path / 'b', *deeper, resume=ckpt)
    weights = str(tmp_path / 'weights.pth')
    torch.save(torch.load(ckpt, weights_only=True)['state_dict'], weights)
    with pytest.raises(
            CheckpointError, match='cannot be resumed from.*'
            'load_from='):
        run_train(config, tmp_path / 'w', resume=weights)
    with pytest.raises(
            CheckpointError,
            match="init_cfg=Pretrained, "
            "prefix='backbone.'.*missing from the file: layers.2"):
        run_train(config, tmp_path / 'p', *deeper,
                  'model.backbone.init_cfg.type=Pretrained',
                  f'model.backbone.init_cfg.checkpoint={ckpt}',
                  'model.backbone.init_cfg.prefix=backbone.')


def test_pretrained_init_cfg_variants(trained):
    config, ckpt = trained

    def init(prefix='backbone.', **arch):
        model = build_model(
            config,
            dict(
                arch=dict(TINY_ARCH, **arch),
                init_cfg=dict(
                    type='Pretrained', checkpoint=ckpt, prefix=prefix)))
        # The CI2P configs' scope, in which CheckedPretrainedInit serves.
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            model.init_weights()
        return model

    loaded = init()  # the right backbone: fine, and loaded
    saved = torch.load(ckpt, weights_only=True)['state_dict']
    backbone = loaded.backbone.state_dict()
    assert all(
        torch.equal(backbone[k[len('backbone.'):]], v)
        for k, v in saved.items() if k.startswith('backbone.'))
    with pytest.raises(
            CheckpointError, match="no weights under prefix "
            "'encoder.'"):
        init(prefix='encoder.')
    with pytest.raises(CheckpointError, match='different shapes'):
        init(embed_dims=32)
    # Other scopes (the downstream configs: mmdet, mmseg, mmpose) keep
    # mmengine's own loader.
    from mmengine.model.weight_init import PretrainedInit
    from mmengine.registry import WEIGHT_INITIALIZERS
    assert WEIGHT_INITIALIZERS.get('Pretrained') is PretrainedInit
