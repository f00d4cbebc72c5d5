from .ci2p_vit import CI2PViT
from .dual_scale_vit import DualScaleViT

__all__ = ['CI2PViT', 'DualScaleViT']
