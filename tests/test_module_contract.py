"""Every module ci2p_mm registers keeps ``nn.Module``'s mode contract.

``model = Backbone(...).eval()`` and ``model.train()`` chains rely on
``train()`` / ``eval()`` returning the module itself; ``train(False)`` must
put every submodule in eval mode, and ``train()`` must re-apply whatever the
backbone keeps frozen (``frozen_stages``, ``norm_eval``, the frozen codec),
because ``nn.Module.train()`` would otherwise set it training again.
mmdet, mmpose and mmseg get the very same classes (``ci2p_mm.downstream``;
tests/downstream/test_simple_pyramid.py checks that), so this covers them.
"""
import copy

import pytest
import torch.nn as nn
from mmpretrain.registry import MODELS
from test_hybrids import TINY_CROSSVIT, TINY_CVT, TINY_MOBILE_FORMER
from torch.nn.modules.batchnorm import _BatchNorm

import ci2p_mm.codec.model  # noqa: F401  (registers RateDistortionCodec)
import ci2p_mm.models  # noqa: F401  (registers everything else)

NO_DOWNLOAD = dict(pretrained=False)

#: A small instance of every module ci2p_mm registers in mmpretrain.
SMALL = {
    'CI2PViT': dict(arch='deit-t', img_size=64, patch_cfg=NO_DOWNLOAD),
    'DualScaleViT': dict(arch='t', img_size=64, patch_cfg=NO_DOWNLOAD),
    'CvT': dict(arch=TINY_CVT),
    'CrossViT': dict(arch=TINY_CROSSVIT, img_size=48),
    'MobileFormer': dict(arch=TINY_MOBILE_FORMER),
    'SegNetr': dict(arch='t'),
    'CI2PEncoder': dict(NO_DOWNLOAD),
    'CI2PPatchEmbed': dict(NO_DOWNLOAD, embed_dims=32),
    'CI2PSimplePyramid': dict(in_channels=32),
    'CI2PDataPreprocessor': dict(),
    'LatentDataPreprocessor': dict(),
    'RateDistortionCodec': dict(quality=1),
}

#: Settings that freeze parts of a backbone during training.
FROZEN = {
    'CI2PViT': dict(frozen_stages=1, norm_eval=True),
    'DualScaleViT': dict(frozen_stages=1, norm_eval=True),
    'CvT': dict(frozen_stages=1, norm_eval=True),
    'CrossViT': dict(frozen_stages=1),
    'MobileFormer': dict(frozen_stages=1, norm_eval=True),
}


def registered_names():
    return sorted(name for name, cls in MODELS.module_dict.items()
                  if cls.__module__.startswith('ci2p_mm.'))


def build(name, **extra):
    return MODELS.build(dict(type=name, **SMALL[name], **extra))


def test_every_registered_module_is_covered():
    assert sorted(SMALL) == registered_names()
    assert all(issubclass(MODELS.get(n), nn.Module) for n in SMALL)


def frozen_modules(model):
    """Submodules with parameters, none of them trainable, and everything
    below them."""
    frozen = set()
    for module in model.modules():
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            frozen.update(module.modules())
    return frozen


def frozen_without_parameters(model):
    """Names of parameter-free leaves the backbone's ``_freeze_stages``
    puts in eval mode (e.g. the dropout after a frozen embedding)."""
    if not getattr(model, 'has_frozen_stages', lambda: False)():
        return set()
    reference = copy.deepcopy(model)
    nn.Module.train(reference)
    reference._freeze_stages()
    return {
        name
        for name, m in reference.named_modules()
        if not m.training and not list(m.children())
    }


def assert_training_as_configured(model):
    """After ``train()``, every leaf module (where the mode acts: dropout,
    BatchNorm, ...) is in eval mode if it is frozen (no trainable
    parameters in it or around it, frozen by ``_freeze_stages``, or a
    BatchNorm under ``norm_eval``) and training otherwise."""
    frozen = frozen_modules(model)
    frozen_names = frozen_without_parameters(model)
    norm_eval = getattr(model, 'norm_eval', False)
    for name, module in model.named_modules():
        if list(module.children()):
            continue
        keep_eval = (
            module in frozen or name in frozen_names
            or (norm_eval and isinstance(module, _BatchNorm)))
        assert module.training != keep_eval, (
            f'{type(model).__name__}.{name} ({type(module).__name__}) is '
            f"{'training' if module.training else 'in eval mode'} after "
            f'train()')


@pytest.mark.parametrize('name', sorted(SMALL))
def test_train_and_eval_return_the_module(name):
    model = build(name)
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    assert model.train() is model
    assert_training_as_configured(model)
    assert model.train(False) is model
    assert not any(m.training for m in model.modules())
    assert model.train(True) is model
    assert_training_as_configured(model)


@pytest.mark.parametrize('name', sorted(FROZEN))
def test_train_reapplies_frozen_stages(name):
    model = build(name, **FROZEN[name])
    frozen = frozen_modules(model)
    assert frozen and len(frozen) < len(list(model.modules()))
    for _ in range(2):  # eval -> train, twice: nothing thaws
        assert model.eval() is model
        assert model.train() is model
        assert frozen_modules(model) == frozen
        assert_training_as_configured(model)
        assert not any(m.training for m in frozen)
