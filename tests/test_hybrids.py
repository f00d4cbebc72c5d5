"""CvT, CrossViT and Mobile-Former: paper-size params from the configs,
shapes and contracts on tiny arches, a training step in ImageClassifier, and
tools/train.py on the Animals-10 configs (generated data)."""
import glob
import os.path as osp

import pytest
import torch
from conftest import REPO, write_tiny_config
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import ci2p_mm  # noqa: F401
import ci2p_mm.apis.training as train_api
from ci2p_mm.models.backbones import CrossViT, CvT, MobileFormer

#: ImageNet config -> the paper's params (millions), standard head included.
PAPER_PARAMS = {
    'cvt/cvt-13_8xb256_in1k.py': 20.0,
    'cvt/cvt-21_8xb128_in1k.py': 32.0,  # 31.6M in the authors' model zoo
    'cvt/cvt-w24_8xb128_in1k-384px.py': 277.0,
    'crossvit/crossvit-ti_32xb128_in1k.py': 7.0,
    'crossvit/crossvit-s_32xb128_in1k.py': 26.7,
    'crossvit/crossvit-b_32xb128_in1k.py': 104.7,
    'crossvit/crossvit-9_32xb128_in1k.py': 8.6,
    'crossvit/crossvit-15_32xb128_in1k.py': 27.4,
    'crossvit/crossvit-18_32xb128_in1k.py': 43.3,
    'crossvit/crossvit-9-dagger_32xb128_in1k.py': 8.8,
    'crossvit/crossvit-15-dagger_32xb128_in1k.py': 28.2,
    'crossvit/crossvit-18-dagger_32xb128_in1k.py': 44.3,
    'mobile_former/mobile-former-508m_8xb128_in1k.py': 14.0,
    'mobile_former/mobile-former-294m_8xb128_in1k.py': 11.4,
    'mobile_former/mobile-former-214m_8xb128_in1k.py': 9.4,
    'mobile_former/mobile-former-151m_8xb128_in1k.py': 7.6,
    'mobile_former/mobile-former-96m_8xb128_in1k.py': 4.6,
    'mobile_former/mobile-former-52m_8xb128_in1k.py': 3.5,
    'mobile_former/mobile-former-26m_8xb128_in1k.py': 3.2,
}
ANIMALS10 = sorted(
    osp.relpath(p, osp.join(REPO, 'configs'))
    for p in glob.glob(osp.join(REPO, 'configs', '*', '*_animals10.py'))
    if osp.basename(osp.dirname(p)) in ('cvt', 'crossvit', 'mobile_former'))

TINY_CVT = dict(embed_dims=[16, 32, 48], depths=[1, 1, 2], num_heads=[1, 2, 3])
TINY_CROSSVIT = dict(
    patch_size=[12, 16],
    embed_dim=[24, 48],
    depth=[[1, 1, 0], [1, 1, 0]],
    num_heads=[2, 2],
    mlp_ratio=[2, 2, 1],
    img_scale=(1.0, 1.0))
TINY_MOBILE_FORMER = dict(
    stem_channels=8,
    num_tokens=3,
    token_dims=32,
    head_channels=64,
    stages=[[(2, 8, 1, 0)], [(3, 16, 2, 4), (3, 16, 1, 3)], [(4, 24, 2, 4)]])
#: Tiny backbone and head settings per Animals-10 config family.
TINY = {
    'cvt': (dict(arch=TINY_CVT), dict(in_channels=48)),
    # 48 px: timm's CrossVit needs sizes its patches divide; other inputs
    # (the 64 px test images) are resized inside the model.
    'crossvit': (dict(arch=TINY_CROSSVIT, img_size=48), dict(in_channels=72)),
    'mobile_former': (dict(arch=TINY_MOBILE_FORMER),
                      dict(in_channels=24 * 6 + 32, mid_channels=[64])),
}


def config_path(name):
    return osp.join(REPO, 'configs', name)


def build_on_meta(name):
    """The config's classifier, built without memory or initialisation."""
    cfg = Config.fromfile(config_path(name))
    with torch.device('meta'):
        return MODELS.build(cfg.model)


@pytest.mark.parametrize('name', sorted(PAPER_PARAMS))
def test_imagenet_config_params_match_paper(name):
    model = build_on_meta(name)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    assert params == pytest.approx(PAPER_PARAMS[name], rel=0.02)
    assert model.head.num_classes == 1000


