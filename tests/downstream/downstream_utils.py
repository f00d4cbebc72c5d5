"""Helpers for the downstream (mmdet / mmpose / mmseg) tests.

These tests need full mmcv, mmdet, mmpose and mmseg
(tools/misc/install_mmcv_full.sh)
and are skipped without them. CI's downstream tier sets
``CI2P_REQUIRE_DOWNSTREAM=1`` so that a broken install fails instead.
"""
import os
import os.path as osp
from collections import OrderedDict

import numpy as np
import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(REPO, 'configs', 'downstream')


def require_downstream(module: str):
    """``pytest.importorskip`` unless CI2P_REQUIRE_DOWNSTREAM=1."""
    if os.environ.get('CI2P_REQUIRE_DOWNSTREAM') == '1':
        return __import__(module, fromlist=['_'])
    return pytest.importorskip(
        module,
        reason=f'{module} is not importable: the downstream extras (full '
        f'mmcv, mmdet, mmpose, mmseg) are not installed; see '
        f'tools/misc/install_mmcv_full.sh')


def default_scope(scope: str):
    """A module-wide autouse fixture: build in ``scope``, and leave the
    global default scope as it was afterwards (later tests, mmpretrain's,
    build without naming a scope)."""

    @pytest.fixture(scope='module', autouse=True)
    def _default_scope():
        from mmengine.registry import DefaultScope
        with DefaultScope.overwrite_default_scope(scope):
            yield

    return _default_scope


def build_model(registry, model_cfg):
    """``registry.build`` with a fixed seed, then ``init_weights``."""
    torch.manual_seed(0)
    model = registry.build(model_cfg)
    model.init_weights()
    return model


#: ``type`` names a downstream config may use for a CI2P backbone.
BACKBONE_TYPES = [
    f'{scope}{name}' for name in ('DualScaleViT', 'CI2PViT')
    for scope in ('', 'mmpretrain.')
]


def assert_backbone_builds(registry, type_name: str):
    """``type_name`` (plain: registered into the downstream registry by
    ci2p_mm.downstream; ``mmpretrain.X``: across scopes, as mmdet's own
    configs use ``mmpretrain.ConvNeXt``) builds the CI2P class, featmaps."""
    import ci2p_mm.downstream  # noqa: F401
    from ci2p_mm import models
    cls = getattr(models, type_name.split('.')[-1])
    backbone = registry.build(
        dict(
            type=type_name,
            arch='t' if cls is models.DualScaleViT else 'deit-t',
            patch_cfg=dict(pretrained=False),
            out_type='featmap',
            out_indices=(1, 3)))
    assert type(backbone) is cls
    with torch.no_grad():
        feats = backbone(torch.rand(1, 3, 64, 64))
    assert len(feats) == 2 and all(f.dim() == 4 for f in feats)


def load_config(name: str, **backbone):
    """A configs/downstream config, made offline: no codec download, no
    pretrained checkpoint, plus ``backbone`` overrides."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(CONFIGS, name))
    cfg.model.backbone.patch_cfg.pretrained = False
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.update(backbone)
    return cfg


def assert_config_conventions(name: str, scope: str):
    """A shipped downstream config as users get it: the codec's input
    convention (RGB in [0, 1], padded to 32), the frozen codec with its zoo
    weights, a classification checkpoint loaded with prefix ``backbone.``,
    and the base's ResNet keys gone."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(CONFIGS, name))
    assert cfg.default_scope == scope  # from mmdet's / mmpose's base
    assert {'ci2p_mm', 'ci2p_mm.downstream'} <= set(cfg.custom_imports.imports)
    pre = cfg.model.data_preprocessor
    assert pre.type == {
        'mmdet': 'DetDataPreprocessor',
        'mmpose': 'PoseDataPreprocessor'
    }[scope]
    assert pre.mean == [0., 0., 0.] and pre.std == [255., 255., 255.]
    assert pre.bgr_to_rgb and pre.pad_size_divisor == 32
    backbone = cfg.model.backbone
    assert 'depth' not in backbone and backbone.out_type == 'featmap'
    assert backbone.patch_cfg.frozen and backbone.patch_cfg.pretrained
    assert backbone.init_cfg == dict(
        type='Pretrained', checkpoint=cfg.pretrained, prefix='backbone.')
    return cfg


def write_classification_checkpoint(path, config: str):
    """Save the classifier of ``configs/<config>`` the way mmengine's Runner
    does (``tools/train.py`` with that config), offline.

    Returns the classifier's state dict. Besides ``state_dict`` (keys
    ``backbone.*``, ``head.*``) the file has ``meta`` and a ``message_hub``
    with a HistoryBuffer and numpy values, as Runner checkpoints have: they
    must load under torch's ``weights_only`` default.
    """
    import mmengine
    from mmengine.config import Config
    from mmengine.logging import HistoryBuffer
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    import ci2p_mm  # noqa: F401

    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    assert cfg.model.type == 'ImageClassifier', config
    cfg.model.backbone.patch_cfg.pretrained = False
    cfg.model.data_preprocessor = cfg.data_preprocessor
    torch.manual_seed(1)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        classifier = MODELS.build(cfg.model)
    classifier.init_weights()
    state_dict = OrderedDict(
        (k, v.detach().clone()) for k, v in classifier.state_dict().items())
    buffer = HistoryBuffer()
    buffer.update(np.float64(0.5))
    torch.save(
        dict(
            meta=dict(
                epoch=3,
                iter=30,
                seed=np.int64(0),
                cfg=cfg.pretty_text,
                mmengine_version=mmengine.__version__,
                dataset_meta=dict(classes=[str(i) for i in range(10)])),
            state_dict=state_dict,
            message_hub=dict(
                log_scalars={'train/loss': buffer},
                runtime_info={
                    'epoch': 3,
                    'np_value': np.array([1.0])
                })), path)
    return state_dict


def assert_backbone_loaded(backbone, state_dict, resized=()):
    """Every tensor of ``backbone`` equals the checkpoint's ``backbone.*``
    one (``resized``: names whose shape may differ, e.g. a resized position
    embedding). Returns the checkpoint keys the backbone did not use."""
    loaded = backbone.state_dict()
    expected = {
        k[len('backbone.'):]: v
        for k, v in state_dict.items() if k.startswith('backbone.')
    }
    missing = sorted(set(loaded) - set(expected))
    assert missing == [], f'not in the checkpoint: {missing}'
    for name, value in loaded.items():
        if name in resized:
            assert value.shape[-1] == expected[name].shape[-1], name
        else:
            assert torch.equal(value, expected[name]), name
    return sorted(set(expected) - set(loaded))


def encoder_params(backbone):
    return list(backbone.patch_embed.encoder.parameters())


def assert_gradients_reach_vit_not_encoder(backbone):
    """After backward: every trainable ViT layer got a gradient, the frozen
    codec encoder got none (and cannot)."""
    enc = encoder_params(backbone)
    assert enc and all(p.grad is None and not p.requires_grad for p in enc)
    assert not backbone.patch_embed.encoder.training
    for i, layer in enumerate(backbone.layers):
        params = [p for p in layer.parameters() if p.requires_grad]
        assert params, f'layer {i} has no trainable parameters'
        missing = [
            n for n, p in layer.named_parameters()
            if p.requires_grad and p.grad is None
        ]
        assert not missing, f'layer {i}: no gradient for {missing}'
        assert all(torch.isfinite(p.grad).all() for p in params)
