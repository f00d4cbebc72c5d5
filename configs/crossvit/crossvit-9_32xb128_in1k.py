# CrossViT-9 on ImageNet-1k with the recipe of crossvit-s_32xb128_in1k.py.
# 8.6M params, 1.85 GFLOPs at 240 (paper: 8.6M, 1.8G).
_base_ = ['./crossvit-s_32xb128_in1k.py']

model = dict(backbone=dict(arch='9'), head=dict(in_channels=128 + 256))
