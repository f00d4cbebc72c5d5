"""CI2P-MM: CI2P-ViT (Compress Image to Patches) for OpenMMLab.

Importing this package registers its models, datasets and hooks into
mmpretrain's registries (configs use ``custom_imports``) and its model
index (``model-index.yml``) with mmpretrain's ``ModelHub``, so
``mmpretrain.list_models('*ci2p*')`` and ``get_model(NAME)`` find them.
"""
from .utils.known_warnings import known_warnings_silenced
from .version import __version__

# mmcv-lite's missing ops, CompressAI's torch.jit.script calls and
# mmengine's pkg_resources import warn on these imports; nothing else is
# silenced (see ci2p_mm/utils/known_warnings.py).
with known_warnings_silenced():
    from . import datasets, engine, latents, models  # noqa: F401  (registries)
    from .model_index import config_path, package_root, register_models

    register_models()

__all__ = ['__version__', 'config_path', 'package_root', 'register_models']