@pytest.mark.parametrize('name', ANIMALS10)
def test_animals10_configs_build(name):
    cfg = Config.fromfile(config_path(name))
    assert cfg.custom_imports.imports == ['ci2p_mm']
    assert cfg.optim_wrapper.optimizer.type == 'Adam'
    assert cfg.optim_wrapper.optimizer.lr == 1e-4
    assert cfg.train_cfg.max_epochs == 300
    assert cfg.data_preprocessor.type == 'ClsDataPreprocessor'
    steps = [t['type'] for t in cfg.train_dataloader.dataset.pipeline]
    assert steps == [
        'SafeLoadImageFromFile', 'Resize', 'RandomFlip', 'PackInputs'
    ]
    size = cfg.train_dataloader.dataset.pipeline[1].scale
    assert size == ((240, 240) if 'crossvit' in name else (256, 256))
    model = build_on_meta(name)
    assert model.head.num_classes == 10


def test_animals10_configs_cover_the_comparison():
    names = {osp.basename(n).split('_')[0] for n in ANIMALS10}
    assert {
        'cvt-13', 'cvt-21', 'crossvit-s', 'crossvit-b', 'mobile-former-508m'
    } <= names


# ------------------------------------------------------------------ CvT ---
def test_cvt_stages_strides_and_class_token():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 96)
    feats = CvT(TINY_CVT, out_type='featmap', out_indices=(0, 1, 2))(x)
    assert [tuple(f.shape) for f in feats] == [(2, 16, 16, 24), (2, 32, 8, 12),
                                               (2, 48, 4, 6)]
    model = CvT(TINY_CVT, out_type='raw')
    assert model.stages[-1].cls_token is not None
    assert all(s.cls_token is None for s in model.stages[:-1])
    tokens, = model(x)
    assert tokens.shape == (2, 1 + 4 * 6, 48)
    cls, = CvT(TINY_CVT)(x)
    assert cls.shape == (2, 48)


def test_cvt_convolutional_projection_strides():
    """Q keeps the token grid; K and V are subsampled by 2 (4x fewer)."""
    attn = CvT(TINY_CVT).stages[0].blocks[0].attn
    x_map = torch.rand(1, 16, 8, 8)
    assert attn.q(x_map).shape == (1, 64, 16)
    assert attn.k(x_map).shape == attn.v(x_map).shape == (1, 16, 16)
    assert attn.k.depthwise.groups == 16
    assert isinstance(attn.k.bn, torch.nn.BatchNorm2d)


def test_cvt_has_no_position_embedding_and_takes_any_size():
    model = CvT(TINY_CVT).eval()
    assert not any('pos' in name for name, _ in model.named_parameters())
    for size in (32, 80):
        assert model(torch.rand(1, 3, size, size))[0].shape == (1, 48)


def test_cvt_frozen_stages_and_norm_eval():
    model = CvT(
        TINY_CVT,
        out_type='featmap',
        out_indices=(0, 1, 2),
        frozen_stages=1,
        norm_eval=True)
    model.train()
    sum(f.sum() for f in model(torch.rand(1, 3, 32, 32))).backward()
    assert all(p.grad is None for p in model.stages[0].parameters())
    assert all(p.grad is not None for p in model.stages[1].parameters())
    assert not any(m.training for m in model.modules()
                   if isinstance(m, torch.nn.BatchNorm2d))


