"""Making CI2P backbones and necks buildable from mmdet, mmpose and mmseg
configs.

Everything is registered into mmpretrain's ``MODELS`` when ``ci2p_mm`` is
imported, so any OpenMMLab config can already build it across scopes:
``backbone=dict(type='mmpretrain.DualScaleViT', ...)``. For convenience the
same classes are also registered into mmdet's, mmpose's and mmseg's
``MODELS`` when those packages are installed, so that their configs can say
``type='DualScaleViT'`` (and mmseg's ``type='SegNetr'``). Without them (the
classification install) nothing happens.
"""
import importlib
import importlib.util
import warnings
from typing import Dict, List

from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS

#: What downstream configs need, by name in mmpretrain's registry.
DOWNSTREAM_MODULES = (
    'CI2PViT',
    'DualScaleViT',
    'CI2PPatchEmbed',
    'CI2PEncoder',
    'CI2PSimplePyramid',
    # the multi-scale comparison hybrids
    'CvT',
    'MobileFormer')

#: Downstream packages and their model registries.
DOWNSTREAM_REGISTRIES = {
    'mmdet': 'mmdet.registry',
    'mmpose': 'mmpose.registry',
    'mmseg': 'mmseg.registry',
}

#: Modules only one downstream package needs, besides DOWNSTREAM_MODULES.
PACKAGE_MODULES = {'mmseg': ('SegNetr', )}


def register_into(registry, names=DOWNSTREAM_MODULES) -> List[str]:
    """Register mmpretrain's ``names`` into ``registry``; return those added.

    A name the registry already maps to the same class is skipped; one it
    maps to another class is an error (it would silently change configs).
    """
    added = []
    for name in names:
        cls = MMPRETRAIN_MODELS.get(name)
        if cls is None:
            raise KeyError(f'{name} is not registered in mmpretrain; import '
                           f'ci2p_mm.models first.')
        existing = registry.module_dict.get(name)
        if existing is cls:
            continue
        if existing is not None:
            raise KeyError(
                f'{registry.scope}.{name} is already registered as '
                f'{existing.__module__}.{existing.__qualname__}; use '
                f"type='mmpretrain.{name}' in the config instead.")
        registry.register_module(name=name, module=cls)
        added.append(name)
    return added


def register_downstream() -> Dict[str, List[str]]:
    """Register CI2P modules into every installed downstream package.

    Returns ``{package: [names registered]}``. A package that is installed
    but fails to import (e.g. an mmcv version it refuses) gives a warning
    naming the error, not an exception: the classification side of CI2P-MM
    must keep working.
    """
    done = {}
    for package, registry_module in DOWNSTREAM_REGISTRIES.items():
        if importlib.util.find_spec(package) is None:
            continue
        try:
            registry = importlib.import_module(registry_module).MODELS
        except Exception as e:  # noqa: BLE001  installed but broken
            warnings.warn(
                f'{package} is installed but {registry_module} does not '
                f'import ({type(e).__name__}: {e}); CI2P modules are not '
                f'registered into it. See tools/misc/install_mmcv_full.sh.')
            continue
        done[package] = register_into(
            registry, DOWNSTREAM_MODULES + PACKAGE_MODULES.get(package, ()))
    return done
