"""ONNX export (tools/deployment/): onnxruntime against PyTorch for every
model family, the input contract, checkpoints, feature outputs, refusals
and the command lines. Small archs at 32-64 px, CPU, offline (CI2P codecs
random or from a checkpoint made here).

Tolerance: ``|ort - torch| <= 1e-4 + 1e-3 * |torch|`` (fp32); the measured
differences are below 1e-6 here (docs/deployment.md has the table).
"""
import copy
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from conftest import REPO

from ci2p_mm.deployment import (NO_CHECKPOINT, ExportError, export_config,
                                pytorch2onnx)
from ci2p_mm.engine import CheckpointError
from ci2p_mm.utils.errors import UserError
from ci2p_mm.utils.io import TMP_MARK

ort = pytest.importorskip(
    'onnxruntime', reason='the deploy extra: pip install -e ".[deploy]"')

TINY_VIT = dict(
    _delete_=True,
    embed_dims=64,
    num_layers=2,
    num_heads=2,
    feedforward_channels=128)

#: (config, cfg_options making it small, input size) per family.
FAMILIES = {
    'ci2p_vit': ('configs/ci2p_vit/ci2p-vit-b_1xb128-adam-300e_animals10.py',
                 dict(
                     backbone=dict(arch=TINY_VIT, img_size=64),
                     head=dict(in_channels=64)), 64),
    'ci2p_vit_ds':
    ('configs/ci2p_vit_ds/ci2p-vit-ds-b_1xb128-adam-300e_animals10.py',
     dict(backbone=dict(arch='t', img_size=64),
          head=dict(in_channels=192)), 64),
    'vit': ('configs/vit/vit-b-p16_1xb128-ci2p-adam-300e_animals10.py',
            dict(
                backbone=dict(arch=TINY_VIT, img_size=64),
                head=dict(in_channels=64)), 64),
    'cvt': ('configs/cvt/cvt-13_1xb128-adam-300e_animals10.py',
            dict(
                backbone=dict(
                    arch=dict(
                        _delete_=True,
                        embed_dims=[16, 32, 48],
                        depths=[1, 1, 2],
                        num_heads=[1, 2, 3])),
                head=dict(in_channels=48)), 64),
    # CrossViT's patches (12 and 16) must divide the size: 48.
    'crossvit': ('configs/crossvit/crossvit-s_1xb128-adam-300e_animals10.py',
                 dict(
                     backbone=dict(
                         arch=dict(
                             _delete_=True,
                             patch_size=[12, 16],
                             embed_dim=[24, 48],
                             depth=[[1, 1, 0], [1, 1, 0]],
                             num_heads=[2, 2],
                             mlp_ratio=[2, 2, 1],
                             img_scale=(1.0, 1.0)),
                         img_size=48),
                     head=dict(in_channels=72)), 48),
    'mobile_former':
    ('configs/mobile_former/mobile-former-508m_1xb128-adam-300e_'
     'animals10.py',
     dict(
         backbone=dict(
             arch=dict(
                 _delete_=True,
                 stem_channels=8,
                 num_tokens=3,
                 token_dims=32,
                 head_channels=64,
                 stages=[[(2, 8, 1, 0)], [(3, 16, 2, 4), (3, 16, 1,
                                                          3)], [(4, 24, 2,
                                                                 4)]])),
         head=dict(in_channels=24 * 6 + 32, mid_channels=[64])), 64),
}
ATOL, RTOL = 1e-4, 1e-3


def family_args(family, **backbone):
    config, model, size = FAMILIES[family]
    model = copy.deepcopy(model)
    model['backbone'].update(backbone)
    return osp.join(REPO, config), dict(model=model), (size, size)


def export_family(family,
                  out,
                  checkpoint=NO_CHECKPOINT,
                  backbone=None,
                  **kwargs):
    config, options, shape = family_args(family, **(backbone or {}))
    kwargs.setdefault('shape', shape)
    return export_config(
        config,
        checkpoint,
        str(out),
        cfg_options=options,
        no_pretrained=checkpoint == NO_CHECKPOINT,
        **kwargs)


