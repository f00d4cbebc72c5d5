"""mmpretrain's own APIs and tools on CI2P models, offline.

One tiny CI2P-ViT is trained for an epoch with tools/train.py on the toy
Animals-10 (codec weights from a file the test writes); the codec file is
then deleted, so everything after it shows that a checkpoint alone is
enough: mmpretrain's inferencers, get_model, test --tta, FLOP counting.
"""
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, load_tool, run_tool, write_tiny_config
from PIL import Image

import ci2p_mm
import ci2p_mm.apis.testing as test_api
import ci2p_mm.apis.training as train_api
from ci2p_mm.codec import CodecWeightsError, build_codec
from ci2p_mm.utils import read_config
from ci2p_mm.utils.errors import UserError

CLASSES = ('dog', 'horse', 'elephant', 'butterfly', 'chicken', 'cat', 'cow',
           'sheep', 'spider', 'squirrel')


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory, toy_animals10):
    """(config, epoch_1.pth, a PNG image) after one epoch of training; the
    codec file used for training no longer exists."""
    tmp = tmp_path_factory.mktemp('api')
    codec_file = tmp / 'codec.pth'
    torch.manual_seed(0)
    torch.save(build_codec().state_dict(), codec_file)
    # num_workers=2 in the config, 0 from the command line: the dataloader
    # defaults (persistent_workers) must follow the final value.
    config = write_tiny_config(
        tmp,
        'configs/ci2p_vit_animals10.py',
        toy_animals10,
        epochs=1,
        extra=f"model['backbone']['patch_cfg'] = dict(pretrained="
        f"{str(codec_file)!r})\ntrain_dataloader['num_workers'] = 2\n")
    work_dir = tmp / 'work'
    out = run_tool('tools/train.py', config, '--work-dir', str(work_dir),
                   '--no-pin-memory', '--cfg-options',
                   'train_dataloader.num_workers=0')
    assert 'Loaded the codec weights of backbone.patch_embed' in out
    os.remove(codec_file)
    image = tmp / 'cat.png'
    src = sorted(os.listdir(osp.join(toy_animals10, 'raw-img', 'gatto')))[0]
    Image.open(osp.join(toy_animals10, 'raw-img', 'gatto',
                        src)).convert('RGB').save(image)
    return config, str(work_dir / 'epoch_1.pth'), str(image)


def test_inferencer_on_a_path_and_an_array(checkpoint):
    from mmpretrain import ImageClassificationInferencer
    config, ckpt, image = checkpoint
    inferencer = ImageClassificationInferencer(model=config, pretrained=ckpt)
    by_path = inferencer(image)[0]
    assert by_path['pred_class'] in CLASSES
    assert tuple(inferencer.classes) == CLASSES
    bgr = np.asarray(Image.open(image))[..., ::-1].copy()
    by_array = inferencer(bgr)[0]
    np.testing.assert_allclose(
        by_array['pred_scores'], by_path['pred_scores'], atol=1e-5)
    grey = np.asarray(Image.open(image).convert('L'))
    assert inferencer(grey)[0]['pred_class'] in CLASSES


def test_inference_model_and_feature_extractor_by_registered_name(
        checkpoint, tmp_path):
    from mmpretrain import FeatureExtractor, inference_model
    from mmpretrain.apis import ModelHub
    config, ckpt, image = checkpoint
    # inference_model picks the inferencer from the model index: register
    # the tiny config as mmpretrain does for a project's metafile.
    name = 'tiny-ci2p-vit_1xb16-1e_toy-animals10'
    if not ModelHub.has(name):
        (tmp_path / 'metafile.yml').write_text(
            f'Models:\n- Name: {name}\n  Config: {config}\n  Results:\n'
            f'  - Task: Image Classification\n    Dataset: Animals-10\n'
            f'    Metrics: {{}}\n')
        (tmp_path / 'model-index.yml').write_text('Import:\n- metafile.yml\n')
        ModelHub.register_model_index(tmp_path / 'model-index.yml')
    result = inference_model(name, image, pretrained=ckpt)
    assert result['pred_class'] in CLASSES
    feats = FeatureExtractor(model=config, pretrained=ckpt)(image)[0]
    assert feats[0].shape == (64, )


