# CrossViT-9† on ImageNet-1k with the recipe of crossvit-s_32xb128_in1k.py.
# The dagger variant: a three-conv patch embedding instead of one strided
# conv per branch.
# 8.8M params, 1.99 GFLOPs at 240 (paper: 8.8M, 2.0G).
_base_ = ['./crossvit-s_32xb128_in1k.py']

model = dict(backbone=dict(arch='9-dagger'), head=dict(in_channels=128 + 256))
