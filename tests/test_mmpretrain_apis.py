"""mmpretrain's own APIs and tools on CI2P models, offline.

One tiny CI2P-ViT is trained for an epoch with tools/train.py on the toy
Animals-10 (codec weights from a file the test writes); the codec file is
then deleted, so everything after it shows that a checkpoint alone is
enough: mmpretrain's inferencers, get_model, test --tta, FLOP counting.
"""
import os
import os.path as osp
import re

import numpy as np
import pytest
import torch
from conftest import REPO, load_tool, run_tool, write_tiny_config
from PIL import Image

import ci2p_mm
import ci2p_mm.apis.testing as test_api
import ci2p_mm.apis.training as train_api
from ci2p_mm.codec import CodecWeightsError, build_codec

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
