"""CI2P-MM: CI2P-ViT (Compress Image to Patches) for OpenMMLab.

Importing this package registers its models, datasets and hooks into
mmpretrain's registries (configs use ``custom_imports``).
"""
from .version import __version__
from . import datasets, engine, models  # noqa: F401  (registers into mmpretrain)

__all__ = ['__version__']