def session(path):
    """An onnxruntime session of a file (a path, or its bytes)."""
    return ort.InferenceSession(
        path if isinstance(path, bytes) else str(path),
        providers=['CPUExecutionProvider'])


# ------------------------------------------------------ parity per family ---
@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_every_family_matches_pytorch_at_batch_1_and_3(family, tmp_path):
    out = tmp_path / f'{family}.onnx'
    result = export_family(
        family, out, dynamic_batch=True, verify=True, verify_batch=3)
    checked = [(p.name, p.batch) for p in result.parity]
    assert checked == [('logits', 1), ('logits', 3)]
    for row in result.parity:
        assert row.ok and row.max_abs < ATOL, row.describe()
        assert row.scale > 1e-3  # real logits, not zeros
    sess = session(out)
    (graph_input, ), (logits, ) = sess.get_inputs(), sess.get_outputs()
    size = FAMILIES[family][2]
    assert (graph_input.name, graph_input.shape) == ('input',
                                                     ['batch', 3, size, size])
    assert (logits.name, logits.shape) == ('logits', ['batch', 10])
    assert not [n for n in os.listdir(osp.dirname(out)) if TMP_MARK in n]


def test_checkpoint_weights_are_the_graphs(tmp_path):
    """A checkpoint's weights (the CI2P codec among them) reach the graph:
    the ONNX file computes what the model of that checkpoint computes."""
    from mmpretrain.registry import MODELS

    from ci2p_mm.deployment import load_export_config
    config, options, (size, _) = family_args('ci2p_vit')
    cfg = load_export_config(config, options, no_pretrained=True)
    torch.manual_seed(1)
    model = MODELS.build(cfg.model)
    model.init_weights()
    torch.nn.init.normal_(model.head.fc.weight, std=0.5)  # logits ~ 1
    classes = [
        'dog', 'horse', 'elephant', 'butterfly', 'chicken', 'cat', 'cow',
        'sheep', 'spider', 'squirrel'
    ]
    ckpt = tmp_path / 'ci2p.pth'
    torch.save(
        dict(
            state_dict=model.state_dict(),
            meta=dict(dataset_meta=dict(classes=classes))), ckpt)

    out = tmp_path / 'ci2p.onnx'
    result = export_family(
        'ci2p_vit', out, checkpoint=str(ckpt), dynamic_batch=True, verify=True)
    assert result.parity_ok
    images = torch.rand(2, 3, size, size)  # RGB in [0, 1], as documented
    model.eval()
    with torch.no_grad():
        expected = model(images, mode='tensor').numpy()
    got, = session(out).run(None, {'input': images.numpy()})
    assert np.abs(expected).max() > 0.5
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=RTOL)
    meta = session(out).get_modelmeta().custom_metadata_map
    assert json.loads(meta['classes']) == classes
    assert meta['checkpoint'] == 'ci2p.pth'
    assert meta['input_channels'] == 'RGB'
    assert json.loads(meta['input_std']) == [255., 255., 255.]
    assert meta['input_normalization'] == 'caller'

    # --features from the same classifier checkpoint: the backbone built
    # for feature maps has no pooling norm (ln2), which is not an error.
    feats = export_family(
        'ci2p_vit',
        tmp_path / 'f.onnx',
        checkpoint=str(ckpt),
        features=True,
        verify=True)
    assert feats.parity_ok
    assert feats.outputs == [('feat0_s32', [1, 64, size // 32, size // 32])]
    assert 'classes' not in session(tmp_path / 'f.onnx').get_modelmeta(
    ).custom_metadata_map  # no logits, so no class names


def test_dual_scale_features_for_mmdet(tmp_path):
    """--features: the multi-scale maps an FPN takes, named by stride."""
    out = tmp_path / 'ds_feats.onnx'
    result = export_family(
        'ci2p_vit_ds',
        out,
        features=True,
        dynamic_batch=True,
        verify=True,
        backbone=dict(out_indices=('enc_s8', 1, 3)))
    assert result.parity_ok, [p.describe() for p in result.parity]
    assert result.outputs == [('feat0_s8', ['batch', 128, 8, 8]),
                              ('feat1_s16', ['batch', 192, 4, 4]),
                              ('feat2_s32', ['batch', 192, 2, 2])]
    assert [o.name for o in session(out).get_outputs()
            ] == ['feat0_s8', 'feat1_s16', 'feat2_s32']


def test_features_refuse_out_indices_the_arch_lacks(tmp_path):
    # The default (enc_s8, 5, 11) is arch 'b''s; the tiny arch has 4 layers.
    with pytest.raises(
            ExportError,
            match=r"out_indices=\('enc_s8', 5, 11\)"
            r".*--cfg-options model.backbone.out_indices"):
        export_family('ci2p_vit_ds', tmp_path / 'x.onnx', features=True)


def test_normalization_in_graph_takes_rgb_pixels(tmp_path):
    """--normalize-in-graph: 0-255 RGB in, the preprocessor's mean/std
    applied inside; the result equals mmpretrain's preprocessing + model."""
    out = tmp_path / 'vit_norm.onnx'
    result = export_family('vit', out, normalize_in_graph=True, verify=True)
    assert result.parity_ok
    bgr = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)
    model = result.model
    with torch.no_grad():
        x = model.data_preprocessor({'inputs': bgr}, False)['inputs']
        expected = model(x, mode='tensor').numpy()
    got, = session(out).run(None, {'input': bgr.flip(1).float().numpy()})
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=RTOL)
    meta = session(out).get_modelmeta().custom_metadata_map
    assert meta['input_normalization'] == 'in graph'
    assert json.loads(meta['input_mean']) == [123.675, 116.28, 103.53]


@pytest.mark.slow  # end to end (pytest.ini)
def test_dynamo_exporter_matches_too(tmp_path):
    result = export_family(
        'ci2p_vit',
        tmp_path / 'dynamo.onnx',
        exporter='dynamo',
        dynamic_batch=True,
        verify=True)
    assert result.opset == 18 and result.parity_ok
    assert max(p.max_abs for p in result.parity) < ATOL


def test_ci2p_input_checks_skip_export_only():
    """The [0, 1] check (one .item() on the first batch) cannot run on the
    exporters' placeholder values; it is skipped there and stays armed for
    the first real batch."""
    from ci2p_mm.models import CI2PEncoder
    encoder = CI2PEncoder(pretrained=False).eval()
    exported = torch.export.export(encoder, (torch.rand(2, 3, 32, 32), ))
    assert exported is not None and encoder.check_input_range
    with pytest.raises(ValueError, match=r'CI2P codecs expect RGB in \[0, 1'):
        encoder(torch.rand(1, 3, 32, 32) * 255)


# ------------------------------------------------------------- refusals ---
def test_opset_too_low_names_the_modules_and_the_option(tmp_path):
    with pytest.raises(ExportError) as err:
        export_family('ci2p_vit', tmp_path / 'x.onnx', opset=13)
    message = str(err.value)
    assert 'aten::scaled_dot_product_attention' in message
    assert 'backbone.layers.0.attn (MultiheadAttention)' in message
    assert 'Use --opset 14 or later' in message
    assert not list(tmp_path.iterdir())  # nothing half-written


@pytest.mark.parametrize('kwargs, match', [
    (dict(shape=(250, 250)), r'--shape 250 250: .*multiples of 32'),
    (dict(exporter='dynamo', opset=17),
     r'--opset 17: the dynamo exporter writes opset 18 and later; use '
     r'--exporter torchscript'),
    (dict(opset=21), r'--opset 21: .* up to 20; use --exporter dynamo'),
])
def test_refusals_name_the_setting(kwargs, match, tmp_path):
    with pytest.raises(ExportError, match=match):
        export_family('ci2p_vit', tmp_path / 'x.onnx', **kwargs)


def test_a_latents_config_is_refused(tmp_path):
    config = osp.join(
        REPO, 'configs/ci2p_vit/ci2p-vit-b_1xb128-adam-300e_animals10-'
        'latents.py')
    with pytest.raises(
            ExportError,
            match=r'backbone.patch_embed.ci2p_encoder takes stored codec '
            r'latents \(patch_cfg.latent_input=True'):
        export_config(
            config,
            NO_CHECKPOINT,
            str(tmp_path / 'x.onnx'),
            no_pretrained=True)


def test_a_codec_without_weights_is_never_exported():
    from mmpretrain.registry import MODELS

    from ci2p_mm.deployment import load_export_config
    from ci2p_mm.deployment.model import refuse_pending_codecs
    config, options, _ = family_args('ci2p_vit')
    model = MODELS.build(load_export_config(config, options).model)
    with pytest.raises(ExportError, match='would carry a random codec'):
        refuse_pending_codecs(model)  # pretrained=True, never loaded


def test_checkpoint_of_another_model_is_refused(tmp_path):
    from mmpretrain.registry import MODELS

    from ci2p_mm.deployment import load_export_config
    from ci2p_mm.engine import CheckpointError
    config, options, _ = family_args('vit')
    vit = MODELS.build(load_export_config(config, options).model)
    torch.save({'state_dict': vit.state_dict()}, tmp_path / 'vit.pth')
    with pytest.raises(CheckpointError, match='does not fit'):
        export_family(
            'ci2p_vit',
            tmp_path / 'x.onnx',
            checkpoint=str(tmp_path / 'vit.pth'))


def test_a_hostile_checkpoint_never_runs(tmp_path):
    """CHECKPOINT goes through the project's safe loader: a pickle that
    would run code is refused, naming the file."""
    from _hostile import write_hostile_checkpoint

    from ci2p_mm.engine import CheckpointError
    marker = tmp_path / 'PWNED'
    ckpt = write_hostile_checkpoint(tmp_path / 'evil.pth', marker)
    with pytest.raises(CheckpointError, match=r'evil\.pth.*safe loading'):
        export_family('vit', tmp_path / 'x.onnx', checkpoint=ckpt)
    assert not marker.exists()


def test_default_size_is_the_configs_test_size():
    from ci2p_mm.deployment import load_export_config
    from ci2p_mm.deployment.pytorch2onnx import default_input_hw
    sizes = {
        name:
        default_input_hw(
            load_export_config(osp.join(REPO, FAMILIES[name][0])))
        for name in ('crossvit', 'cvt')
    }
    assert sizes == {'crossvit': (240, 240), 'cvt': (256, 256)}
    imagenet = load_export_config(
        osp.join(REPO, 'configs/cvt/cvt-13_8xb256_in1k.py'))
    assert default_input_hw(imagenet) == (224, 224)  # its CenterCrop


# --------------------------------------------------------- command lines ---
def tiny_config(tmp_path, family):
    config, options, _ = family_args(family)
    path = tmp_path / f'tiny_{family}.py'
    path.write_text(f'_base_ = [{config!r}]\nmodel = {options["model"]!r}\n')
    return str(path)


def test_cli_exports_verifies_and_times(tmp_path, capsys):
    from ci2p_mm.deployment.pytorch2onnx import main
    out = tmp_path / 'm.onnx'
    assert main([
        tiny_config(tmp_path, 'ci2p_vit'), 'none', '--no-pretrained', '--out',
        str(out), '--shape', '64', '64', '--dynamic-batch', '--verify',
        '--benchmark', '--benchmark-batch', '2', '--repeats', '1', '--warmup',
        '0'
    ]) == 0
    text = capsys.readouterr().out
    assert osp.isfile(out)
    assert "input      ['batch', 3, 64, 64]  float32 NCHW, RGB pixels / 255 " \
        '(values in [0, 1])' in text
    assert text.count('  ok') == 2  # batch 1 and 3
    assert 'Speed, CPU, batch 2' in text and 'x PyTorch' in text


def test_cli_writes_nothing_when_parity_fails(tmp_path, capsys):
    from ci2p_mm.deployment.pytorch2onnx import main
    out = tmp_path / 'm.onnx'
    # No tolerance at all: float32 rounding already differs.
    assert main([
        tiny_config(tmp_path, 'vit'), 'none', '--out',
        str(out), '--shape', '64', '64', '--verify', '--atol', '0', '--rtol',
        '0'
    ]) == 1
    assert 'MISMATCH' in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == [tmp_path / 'tiny_vit.py']


def test_cli_turns_refusals_into_one_line(tmp_path, capsys):
    from ci2p_mm.deployment.pytorch2onnx import main
    from ci2p_mm.utils.cli import run
    with pytest.raises(SystemExit) as exit_:
        run(main, [
            tiny_config(tmp_path, 'ci2p_vit'), 'none', '--no-pretrained',
            '--out',
            str(tmp_path / 'm.onnx'), '--shape', '64', '64', '--opset', '13'
        ])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'Use --opset 14 or later' in err[0]


def test_benchmark_cli_gives_both_runtimes_and_ratios(tmp_path, capsys):
    from ci2p_mm.deployment.benchmark_onnx import main
    out = tmp_path / 'bench.json'
    assert main([
        tiny_config(tmp_path, 'vit'),
        tiny_config(tmp_path, 'ci2p_vit'), '--no-pretrained', '--shape', '64',
        '64', '--batch-size', '2', '--repeats', '2', '--warmup', '0', '--out',
        str(out)
    ]) == 0
    results = json.loads(out.read_text())
    assert [m['name']
            for m in results['models']] == ['tiny_vit', 'tiny_ci2p_vit']
    for model in results['models']:
        assert model['max_abs_diff'] < ATOL
        for runtime in ('pytorch', 'onnxruntime'):
            assert len(model[runtime]['seconds']) == 2
            assert model[runtime]['img_per_s'] > 0
    text = capsys.readouterr().out
    assert 'ORT/PyTorch' in text and '(1.00x)' in text


# ------------------------- hostile checkpoints, names and sizes (#27) ---
CLASSES = [f'class{i}' for i in range(10)]


def vit_checkpoint(path, classes=CLASSES, non_finite=False):
    """A checkpoint of the tiny ViT; ``non_finite``: NaN/inf in its head."""
    from mmpretrain.registry import MODELS

    from ci2p_mm.deployment import load_export_config
    config, options, _ = family_args('vit')
    state_dict = MODELS.build(load_export_config(config,
                                                 options).model).state_dict()
    if non_finite:
        state_dict['head.fc.weight'][0] = float('nan')
        state_dict['head.fc.bias'][:] = float('-inf')
    torch.save(
        dict(
            state_dict=state_dict,
            meta=dict(dataset_meta=dict(classes=classes))), path)
    return str(path)


def test_nan_weights_and_wrong_class_names_are_refused(tmp_path):
    """Was: NaN weights exported silently (only --verify noticed, calling
    it a mismatch); 3 class names for 10 logits went into the metadata."""
    cases = {
        vit_checkpoint(tmp_path / 'nan.pth', non_finite=True):
        r'nan\.pth holds 74 NaN/inf values in 2 tensor\(s\): '
        r'head\.fc\.weight, head\.fc\.bias',
        vit_checkpoint(tmp_path / 'three.pth', classes=['a', 'b', 'c']):
        r"three\.pth \(meta\.dataset_meta\.classes\) names 3 classes "
        r"\('a', 'b', 'c'\), but the head has 10 outputs",
    }
    for checkpoint, match in cases.items():
        with pytest.raises(CheckpointError, match=match):
            export_family('vit', tmp_path / 'x.onnx', checkpoint=checkpoint)
    assert sorted(os.listdir(tmp_path)) == ['nan.pth', 'three.pth']


def test_names_that_are_not_utf8_are_exported_escaped(tmp_path, capsys):
    """Was: UnicodeEncodeError writing the metadata, after the export."""
    name = os.fsdecode(b'caf\xe9')  # 'caf\udce9'
    ckpt = vit_checkpoint(tmp_path / f'{name}.pth')
    out = tmp_path / f'{name}.onnx'
    assert pytorch2onnx.main([
        tiny_config(tmp_path, 'vit'), ckpt, '--out',
        str(out), '--shape', '64', '64'
    ]) == 0
    assert '(checkpoint {}) -> {}: opset 17'.format(
        osp.join(tmp_path, 'caf\\xe9.pth'),
        osp.join(tmp_path, 'caf\\xe9.onnx')) in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path)) == [
        f'{name}.onnx', f'{name}.pth', 'tiny_vit.py'
    ]
    meta = session(out.read_bytes()).get_modelmeta().custom_metadata_map
    assert meta['checkpoint'] == 'caf\\xe9.pth'
    assert json.loads(meta['classes']) == CLASSES