def test_get_model_takes_the_codec_from_the_checkpoint(checkpoint):
    from mmpretrain import get_model
    config, ckpt, _ = checkpoint
    model = get_model(config, pretrained=ckpt)
    encoder = model.backbone.patch_embed.ci2p_encoder
    assert not encoder.codec_pending
    saved = torch.load(ckpt, map_location='cpu', weights_only=True)
    key = 'backbone.patch_embed.ci2p_encoder.encoder.0.weight'
    assert torch.equal(model.state_dict()[key], saved['state_dict'][key])
    assert model._dataset_meta['classes'] == CLASSES


def test_test_tool_with_tta_loads_the_checkpoint_into_the_wrapper(
        checkpoint, tmp_path):
    config, ckpt, _ = checkpoint
    metrics = test_api.test(
        [config, ckpt, '--tta', '--work-dir',
         str(tmp_path)])
    assert 0 <= metrics['accuracy/top1'] <= 100


def test_test_tool_show_dir_draws_every_interval_th_image(
        checkpoint, tmp_path):
    """mmpretrain's tools/test.py --show-dir/--interval: the config's
    VisualizationHook, enabled."""
    config, ckpt, _ = checkpoint
    vis = tmp_path / 'vis'
    metrics = test_api.test([
        config, ckpt, '--work-dir',
        str(tmp_path / 'w'), '--show-dir',
        str(vis), '--interval', '3'
    ])
    assert 0 <= metrics['accuracy/top1'] <= 100
    drawn = sorted(os.listdir(vis))
    assert len(drawn) == 7  # test images 0, 3, ..., 18 of 20
    assert all(name.endswith('_0.png') for name in drawn)
    assert Image.open(vis / drawn[0]).size[0] >= 64


@pytest.mark.parametrize('case', ['tta', 'latents', 'no hook'])
def test_test_tool_show_dir_refusals(case, tmp_path):
    """What the hook cannot draw is named before the test runs: TTA's
    several views, codec latents, a config without the hook."""
    config = osp.join(
        REPO, 'configs', 'ci2p_vit_animals10_latents.py'
        if case == 'latents' else 'ci2p_vit_animals10.py')
    args = test_api.parse_args([config, 'x.pth', '--show-dir', 'vis'] +
                               (['--tta'] if case == 'tta' else []))
    cfg = read_config(config)
    if case == 'no hook':
        cfg.default_hooks.pop('visualization')
    with pytest.raises(UserError) as err:
        test_api.merge_args(cfg, args)
    assert str(err.value).startswith(f'{config}: --show/--show-dir ')
    assert {
        'tta': '--tta loads several views',
        'latents': 'this config loads codec latents',
        'no hook': 'need default_hooks.visualization'
    }[case] in str(err.value)


def test_flop_counting_needs_neither_weights_nor_unit_range_input():
    """What mmpretrain's get_flops.py does: get_model(CONFIG), then
    mmengine's counter with new_empty() (arbitrary values) input."""
    from mmengine.analysis import get_model_complexity_info
    from mmpretrain import get_model
    model = get_model(osp.join(REPO, 'configs/demo/ci2p_vit_tiny_toy.py'))
    assert model.backbone.patch_embed.ci2p_encoder.codec_pending
    model.forward = model.extract_feat
    with pytest.warns(UserWarning, match='never loaded'):
        info = get_model_complexity_info(model, (3, 128, 128))
    assert info['flops'] > 0.5e9
    # Outside tracing, normalised input is still caught on the data path.
    encoder = model.backbone.patch_embed.ci2p_encoder
    encoder._codec_pending = False
    with pytest.raises(ValueError, match=r'expect RGB in \[0, 1\]'):
        model.extract_feat(torch.randn(1, 3, 128, 128) * 2)


def test_construction_never_downloads_and_forward_refuses_until_loaded(
        fake_zoo):
    from ci2p_mm.models import CI2PPatchEmbed
    codec = build_codec()
    fake_zoo.serve(codec.state_dict())
    calls = fake_zoo.calls
    embed = CI2PPatchEmbed(pretrained=True, embed_dims=64)
    assert not calls
    x = torch.rand(1, 3, 64, 64)
    with pytest.raises(RuntimeError, match=r'model\.init_weights\(\)'):
        embed(x)
    embed.init_weights()
    assert len(calls) == 1
    assert torch.equal(embed.encoder[0].weight, codec.g_a[0].weight)
    assert embed(x)[0].shape == (1, 4, 64)
    embed.init_weights()  # already loaded: no second download
    assert len(calls) == 1


