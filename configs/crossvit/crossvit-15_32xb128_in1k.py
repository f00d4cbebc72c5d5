# CrossViT-15 on ImageNet-1k with the recipe of crossvit-s_32xb128_in1k.py.
# 27.5M params, 5.81 GFLOPs at 240 (paper: 27.4M, 5.8G).
_base_ = ['./crossvit-s_32xb128_in1k.py']

model = dict(backbone=dict(arch='15'), head=dict(in_channels=192 + 384))
