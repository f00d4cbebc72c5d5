"""The converters of the authors' checkpoints, checked against the authors'
functions, not against ourselves.

* Repository-only references (Microsoft's CvT, the Mobile-Former authors',
  IBM's CrossViT): ``tests/fixtures/hybrids_reference/*.json`` hold the
  logits their code computed (``make_*_fixture.py`` beside them ran it)
  on weights that ``_reference_weights`` recreates here from a seed. The
  recreated state dict, in the authors' key format, goes through the
  converter; the converted file must load strictly into the matching
  config and give the same logits.
* Package references (transformers' CvT, timm's CrossViT) are built here.
* Refusals: another family's or variant's file, 384 px CrossViT, files
  without tensors; nothing is written then.
* The converted files in mmpretrain's entry points: ``get_model`` (every
  fixture), ``ImageClassificationInferencer`` and ``tools/test.py`` on
  generated ImageNet-style data.
"""
import argparse
import copy
import glob
import os
import os.path as osp
import runpy
import sys

import numpy as np
import pytest
import torch
from _reference_weights import (checksum, key_specs, load_fixture, make_input,
                                make_weights)
from conftest import REPO
from mmpretrain.registry import MODELS

import ci2p_mm
import ci2p_mm.apis.testing as test_api
from ci2p_mm.engine import CheckpointError
from ci2p_mm.model_converters import (ConversionError, crossvit, cvt,
                                      mobile_former)
from ci2p_mm.model_converters.common import dataset_meta, load_config
from ci2p_mm.utils.errors import UserError
from ci2p_mm.utils.io import load_torch_file
from ci2p_mm.utils.state_dicts import compare_state_dicts

FIXTURES = osp.join(REPO, 'tests', 'fixtures', 'hybrids_reference')
CONVERTERS = {'cvt': cvt, 'mobile-former': mobile_former, 'crossvit': crossvit}
#: fixture (the authors' model) -> the config it must be recognised as
EXPECTED_CONFIG = {
    'cvt-13': 'cvt-13_8xb256_in1k',
    # every block layout: 6 tokens and a stride-1 stage 1 (508m; 294m,
    # 214m, 151m differ only in widths), 96m's stages, a stride-2 stage 1
    # (52m), grouped convolutions with channel shuffles (26m)
    **{
        f'mobile-former-{v}': f'mobile-former-{v}_8xb128_in1k'
        for v in ('508m', '96m', '52m', '26m')
    },
    'crossvit-ti': 'crossvit-ti_32xb128_in1k',
    'crossvit-9-dagger': 'crossvit-9-dagger_32xb128_in1k',
}
#: How the authors' scripts store weights (each family gets another one).
CONTAINERS = {
    'cvt': 'bare',
    'mobile-former': 'state_dict',
    'crossvit': 'model'
}
ATOL = 1e-4


def family(fixture_name):
    return next(f for f in CONVERTERS if fixture_name.startswith(f))


def wrap(state_dict, container):
    """A file as the authors' code writes it."""
    if container == 'bare':
        return dict(state_dict)
    if container == 'state_dict':  # timm's train.py (Mobile-Former)
        return dict(
            epoch=450,
            arch='mobile_former',
            state_dict=state_dict,
            args=argparse.Namespace(model='mobile-former', lr=1e-3))
    # IBM's main.py: model, optimizer, lr_scheduler, epoch, args
    return dict(
        model=state_dict,
        optimizer=dict(state={}, param_groups=[]),
        epoch=299,
        args=argparse.Namespace(model='crossvit'))


def build_classifier(config, **backbone):
    model_cfg = copy.deepcopy(load_config(config).model)  # cached: copy
    model_cfg.backbone.update(backbone)
    return MODELS.build(model_cfg).eval()


def logits(model, x):
    with torch.no_grad():
        return model(x, mode='tensor')