def test_parent_init_cfg_does_not_overwrite_fetched_codec(fake_zoo):
    from ci2p_mm.models import CI2PViT
    codec = build_codec()
    fake_zoo.serve(codec.state_dict())
    model = CI2PViT(
        arch='deit-t',
        img_size=64,
        init_cfg=dict(type='Kaiming', layer='Conv2d'))
    model.init_weights()
    assert torch.equal(model.patch_embed.encoder[0].weight,
                       codec.g_a[0].weight)


@pytest.mark.slow  # end to end (pytest.ini)
def test_training_offline_fails_at_once_but_fine_tuning_works(
        checkpoint, fake_zoo, tmp_path):
    config, ckpt, _ = checkpoint
    fake_zoo.offline()
    zoo = [
        '--cfg-options', 'model.backbone.patch_cfg.pretrained=True',
        'train_cfg.max_epochs=1', 'val_cfg=None', 'val_dataloader=None',
        'val_evaluator=None'
    ]
    with pytest.raises(CodecWeightsError, match='Offline?'):
        train_api.train([config, '--work-dir', str(tmp_path / 'a')] + zoo)
    assert not osp.exists(tmp_path / 'a' / 'epoch_1.pth')
    # load_from provides the codec: no download needed.
    runner = train_api.train(
        [config, '--work-dir', str(tmp_path / 'b')] + zoo +
        [f'load_from={ckpt}'])
    assert osp.exists(tmp_path / 'b' / 'epoch_1.pth')
    assert not runner.model.backbone.patch_embed.ci2p_encoder.codec_pending
    assert len(fake_zoo.calls) == 1  # the first run tried; the second did not


def test_dataloader_defaults_follow_cfg_options_and_flags(
        tmp_path, toy_animals10):
    config = write_tiny_config(tmp_path, 'configs/ci2p_vit_animals10.py',
                               toy_animals10)
    args = train_api.parse_args([
        config, '--no-persistent-workers', '--cfg-options',
        'val_dataloader.num_workers=4', 'train_dataloader.num_workers=3'
    ])
    from mmengine.config import Config
    cfg = train_api.merge_args(Config.fromfile(config), args)
    assert cfg.train_dataloader.num_workers == 3
    assert cfg.train_dataloader.persistent_workers is False
    args = train_api.parse_args([
        config, '--no-pin-memory', '--cfg-options',
        'train_dataloader.num_workers=2'
    ])
    cfg = train_api.merge_args(Config.fromfile(config), args)
    assert cfg.train_dataloader.persistent_workers is True
    assert cfg.train_dataloader.pin_memory is False
    assert cfg.val_dataloader.persistent_workers is False  # 0 workers
    # --no-validate wins over val options given beside it (merging them
    # into the val_dataloader=None it set was a TypeError)
    args = train_api.parse_args([
        config, '--no-validate', '--cfg-options',
        'val_dataloader.num_workers=0', 'val_evaluator.topk=[1]'
    ])
    cfg = train_api.merge_args(Config.fromfile(config), args)
    assert cfg.val_dataloader is cfg.val_cfg is cfg.val_evaluator is None
    assert cfg.train_dataloader.num_workers == 0


def test_model_index_lists_every_config_with_params():
    import yaml
    from mmpretrain import get_model, list_models
    names = set(list_models())
    index = yaml.safe_load(open(osp.join(REPO, 'model-index.yml')))
    entries = []
    for metafile in index['Import']:
        entries += yaml.safe_load(open(osp.join(REPO, metafile)))['Models']
    assert {e['Name'] for e in entries} <= names
    assert {e['Name']
            for e in entries
            if 'ci2p' in e['Name']} <= set(list_models('*ci2p*'))
    for entry in entries:
        name = osp.splitext(osp.basename(entry['Config']))[0]
        assert name == entry['Name']  # OpenMMLab: the name is the file's
        assert ci2p_mm.config_path(name) == osp.join(REPO, entry['Config'])
        assert entry['Results'][0]['Task'] == 'Image Classification'
    demo = 'ci2p-vit-t_1xb32-adam-12e_toy-animals10-128px'
    model = get_model(demo)
    meta = next(e for e in entries if e['Name'] == demo)['Metadata']
    assert meta['Parameters'] == sum(p.numel() for p in model.parameters())
    assert model._dataset_meta['classes'] == CLASSES


