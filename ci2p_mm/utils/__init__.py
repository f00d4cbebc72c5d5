from .flops import model_flops, sdpa_flop_jit

__all__ = ['model_flops', 'sdpa_flop_jit']
from .curves import load_curves  # noqa: E402

__all__ += ['load_curves']
from .model_config import CI2P_BACKBONES, load_model_config  # noqa: E402

__all__ += ['CI2P_BACKBONES', 'load_model_config']
