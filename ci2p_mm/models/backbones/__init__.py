# Backbones registered into mmpretrain's MODELS. (The lead's CI2PViT and
# DualScaleViT join this file in main; this branch adds the other hybrids.)
from .crossvit import CrossViT
from .cvt import CvT
from .mobile_former import MobileFormer

__all__ = ['CvT', 'CrossViT', 'MobileFormer']
