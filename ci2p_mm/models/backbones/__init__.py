from .ci2p_vit import CI2PViT
from .crossvit import CrossViT
from .cvt import CvT
from .dual_scale_vit import DualScaleViT
from .mobile_former import MobileFormer
from .segnetr import SegNetr

__all__ = [
    'CI2PViT', 'DualScaleViT', 'CvT', 'CrossViT', 'MobileFormer', 'SegNetr'
]
