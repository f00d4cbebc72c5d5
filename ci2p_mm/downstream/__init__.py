"""CI2P backbones in mmdet, mmpose and mmseg (detection, pose estimation,
segmentation).

Importing this module registers :class:`CI2PSimplePyramid` into mmpretrain's
``MODELS`` and, when mmdet / mmpose / mmseg are installed, registers
``CI2PViT``, ``DualScaleViT``, ``CI2PPatchEmbed``, ``CI2PEncoder`` and
``CI2PSimplePyramid`` into their ``MODELS`` registries too, and ``SegNetr``
into mmseg's. Downstream configs say::

    custom_imports = dict(imports=['ci2p_mm', 'ci2p_mm.downstream'],
                          allow_failed_imports=False)

See ``docs/downstream.md`` for channels and strides per ``out_indices``.
"""
from ci2p_mm import models  # noqa: F401  (registers the backbones first)
from ci2p_mm.models.necks import CI2PSimplePyramid
from .registry import DOWNSTREAM_MODULES, register_downstream, register_into

#: ``{'mmdet': [...], 'mmpose': [...], 'mmseg': [...]}``: what this import
#: registered where.
REGISTERED = register_downstream()

__all__ = [
    'CI2PSimplePyramid', 'register_downstream', 'register_into',
    'DOWNSTREAM_MODULES', 'REGISTERED'
]