class Reference:
    """A fixture: the authors' state dict (recreated), input, logits."""

    def __init__(self, name):
        self.name = name
        self.fixture = load_fixture(osp.join(FIXTURES, f'{name}.json'))
        self.state_dict = make_weights(self.fixture['keys'],
                                       self.fixture['seed'])
        self.input = make_input(self.fixture['input_shape'],
                                self.fixture['seed'])
        self.logits = torch.tensor(self.fixture['logits'])


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """``converted(name) -> (Reference, dst path)``, each converted once
    by the tool's ``main`` from a file in the authors' own format."""
    tmp = tmp_path_factory.mktemp('converted')
    done = {}

    def convert(name):
        if name not in done:
            ref = Reference(name)
            src, dst = tmp / f'{name}_authors.pth', tmp / f'{name}.pth'
            torch.save(wrap(ref.state_dict, CONTAINERS[family(name)]), src)
            assert CONVERTERS[family(name)].main([str(src), str(dst)]) == 0
            done[name] = ref, str(dst)
        return done[name]

    return convert


# --------------------------------------------- against the authors' code --
@pytest.mark.parametrize('name', sorted(EXPECTED_CONFIG))
def test_converted_weights_give_the_authors_logits(name, converted):
    """Loaded as a model-zoo user does, ``get_model(NAME, pretrained=DST)``:
    the file fits the config's model exactly and computes the authors'
    logits; the classes are ImageNet's."""
    from mmpretrain import get_model
    from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
    ref, dst = converted(name)
    # The seed recreates the very numbers the authors' code was run with.
    assert checksum(ref.state_dict) == pytest.approx(
        ref.fixture['checksum'],
        rel=1e-9), ('numpy changed its legacy RandomState stream: rerun '
                    'tests/fixtures/hybrids_reference/make_*_fixture.py')
    checkpoint = load_torch_file(dst)
    assert checkpoint['meta']['config'] == EXPECTED_CONFIG[name]
    assert checkpoint['meta']['converted_from']['file'].startswith(name)
    model = get_model(EXPECTED_CONFIG[name], pretrained=dst).eval()
    # what load_state_dict(strict=True) checks: every key, every shape
    assert not compare_state_dicts(model.state_dict(),
                                   checkpoint['state_dict'])
    assert tuple(model._dataset_meta['classes']) == IMAGENET_CATEGORIES
    out = logits(model, ref.input)
    assert out.shape == ref.logits.shape == (2, 1000)
    torch.testing.assert_close(out, ref.logits, atol=ATOL, rtol=0)
    assert ref.logits.std() > 0.5  # trained-network scale: logits spread


def test_cvt_default_is_the_authors_function_and_each_option_matters(
        converted):
    """Microsoft's CvT: full-width attention scale and QuickGELU. Either
    one changed moves the logits far beyond the tolerance."""
    ref, dst = converted('cvt-13')
    state_dict = load_torch_file(dst)['state_dict']
    for change in (dict(attn_scale='head_dims'),
                   dict(act_cfg=dict(type='GELU'))):
        model = build_classifier('cvt-13_8xb256_in1k', **change)
        model.load_state_dict(state_dict, strict=True)
        assert (logits(model, ref.input) - ref.logits).abs().max() > 100 * ATOL


@pytest.mark.slow  # end to end (pytest.ini)
def test_cvt_matches_transformers_with_gelu(tmp_path):
    """transformers' CvtForImageClassification (a CvT-13 by its default
    config) runs the same weights with GELU: act_cfg=GELU reproduces it."""
    from transformers import CvtConfig, CvtForImageClassification
    reference = CvtForImageClassification(CvtConfig(num_labels=1000)).eval()
    state_dict = make_weights(key_specs(reference.state_dict()), seed=7)
    reference.load_state_dict(state_dict, strict=True)
    x = make_input((2, 3, 224, 224), seed=7)
    with torch.no_grad():
        expected = reference(x).logits
    torch.save(state_dict, tmp_path / 'pytorch_model.bin')
    cvt.main([str(tmp_path / 'pytorch_model.bin'), str(tmp_path / 'o.pth')])
    checkpoint = load_torch_file(str(tmp_path / 'o.pth'))
    assert checkpoint['meta']['converted_from']['format'] == 'transformers'
    model = build_classifier('cvt-13_8xb256_in1k', act_cfg=dict(type='GELU'))
    model.load_state_dict(checkpoint['state_dict'], strict=True)
    torch.testing.assert_close(logits(model, x), expected, atol=ATOL, rtol=0)