def test_cvt_defaults_are_microsofts_attention_scale_and_quickgelu():
    """cls_cvt.py: ``scale = dim_out ** -0.5``, ``act_layer=QuickGELU``;
    the options give the usual head-width scale and plain GELU."""
    from mmpretrain.models.utils import QuickGELU
    block = CvT(TINY_CVT).stages[2].blocks[0]
    assert block.attn.scale == 48**-0.5
    assert isinstance(block.ffn.layers[0][1], QuickGELU)
    block = CvT(
        TINY_CVT, attn_scale='head_dims',
        act_cfg=dict(type='GELU')).stages[2].blocks[0]
    assert block.attn.scale == (48 // 3)**-0.5
    assert type(block.ffn.layers[0][1]) is torch.nn.GELU
    x = torch.randn(1, 3, 32, 32)
    ref = CvT(TINY_CVT).eval()
    other = CvT(TINY_CVT, attn_scale='head_dims').eval()
    other.load_state_dict(ref.state_dict())
    assert not torch.allclose(ref(x)[0], other(x)[0])


@pytest.mark.parametrize('kwargs, match', [
    (dict(arch='14'), "CvT: Arch '14' is not in default archs"),
    (dict(attn_scale='sqrt'), "attn_scale 'sqrt'"),
    (dict(act_cfg=dict(type='NoSuchAct')), "act_cfg type 'NoSuchAct'"),
    (dict(out_indices=(0, 2)), "last stage only"),
    (dict(out_indices=5, out_type='featmap'),
     r'Invalid out_indices \[5\]: there are 3 stages'),
    (dict(out_type='pooled'), 'out_type'),
])
def test_cvt_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CvT(**{'arch': TINY_CVT, **kwargs})


# ------------------------------------------------------------- CrossViT ---
def test_crossvit_wraps_timm_with_both_class_tokens():
    model = CrossViT(TINY_CROSSVIT, img_size=48).eval()
    assert type(model.model).__module__ == 'timm.models.crossvit'
    assert [p.num_patches for p in model.model.patch_embed] == [16, 9]
    out, = model(torch.rand(2, 3, 48, 48))
    assert out.shape == (2, model.out_channels) == (2, 24 + 48)
    # the final LayerNorms of both branches end the last encoder, as on
    # the path through every encoder (out_indices with an earlier one)
    x = torch.rand(1, 3, 48, 48)
    xs = model.model.forward_features(x)
    expected = torch.cat([xs[0][:, 0], xs[1][:, 0]], 1)
    assert torch.allclose(model(x)[0], expected)
    model.out_indices = [0, 1]
    assert torch.allclose(model(x)[1], expected, atol=1e-6)


def test_crossvit_intermediate_encoders_and_frozen_stages():
    model = CrossViT(
        TINY_CROSSVIT,
        img_size=48,
        out_indices=(0, 1),
        out_type='avg_featmap',
        frozen_stages=1)
    model.train()
    outs = model(torch.rand(2, 3, 48, 48))
    assert [o.shape for o in outs] == [(2, 72), (2, 72)]
    sum(o.sum() for o in outs).backward()
    assert all(p.grad is None for p in model.model.blocks[0].parameters())
    assert model.model.cls_token_0.grad is None
    assert all(p.grad is not None for p in model.model.blocks[1].parameters())


def test_crossvit_dagger_uses_three_conv_patch_embedding():
    with torch.device('meta'):
        plain = CrossViT('9').model.patch_embed[0].proj
        dagger = CrossViT('9-dagger').model.patch_embed[0].proj
    assert isinstance(plain, torch.nn.Conv2d)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in dagger) == 3


def test_crossvit_bad_arch():
    with pytest.raises(
            ValueError, match="CrossViT: Arch 'xl' is not in default"):
        CrossViT('xl')


# -------------------------------------------------------- Mobile-Former ---
def test_mobile_former_stages_and_pool_token():
    x = torch.rand(2, 3, 64, 64)
    model = MobileFormer(
        TINY_MOBILE_FORMER, out_type='featmap', out_indices=(0, 1, 2))
    assert not hasattr(model, 'last_conv')  # no unused params downstream
    assert [tuple(f.shape) for f in model(x)] == [(2, 8, 32, 32),
                                                  (2, 16, 16, 16),
                                                  (2, 24, 8, 8)]
    model = MobileFormer(TINY_MOBILE_FORMER)
    out, = model(x)
    assert out.shape == (2, model.pool_token_channels) == (2, 24 * 6 + 32)


def test_mobile_former_bridge_carries_the_tokens():
    """Changing the global tokens changes the local features (through the
    Former->Mobile bridge and dynamic ReLU), and the image changes the
    tokens (Mobile->Former)."""
    torch.manual_seed(0)
    model = MobileFormer(TINY_MOBILE_FORMER).eval()
    model.init_weights()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)[0]
        model.tokens.mul_(-1)
        after = model(x)[0]
    local = 24 * 6
    assert not torch.allclose(before[:, :local], after[:, :local])
    with torch.no_grad():
        block = model.stages[1][0]
        tokens = model.tokens.expand(1, -1, -1)
        feats = model.stem(x)
        t1 = block(feats, tokens)[1]
        t2 = block(feats + 1, tokens)[1]
    assert not torch.allclose(t1, t2)


