"""This project's models in mmpretrain's model index (``ModelHub``).

``model-index.yml`` (repository root) imports one ``metafile.yml`` per
config folder, in mmpretrain's format; a new folder is one more line there.
``import ci2p_mm`` registers them, so mmpretrain's own APIs find them by
name::

    import ci2p_mm
    from mmpretrain import get_model, list_models, inference_model
    list_models('*ci2p*')
    model = get_model('ci2p-vit-b_1xb128-adam-300e_animals10',
                      pretrained='work_dirs/.../epoch_300.pth')

Configs and the index ship with the package: in a source checkout they are
read from the repository, in an installed package from ``ci2p_mm/.mim/``
(copied there by ``setup.py`` at build time, as OpenMMLab packages do).
"""
import os.path as osp
from typing import Optional

from mmpretrain.apis import ModelHub

from .utils.package_files import INDEX_FILE, package_root

_registered: Optional[str] = None


def config_path(name: str) -> str:
    """The absolute path of a config, given a model name from the index
    (``'ci2p-vit-b_1xb128-adam-300e_animals10'``) or a path relative to
    ``configs/`` (``'ci2p_vit_animals10.py'``)."""
    configs = osp.join(package_root(), 'configs')
    if name.endswith('.py'):
        path = osp.join(configs, name)
        if osp.isfile(path):
            return path
        raise FileNotFoundError(f'No config {name} in {configs}.')
    metainfo = _model_metainfo(name)
    return metainfo.config


def _model_metainfo(name: str):
    register_models()
    if not ModelHub.has(name.lower()):
        raise ValueError(
            f'No model {name!r} in {osp.join(package_root(), INDEX_FILE)}; '
            f'mmpretrain.list_models("*ci2p*") lists the names.')
    return ModelHub._models_dict[name.lower()]


def register_models() -> str:
    """Register ``model-index.yml`` with mmpretrain's ``ModelHub`` (once);
    return its path."""
    global _registered
    if _registered is None:
        root = package_root()
        index = osp.join(root, INDEX_FILE)
        ModelHub.register_model_index(index, config_prefix=root)
        _registered = index
    return _registered
