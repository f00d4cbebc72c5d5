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
import functools
import os.path as osp

from mmpretrain.apis import ModelHub

from .utils.package_files import INDEX_FILE, configs_root, package_root


def config_path(name: str) -> str:
    """The absolute path of a config, given a model name from the index
    (``'ci2p-vit-b_1xb128-adam-300e_animals10'``) or a path relative to
    ``configs/`` (``'ci2p_vit_animals10.py'``)."""
    if name.endswith('.py'):
        path = osp.join(configs_root(), name)
        if osp.isfile(path):
            return path
        raise FileNotFoundError(f'No config {name} in {configs_root()}.')
    if not ModelHub.has(name.lower()):
        raise ValueError(
            f'No model {name!r} in {osp.join(package_root(), INDEX_FILE)}; '
            f'mmpretrain.list_models("*ci2p*") lists the names.')
    # ModelHub.get would parse the config; its path is all we need.
    return ModelHub._models_dict[name.lower()].config


@functools.lru_cache(maxsize=None)  # once per process
def register_models() -> str:
    """Register ``model-index.yml`` with mmpretrain's ``ModelHub`` (once);
    return its path."""
    index = osp.join(package_root(), INDEX_FILE)
    ModelHub.register_model_index(index, config_prefix=package_root())
    return index