def test_mobile_former_26m_uses_grouped_pointwise_convs():
    with torch.device('meta'):
        model = MobileFormer('26m')
    block = model.stages[1][1]
    assert block.conv1[0].groups == 4 and block.conv3[0].groups == 4
    assert model.tokens.shape == (3, 128)


def test_mobile_former_frozen_stages_and_norm_eval():
    model = MobileFormer(
        TINY_MOBILE_FORMER,
        out_type='featmap',
        out_indices=(1, 2),
        frozen_stages=1,
        norm_eval=True)
    model.train()
    sum(f.sum() for f in model(torch.rand(1, 3, 32, 32))).backward()
    assert model.tokens.grad is None
    assert all(p.grad is None for p in model.stem.parameters())
    assert all(p.grad is None for p in model.stages[0].parameters())
    assert model.stages[2][0].conv4[0].weight.grad is not None
    assert not any(m.training for m in model.modules()
                   if isinstance(m, torch.nn.BatchNorm2d))


@pytest.mark.parametrize('kwargs, match', [
    (dict(arch='300m'), "MobileFormer: Arch '300m' is not in default"),
    (dict(out_indices=(1, 2)), 'last stage only'),
    (dict(arch=dict(stages=[])),
     "MobileFormer: Custom arch needs a dict with keys"),
])
def test_mobile_former_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MobileFormer(**{'arch': TINY_MOBILE_FORMER, **kwargs})


# ------------------------------------------- classifier and tools/train ---
def family(name):
    return osp.dirname(name)


def tiny_classifier_cfg(name):
    cfg = Config.fromfile(config_path(name))
    backbone, head = TINY[family(name)]
    cfg.model.backbone.update(backbone)
    cfg.model.head.update(head)
    cfg.model.data_preprocessor = cfg.data_preprocessor
    return cfg


@pytest.mark.parametrize('name', ANIMALS10)
def test_train_step_in_image_classifier(name):
    torch.manual_seed(0)
    cfg = tiny_classifier_cfg(name)
    model = MODELS.build(cfg.model)
    model.init_weights()
    optim = OptimWrapper(torch.optim.Adam(model.parameters(), lr=1e-3))
    data = dict(
        inputs=[
            torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
            for _ in range(4)
        ],
        data_samples=[DataSample().set_gt_label(i) for i in range(4)])
    weights = [p.detach().clone() for p in model.backbone.parameters()]
    log = model.train_step(data, optim)
    assert torch.isfinite(log['loss'])
    changed = [
        not torch.equal(w, p)
        for w, p in zip(weights, model.backbone.parameters())
    ]
    assert sum(changed) > 0.9 * len(changed)
    model.eval()
    with torch.no_grad():
        preds = model.val_step(data)
    assert preds[0].pred_score.shape == (10, )


@pytest.fixture(scope='module')
def train_tool():
    return train_api


@pytest.mark.parametrize('base', [
    'configs/cvt/cvt-13_1xb128-adam-300e_animals10.py',
    'configs/crossvit/crossvit-s_1xb128-adam-300e_animals10.py',
    'configs/mobile_former/mobile-former-508m_1xb128-adam-300e_animals10.py',
])
@pytest.mark.slow  # end to end (pytest.ini)
def test_train_tool_runs_an_epoch(base, tmp_path, toy_animals10, train_tool):
    """tools/train.py (in this process: its main()) on generated data."""
    backbone, head = TINY[family(osp.relpath(base, 'configs'))]
    backbone = dict(backbone, arch=dict(backbone['arch'], _delete_=True))
    config = write_tiny_config(
        tmp_path,
        base,
        toy_animals10,
        epochs=1,
        extra=f'model = dict(backbone={backbone!r}, head={head!r})')
    work_dir = tmp_path / 'work'
    runner = train_tool.train([config, '--work-dir', str(work_dir)])
    assert runner.epoch == 1
    assert osp.exists(work_dir / 'epoch_1.pth')
    scalars = glob.glob(str(work_dir / '*' / 'vis_data' / 'scalars.json'))
    with open(scalars[0]) as f:
        assert 'accuracy/top1' in f.read()
