from .curves import load_curves
from .known_warnings import known_warnings_silenced
from .model_config import CI2P_BACKBONES, load_model_config

__all__ = ['load_curves', 'CI2P_BACKBONES', 'load_model_config',
           'known_warnings_silenced']
