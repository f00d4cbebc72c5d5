# The README demo's CI2P-ViT: a DeiT-tiny-sized ViT (192 wide, 12 layers)
# on the toy Animals-10 at 128x128, for a few epochs on a CPU. Inherits the
# full recipe and changes only sizes; tools/run_demo.py sets the data root
# and the codec file.
_base_ = ['./ci2p-vit-b_1xb128-adam-300e_animals10.py']

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
