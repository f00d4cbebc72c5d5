# CrossViT-B on ImageNet-1k with the recipe of crossvit-s_32xb128_in1k.py.
# 105.0M params, 21.22 GFLOPs at 240 (paper: 104.7M, 21.2G).
_base_ = ['./crossvit-s_32xb128_in1k.py']

model = dict(backbone=dict(arch='b'), head=dict(in_channels=384 + 768))