@pytest.mark.slow  # builds a wheel and imports it in a fresh interpreter
def test_an_installed_wheel_finds_its_configs_by_name(tmp_path):
    """``pip install ci2p-mm`` (not ``-e``): the wheel carries the configs
    and the model index in ``ci2p_mm/.mim/``, and mmpretrain's
    ``list_models`` / ``get_model`` find them with no checkout around."""
    import shutil
    import zipfile
    source = tmp_path / 'source'  # a copy: the build writes build/ in it
    ignore = shutil.ignore_patterns('__pycache__', '*.egg-info')
    for name in ('ci2p_mm', 'configs'):
        shutil.copytree(osp.join(REPO, name), source / name, ignore=ignore)
    for name in ('setup.py', 'setup.cfg', 'MANIFEST.in', 'README.md',
                 'LICENSE', 'model-index.yml'):
        shutil.copy(osp.join(REPO, name), source / name)
    run_tool('-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
             '--no-index', '-q', '-w', str(tmp_path / 'dist'), str(source))
    wheel, = (tmp_path / 'dist').glob('ci2p_mm-*.whl')
    site = tmp_path / 'site'  # a pure-Python wheel installs by unzipping
    zipfile.ZipFile(wheel).extractall(site)
    shipped = {
        osp.relpath(osp.join(d, f), site / 'ci2p_mm' / '.mim' / 'configs')
        for d, _, files in os.walk(site / 'ci2p_mm' / '.mim' / 'configs')
        for f in files
    }
    configs = {
        osp.relpath(osp.join(d, f), osp.join(REPO, 'configs'))
        for d, _, files in os.walk(osp.join(REPO, 'configs'))
        for f in files if f.endswith(('.py', '.yml'))
    }
    assert shipped == configs
    demo = 'ci2p-vit-t_1xb32-adam-12e_toy-animals10-128px'
    probe = tmp_path / 'probe.py'  # run outside the checkout
    probe.write_text(f"""
import ci2p_mm
from mmpretrain import get_model, list_models
print('FILE', ci2p_mm.__file__)
print('CONFIG', ci2p_mm.config_path({demo!r}))
print('CI2P', sorted(list_models('*ci2p*')))
model = get_model({demo!r})
print('PARAMS', sum(p.numel() for p in model.parameters()))
""")
    env = dict(os.environ, PYTHONPATH=str(site))
    proc = subprocess.run([sys.executable, str(probe)],
                          cwd=tmp_path,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = dict(
        line.split(' ', 1) for line in proc.stdout.splitlines()
        if line.startswith(('FILE', 'CONFIG', 'CI2P', 'PARAMS')))
    mim = str(site / 'ci2p_mm' / '.mim')
    assert found['FILE'] == str(site / 'ci2p_mm' / '__init__.py')
    assert found['CONFIG'].startswith(mim)
    import yaml
    index = yaml.safe_load(open(osp.join(REPO, 'model-index.yml')))
    entries = []
    for metafile in index['Import']:
        entries += yaml.safe_load(open(osp.join(REPO, metafile)))['Models']
    ci2p_names = sorted(e['Name'] for e in entries if 'ci2p' in e['Name'])
    assert found['CI2P'] == repr(ci2p_names)
    meta = next(e for e in entries if e['Name'] == demo)['Metadata']
    assert int(found['PARAMS']) == meta['Parameters']


def test_load_image_rgb_checks_arrays():
    from ci2p_mm.datasets import SafeLoadImageFromFile
    load = SafeLoadImageFromFile()
    out = load(dict(img=np.zeros((16, 20), np.uint8)))
    assert out['img'].shape == (16, 20, 3) and out['ori_shape'] == (16, 20)
    with pytest.raises(ValueError, match='dtype float32'):
        load(dict(img=np.zeros((16, 16, 3), np.float32)))
    with pytest.raises(ValueError, match='RGBA'):
        load(dict(img=np.zeros((16, 16, 4), np.uint8)))
    with pytest.raises(ValueError, match='img_path'):
        load(dict())


def test_publish_and_image_demo(checkpoint, tmp_path, capsys):
    from mmpretrain import get_model
    config, ckpt, image = checkpoint
    publish = load_tool('tools/model_converters/publish_model.py')
    assert publish.main([ckpt, str(tmp_path / 'tiny-ci2p.pth')]) == 0
    final = capsys.readouterr().out.splitlines()[-1][len('Published '):]
    assert osp.basename(final).startswith('tiny-ci2p_')
    published = torch.load(final, map_location='cpu', weights_only=True)
    assert not {'optimizer', 'message_hub'} & set(published)
    meta = published['meta']
    assert meta['ci2p_codecs'] and meta['dataset_meta']['classes'] == CLASSES
    assert 'cfg' in meta and 'ci2p_rng' not in meta
    model = get_model(config, pretrained=final)
    assert not model.backbone.patch_embed.ci2p_encoder.codec_pending
    demo = load_tool('demo/image_demo.py')
    out = str(tmp_path / 'pred.png')
    assert demo.main([image, config, final, '--topk', '3', '--out', out]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[-1] == f'Saved {out}'
    # (rank, class, score) lines; the inferencer's progress bar may precede
    # the first one on its line.
    ranked = re.findall(r'(\d)\. (\S+) +([0-9.]+)$', printed, re.MULTILINE)
    assert [r[0] for r in ranked] == ['1', '2', '3']
    assert ranked[0][1] in CLASSES
    assert float(ranked[0][2]) >= float(ranked[1][2]) >= float(ranked[2][2])
    with open(out, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    with pytest.raises(SystemExit):  # it printed nothing, and exited 0
        demo.main([image, config, final, '--topk', '0'])
    assert '--topk: must be >= 1, not 0' in capsys.readouterr().err
    # --out that cannot take the drawing: refused before the model runs
    # (was cv2's 'could not find encoder' traceback after it)
    os.mkdir(tmp_path / 'folder')
    for bad, why in ((tmp_path / 'folder', 'is a folder'),
                     (tmp_path / 'pred.xyz', 'OpenCV writes no image of this'),
                     (image, 'is the input')):
        with pytest.raises(UserError, match=why):
            demo.main([image, config, final, '--out', str(bad)])
    assert not capsys.readouterr().out  # nothing classified


# -------------------------------- hostile weights and class names (#27) ---
def edited_copy(ckpt, path, edit):
    """A copy of the checkpoint ``ckpt`` changed by ``edit(checkpoint)``."""
    from ci2p_mm.utils.io import load_torch_file
    checkpoint = load_torch_file(ckpt)
    edit(checkpoint)
    torch.save(checkpoint, path)
    return str(path)


def nan_head(checkpoint):
    checkpoint['state_dict']['head.fc.weight'].fill_(float('nan'))
    checkpoint['state_dict']['head.fc.bias'][:2] = float('inf')


@pytest.mark.slow  # end to end (pytest.ini)
def test_nan_weights_are_refused_by_every_reader(checkpoint, tmp_path):
    """Was: tools/test.py scored an all-NaN head top-1 0 (exit 0), the demo
    and get_model predicted NaN, publish_model passed the file on. Now
    every path by which a checkpoint enters a model refuses it, naming the
    tensors and how many values are not finite."""
    from mmpretrain import ImageClassificationInferencer, get_model

    from ci2p_mm.engine import CheckpointError
    from ci2p_mm.engine.publish import publish_checkpoint
    from ci2p_mm.inference import load_classifier
    config, ckpt, _ = checkpoint
    bad = edited_copy(ckpt, tmp_path / 'nan.pth', nan_head)
    match = (r'nan\.pth holds 642 NaN/inf values in 2 tensor\(s\): '
             r'head\.fc\.weight, head\.fc\.bias\. These weights are broken')
    readers = {
        'tools/test.py':
        lambda: test_api.test([config, bad, '--work-dir',
                               str(tmp_path / 'w')]),
        'get_model':
        lambda: get_model(config, pretrained=bad),
        'inferencer':
        lambda: ImageClassificationInferencer(model=config, pretrained=bad),
        'demo':
        lambda: load_classifier(config, bad),
        'publish':
        lambda: publish_checkpoint(bad, str(tmp_path / 'p.pth')),
    }
    for name, read in readers.items():
        with pytest.raises(CheckpointError, match=match):
            read()
    assert sorted(os.listdir(tmp_path)) == ['nan.pth', 'w']
    # EMA weights are checked too (publish --no-ema would publish them).
    ema = edited_copy(
        ckpt, tmp_path / 'ema.pth', lambda c: c.update(
            ema_state_dict={'head.fc.bias': torch.full((10, ), torch.inf)}))
    with pytest.raises(
            CheckpointError,
            match=r'10 NaN/inf values in 1 '
            r'tensor\(s\): ema\.head\.fc\.bias'):
        publish_checkpoint(ema, str(tmp_path / 'p.pth'), no_ema=True)


def set_classes(classes):

    def edit(checkpoint):
        if classes is None:
            del checkpoint['meta']['dataset_meta']
        else:
            checkpoint['meta']['dataset_meta'] = dict(classes=classes)

    return edit


def test_publish_keeps_the_checkpoints_class_names(checkpoint, tmp_path,
                                                   capsys):
    """Was: --dataset-type ImageNet replaced a 10-class checkpoint's own
    names with ImageNet's 1000 (the demo then labelled a cat "cock"). Now
    it fills names only where there are none, --replace-classes replaces
    them, and either way there is one name per output of the head."""
    from ci2p_mm.engine import CheckpointError
    from ci2p_mm.engine.publish import main, publish_checkpoint
    config, ckpt, _ = checkpoint
    out = str(tmp_path / 'pub' / 'tiny.pth')
    with pytest.raises(
            CheckpointError,
            match=r"epoch_1\.pth names its own 10 classes \('dog'"
            r".*--dataset-type ImageNet fills names only when "
            r'there are none.*add --replace-classes'):
        publish_checkpoint(ckpt, out, dataset_type='ImageNet')
    with pytest.raises(
            CheckpointError,
            match=r'--dataset-type ImageNet names 1000 classes '
            r"\('tench, Tinca tinca'.*but the head has 10 "
            r'outputs'):
        publish_checkpoint(
            ckpt, out, dataset_type='ImageNet', replace_classes=True)
    three = edited_copy(ckpt, tmp_path / 'three.pth',
                        set_classes(('a', 'b', 'c')))
    with pytest.raises(
            CheckpointError,
            match=r'three\.pth \(meta\.dataset_meta\.classes\) '
            r"names 3 classes \('a', 'b', 'c'\), but the head "
            r'has 10 outputs'):
        publish_checkpoint(three, out)
    with pytest.raises(CheckpointError, match='--dataset-type Nope: no '):
        publish_checkpoint(ckpt, out, dataset_type='Nope')
    with pytest.raises(SystemExit):
        main([ckpt, out, '--replace-classes'])
    assert not osp.exists(osp.dirname(out))
    # The same names, no names, or names replaced on purpose: published.
    unnamed = edited_copy(ckpt, tmp_path / 'unnamed.pth', set_classes(None))
    for source, extra in [
        (ckpt, ['--dataset-type', 'Animals10']),
        (unnamed, ['--dataset-type', 'Animals10']),
        (three, ['--dataset-type', 'Animals10', '--replace-classes'])
    ]:
        assert main([source, out, *extra]) == 0
        final = capsys.readouterr().out.split()[-1]
        meta = torch.load(final, weights_only=True)['meta']
        assert tuple(meta['dataset_meta']['classes']) == CLASSES


def test_demo_refuses_class_names_that_do_not_fit_the_head(
        checkpoint, tmp_path, capsys):
    """Was: 3 names for a 10-way head, IndexError in the demo; names that
    are not strings went on as they were."""
    from ci2p_mm.inference import main
    from ci2p_mm.utils.cli import run
    config, ckpt, image = checkpoint
    three = edited_copy(ckpt, tmp_path / 'three.pth',
                        set_classes(['a', 'b', 'c']))
    with pytest.raises(SystemExit) as exit_:
        run(main, [image, config, three])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'names 3 classes' in err[0]
    numbers = edited_copy(ckpt, tmp_path / 'n.pth',
                          set_classes(list(range(10))))
    with pytest.raises(SystemExit):
        run(main, [image, config, numbers])
    assert 'the class names are not a list of strings' in \
        capsys.readouterr().err
