# The README demo's baseline: mmpretrain's ViT (DeiT-tiny size, patch 16)
# with the same recipe, data and head as
# configs/ci2p_vit/ci2p-vit-t_1xb32-adam-12e_toy-animals10-128px.py.
_base_ = [
    '../_base_/models/vit_b16.py',
    '../_base_/datasets/toy_animals10_bs32_128.py',
    '../_base_/schedules/adam_1e-4_300e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(arch='deit-t', img_size=128), head=dict(in_channels=192))

train_cfg = dict(max_epochs=12)
default_hooks = dict(logger=dict(interval=5))
