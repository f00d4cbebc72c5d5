# CrossViT-15† on ImageNet-1k with the recipe of crossvit-s_32xb128_in1k.py.
# The dagger variant: a three-conv patch embedding instead of one strided
# conv per branch.
# 28.2M params, 6.13 GFLOPs at 240 (paper: 28.2M, 6.1G).
_base_ = ['./crossvit-s_32xb128_in1k.py']

model = dict(backbone=dict(arch='15-dagger'), head=dict(in_channels=192 + 384))
