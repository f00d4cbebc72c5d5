"""Converters of the authors' checkpoints to mmpretrain checkpoints.

Each family module has ``main(argv)`` (the logic of
``tools/model_converters/<family>_to_mmpretrain.py``) and a ``convert``
function; :mod:`.common` holds what they share.
"""
from .common import ConversionError, convert_checkpoint

__all__ = ['ConversionError', 'convert_checkpoint']
