# CrossViT-18 on ImageNet-1k with the recipe of crossvit-s_32xb128_in1k.py.
# 43.3M params, 9.05 GFLOPs at 240 (paper: 43.3M, 9.0G).
_base_ = ['./crossvit-s_32xb128_in1k.py']

model = dict(backbone=dict(arch='18'), head=dict(in_channels=224 + 448))
