# CrossViT-18† on ImageNet-1k with the recipe of crossvit-s_32xb128_in1k.py.
# The dagger variant: a three-conv patch embedding instead of one strided
# conv per branch.
# 44.3M params, 9.50 GFLOPs at 240 (paper: 44.3M, 9.5G).
_base_ = ['./crossvit-s_32xb128_in1k.py']

model = dict(backbone=dict(arch='18-dagger'), head=dict(in_channels=224 + 448))
