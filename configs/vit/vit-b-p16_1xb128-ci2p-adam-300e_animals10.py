# Baseline: mmpretrain's ViT-B/16 at 256x256, same recipe and head.
_base_ = [
    '../_base_/models/vit_b16.py',
    '../_base_/datasets/animals10_bs128.py',
    '../_base_/schedules/adam_1e-4_300e.py',
    '../_base_/default_runtime.py',
]
