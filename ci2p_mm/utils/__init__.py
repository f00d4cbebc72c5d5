from .curves import load_curves
from .model_config import CI2P_BACKBONES, load_model_config

__all__ = ['load_curves', 'CI2P_BACKBONES', 'load_model_config']
