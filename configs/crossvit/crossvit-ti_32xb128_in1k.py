# CrossViT-Ti on ImageNet-1k with the recipe of crossvit-s_32xb128_in1k.py.
# 7.0M params, 1.57 GFLOPs at 240 (paper: 7.0M, 1.6G).
_base_ = ['./crossvit-s_32xb128_in1k.py']

model = dict(backbone=dict(arch='ti'), head=dict(in_channels=96 + 192))