def fail(*args, **kwargs):
    raise AssertionError('reached: the refusal came too late')


@pytest.mark.parametrize('out, match', [
    ('folder', r'--out .*folder is a folder; refusing to write over it'),
    ('ckpt', r'--out .*ckpt\.pth is the input .*ckpt\.pth \(the same file'),
    ('file/x.onnx', r'--out .*file/x\.onnx cannot be written \(.*file is '
     r'not a writable folder\)'),
])
def test_an_out_that_cannot_be_written_is_refused_first(
        out, match, tmp_path, monkeypatch):
    """Was: a folder as --out failed after the export (IsADirectoryError
    in the rename); now nothing is built."""
    (tmp_path / 'folder').mkdir()
    (tmp_path / 'file').write_text('')
    ckpt = tmp_path / 'ckpt.pth'
    ckpt.write_bytes(b'weights')
    monkeypatch.setattr(pytorch2onnx, 'load_export_config', fail)
    path = ckpt if out == 'ckpt' else tmp_path / out
    with pytest.raises(UserError, match=match):
        export_family('vit', path, checkpoint=str(ckpt))
    assert ckpt.read_bytes() == b'weights'


def test_input_sizes_are_bounded_before_anything_is_allocated(
        tmp_path, monkeypatch, capsys):
    """Was: --shape 16000 16000 allocated 3 GB, then 32 GB."""
    with monkeypatch.context() as patch:
        patch.setattr(pytorch2onnx, 'build_export_model', fail)
        with pytest.raises(
                ExportError,
                match=r'--shape 16000 16000: 16000 x 16000 is 256000000 '
                r'pixels, more than the 4194304 \(2048 x 2048\)'):
            export_family('vit', tmp_path / 'x.onnx', shape=(16000, 16000))
        with pytest.raises(
                ExportError,
                match=r'--shape 2048 2048: a batch of 9 at 2048 x 2048 is '
                r'37748736 pixels, more than the 33554432'):
            export_family(
                'vit',
                tmp_path / 'x.onnx',
                shape=(2048, 2048),
                dynamic_batch=True,
                verify=True,
                verify_batch=9)
    with pytest.raises(
            ExportError, match='--shape 64 64: a batch of 10000 at 64 x 64'):
        pytorch2onnx.main([
            tiny_config(tmp_path, 'vit'), 'none', '--out',
            str(tmp_path / 'x.onnx'), '--shape', '64', '64', '--dynamic-batch',
            '--benchmark', '--benchmark-batch', '10000'
        ])
    with pytest.raises(SystemExit):
        pytorch2onnx.parse_args(
            ['c.py', 'none', '--out', 'x.onnx', '--benchmark-batch', '0'])
