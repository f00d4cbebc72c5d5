# The README demo's baseline: mmpretrain's ViT (DeiT-tiny size, patch 16)
# with the same recipe, data and head as configs/ci2p_vit/ci2p-vit-t_1xb32-adam-12e_toy-animals10-128px.py.
_base_ = ['./vit-b-p16_1xb128-ci2p-adam-300e_animals10.py']

model = dict(
    backbone=dict(arch='deit-t', img_size=128),
    head=dict(in_channels=192))

train_pipeline = [
    dict(type='LoadImageRGB'),
    dict(type='Resize', scale=(128, 128)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageRGB'),
    dict(type='Resize', scale=(128, 128)),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=32, num_workers=0,
    dataset=dict(data_root='demo_runs/toy_animals10', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32, num_workers=0,
    dataset=dict(data_root='demo_runs/toy_animals10', pipeline=test_pipeline))
test_dataloader = val_dataloader

train_cfg = dict(max_epochs=12)
default_hooks = dict(logger=dict(interval=5))
