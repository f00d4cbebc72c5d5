from .curves import load_curves
from .known_warnings import known_warnings_silenced
from .model_config import (CI2P_BACKBONES, is_ci2p_backbone, load_model_config,
                           quiet_init_weights, read_config, set_patch_options)

__all__ = [
    'load_curves', 'CI2P_BACKBONES', 'is_ci2p_backbone', 'load_model_config',
    'quiet_init_weights', 'read_config', 'set_patch_options',
    'known_warnings_silenced'
]