def test_crossvit_matches_timm(tmp_path):
    """timm's CrossVit state dict (``cls_token_0``, two heads) converts to
    the same function, with the heads merged into one."""
    import timm
    reference = timm.create_model('crossvit_9_240', pretrained=False).eval()
    state_dict = make_weights(key_specs(reference.state_dict()), seed=7)
    reference.load_state_dict(state_dict, strict=True)
    x = make_input((2, 3, 240, 240), seed=7)
    with torch.no_grad():
        expected = reference(x)
    torch.save(state_dict, tmp_path / 'timm.pth')
    crossvit.main([str(tmp_path / 'timm.pth'), str(tmp_path / 'o.pth')])
    checkpoint = load_torch_file(str(tmp_path / 'o.pth'))
    assert checkpoint['meta']['config'] == 'crossvit-9_32xb128_in1k'
    assert checkpoint['meta']['converted_from']['format'] == 'timm'
    model = build_classifier('crossvit-9_32xb128_in1k')
    model.load_state_dict(checkpoint['state_dict'], strict=True)
    torch.testing.assert_close(logits(model, x), expected, atol=ATOL, rtol=0)


# ------------------------------------------------------------- refusals ---
def test_another_familys_file_is_refused_and_nothing_written(tmp_path):
    ibm = Reference('crossvit-ti')
    src, dst = tmp_path / 'crossvit.pth', tmp_path / 'out.pth'
    torch.save(ibm.state_dict, src)
    with pytest.raises(
            ConversionError,
            match=r"not a CvT checkpoint.*"
            r"'stage0\.patch_embed\.proj\.weight'.*Its first "
            r'keys: blocks\.0\.'):
        cvt.main([str(src), str(dst)])
    with pytest.raises(ConversionError, match='not a Mobile-Former'):
        mobile_former.main([str(src), str(dst)])
    assert os.listdir(tmp_path) == ['crossvit.pth']


def test_another_variant_is_refused_naming_what_does_not_fit(tmp_path):
    cvt13 = Reference('cvt-13')
    src, dst = tmp_path / 'cvt13.pth', tmp_path / 'out.pth'
    torch.save(cvt13.state_dict, src)
    dst.write_bytes(b'previous file')
    with pytest.raises(ConversionError) as err:
        cvt.main([str(src), str(dst), '--config', 'cvt-21_8xb128_in1k'])
    assert 'do not fit --config cvt-21_8xb128_in1k' in str(err.value)
    assert 'missing from the file: backbone.stages.1.blocks.2.' in str(
        err.value)
    assert dst.read_bytes() == b'previous file'  # untouched
    # A variant no config has: one tensor of another width.
    state_dict = dict(cvt13.state_dict)
    state_dict['stage2.blocks.0.mlp.fc1.weight'] = torch.zeros(1024, 384)
    torch.save(state_dict, src)
    with pytest.raises(
            ConversionError,
            match=r'fit none of the CvT configs.*Closest, '
            r'cvt-13_8xb256_in1k: different shapes: backbone'
            r'\.stages\.2\.blocks\.0\.ffn\.layers\.0\.0\.weight: '
            r'file \(1024, 384\) vs model \(1536, 384\)'):
        cvt.main([str(src), str(dst)])
    assert dst.read_bytes() == b'previous file'


@pytest.mark.slow  # end to end (pytest.ini)
def test_crossvit_384px_models_are_refused(tmp_path):
    """IBM's *_384 files: position embeddings for 408 / 384 px."""
    ibm = dict(Reference('crossvit-9-dagger').state_dict)
    ibm['pos_embed.0'] = torch.zeros(1, 1 + 34 * 34, 128)
    ibm['pos_embed.1'] = torch.zeros(1, 1 + 24 * 24, 256)
    torch.save(ibm, tmp_path / 'crossvit_9_dagger_384.pth')
    with pytest.raises(
            ConversionError,
            match=r'pos_embed_0: file \(1, 1157, 128\) vs model '
            r'\(1, 401, 128\)'):
        crossvit.main([
            str(tmp_path / 'crossvit_9_dagger_384.pth'),
            str(tmp_path / 'out.pth')
        ])
    assert not osp.exists(tmp_path / 'out.pth')


def test_mobile_former_unknown_key_is_named(tmp_path):
    authors = dict(Reference('mobile-former-26m').state_dict)
    authors['features.3.global_block.alpha.0.weight'] = torch.zeros(128, 128)
    torch.save(dict(model=authors), tmp_path / 'mf.pth')
    with pytest.raises(
            ConversionError,
            match=r'not in the model: features\.3\.global_block'
            r'\.alpha\.0\.weight'):
        mobile_former.main(
            [str(tmp_path / 'mf.pth'),
             str(tmp_path / 'out.pth')])


@pytest.mark.parametrize('content, match', [
    ({
        'model': {
            'a': 1
        }
    }, 'no state dict of tensors'),
    ([torch.zeros(1)], 'holds a list'),
])
def test_files_without_a_state_dict_are_refused(tmp_path, content, match):
    torch.save(content, tmp_path / 'x.pth')
    with pytest.raises(ConversionError, match=match):
        cvt.main([str(tmp_path / 'x.pth'), str(tmp_path / 'out.pth')])


def test_ddp_prefix_is_removed(tmp_path):
    ref = Reference('mobile-former-52m')
    torch.save(
        {'state_dict': {
            f'module.{k}': v
            for k, v in ref.state_dict.items()
        }}, tmp_path / 'ddp.pth')
    mobile_former.main([str(tmp_path / 'ddp.pth'), str(tmp_path / 'o.pth')])
    meta = load_torch_file(str(tmp_path / 'o.pth'))['meta']
    assert meta['config'] == 'mobile-former-52m_8xb128_in1k'
    assert meta['converted_from']['container'] == 'state_dict'


def test_nan_weights_are_refused_naming_them(tmp_path):
    """Was: the NaN/inf values were converted and written ("Wrote ...
    fits"); now the file is refused naming its tensors, nothing written."""
    authors = dict(Reference('cvt-13').state_dict)
    authors['head.weight'] = torch.full_like(authors['head.weight'],
                                             float('nan'))
    authors['norm.weight'] = authors['norm.weight'].clone()
    authors['norm.weight'][0] = float('inf')
    torch.save(authors, tmp_path / 'cvt.pth')
    with pytest.raises(
            CheckpointError,
            match=r'cvt\.pth holds 384001 NaN/inf values in 2 tensor\(s\): '
            r'norm\.weight, head\.weight\. These weights are broken'):
        cvt.main([str(tmp_path / 'cvt.pth'), str(tmp_path / 'out.pth')])
    assert os.listdir(tmp_path) == ['cvt.pth']


def test_dst_that_is_src_or_a_folder_is_refused(tmp_path):
    """Was: DST == SRC through a linked folder overwrote the download
    (paths were compared, not files); a folder DST, a traceback."""
    real = tmp_path / 'real'
    real.mkdir()
    (tmp_path / 'linked').symlink_to(real)
    src = real / 'cvt.pth'
    torch.save(Reference('cvt-13').state_dict, src)
    os.link(src, tmp_path / 'hard.pth')
    before = src.read_bytes()
    for dst, match in [(tmp_path / 'linked' / 'cvt.pth',
                        f'is the input {src} \\(the same file'),
                       (tmp_path / 'hard.pth', f'is the input {src} \\(the'),
                       (real, 'is a folder; refusing to write over it')]:
        with pytest.raises(UserError, match=f'^DST {dst} {match}'):
            cvt.main([str(src), str(dst)])
    assert src.read_bytes() == before
    assert sorted(os.listdir(real)) == ['cvt.pth']


def test_class_names_must_fit_the_head(tmp_path):
    """The names a converted file gets (the config's test set) are held
    against the config's head."""
    config = tmp_path / 'cvt-13_10_classes.py'
    base = osp.join(REPO, 'configs/cvt/cvt-13_8xb256_in1k.py')
    config.write_text(f'_base_ = [{base!r}]\n'
                      f'model = dict(head=dict(num_classes=10))\n')
    with pytest.raises(
            CheckpointError,
            match=r'The test set of .*cvt-13_10_classes\.py names 1000 '
            r"classes \('tench, Tinca tinca'.*head has 10 outputs"):
        dataset_meta(str(config))


def test_tool_reports_a_refusal_in_one_line(tmp_path, monkeypatch, capsys):
    """The script under tools/, run as ``__main__``: exit status 2 and one
    line ``cvt_to_mmpretrain.py: error: ...``."""
    torch.save(Reference('crossvit-ti').state_dict, tmp_path / 'c.pth')
    tool = osp.join(REPO, 'tools/model_converters/cvt_to_mmpretrain.py')
    monkeypatch.setattr(
        sys, 'argv',
        [tool, str(tmp_path / 'c.pth'),
         str(tmp_path / 'out.pth')])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(tool, run_name='__main__')
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith('cvt_to_mmpretrain.py: error: This is not a '
                               'CvT checkpoint')
    assert not osp.exists(tmp_path / 'out.pth')


# ------------------------------------- mmpretrain's own entry points ------
@pytest.fixture(scope='module')
def imagenet_val(tmp_path_factory):
    """ImageNet's layout (val/, meta/val.txt), four generated images."""
    from PIL import Image
    root = tmp_path_factory.mktemp('imagenet')
    os.makedirs(root / 'val')
    os.makedirs(root / 'meta')
    rng = np.random.RandomState(0)
    lines = []
    for i, label in enumerate((1, 207, 281, 980)):
        name = f'ILSVRC2012_val_{i + 1:08d}.JPEG'
        Image.fromarray(rng.randint(0, 256, (80, 96, 3),
                                    np.uint8)).save(root / 'val' / name)
        lines.append(f'{name} {label}')
    (root / 'meta' / 'val.txt').write_text('\n'.join(lines) + '\n')
    return str(root)


@pytest.mark.slow  # end to end (pytest.ini)
def test_inferencer_and_test_tool_with_the_converted_file(
        converted, imagenet_val, tmp_path):
    """The smallest real variant through mmpretrain's inferencer and
    tools/test.py, on ImageNet-layout data (the config's own pipeline)."""
    from mmpretrain import ImageClassificationInferencer
    from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
    _, dst = converted('mobile-former-26m')
    name = EXPECTED_CONFIG['mobile-former-26m']
    image = sorted(glob.glob(osp.join(imagenet_val, 'val', '*.JPEG')))[0]
    inferencer = ImageClassificationInferencer(model=name, pretrained=dst)
    result = inferencer(image)[0]
    assert result['pred_class'] == IMAGENET_CATEGORIES[result['pred_label']]
    assert result['pred_scores'].shape == (1000, )

    out = str(tmp_path / 'preds.pkl')
    metrics = test_api.test([  # tools/test.py's logic, returning metrics
        ci2p_mm.config_path(name), dst, '--work-dir',
        str(tmp_path), '--out', out, '--cfg-options',
        f'test_dataloader.dataset.data_root={imagenet_val}',
        'test_dataloader.batch_size=2', 'test_dataloader.num_workers=0'
    ])
    assert 0 <= metrics['accuracy/top1'] <= 100
    import mmengine
    preds = mmengine.load(out)
    assert len(preds) == 4
    # tools/test.py and the inferencer run the same weights and pipeline
    first = next(p for p in preds if p['img_path'] == image)
    np.testing.assert_allclose(
        first['pred_score'].numpy(), result['pred_scores'], atol=1e-5)


@pytest.mark.parametrize('folder, code', [
    ('cvt', 'https://github.com/microsoft/CvT/'),
    ('mobile_former', 'https://github.com/AAboys/MobileFormer/'),
    ('crossvit', 'https://github.com/IBM/CrossViT/'),
])
def test_metafiles_name_the_authors_weights_and_code(folder, code):
    import yaml
    with open(osp.join(REPO, 'configs', folder, 'metafile.yml')) as f:
        models = yaml.safe_load(f)['Models']
    imagenet = [
        m for m in models if m['Name'].endswith(('_in1k', '_in1k-384px'))
    ]
    assert imagenet
    for model in imagenet:
        source = model['Converted From']
        assert source['Code'].startswith(code)
        assert source['Weights'].startswith('https://')
        assert 'not reproduced by CI2P-MM' in ' '.join(
            model['Metadata']['Results Source'].split())
