# The README demo's CI2P-ViT trained from stored codec latents: the model,
# recipe and data of ci2p-vit-t_1xb32-adam-12e_toy-animals10-128px.py, with
# the frozen encoder run once by tools/dataset_converters/encode_latents.py
# instead of every epoch. Its checkpoints are evaluated with the image config.
_base_ = ['./ci2p-vit-b_1xb128-adam-300e_animals10-latents.py']

model = dict(
    backbone=dict(arch='deit-t', img_size=128), head=dict(in_channels=192))

train_pipeline = [
    dict(type='SafeLoadImageFromFile'),
    dict(type='Resize', scale=(128, 128)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='SafeLoadImageFromFile'),
    dict(type='Resize', scale=(128, 128)),
    dict(type='PackInputs'),
]
latent_store = 'latents/bmshj2018-factorized-q5-128'
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    dataset=dict(
        store=latent_store,
        source=dict(
            data_root='demo_runs/toy_animals10', pipeline=train_pipeline)))
val_dataloader = dict(
    batch_size=32,
    num_workers=0,
    dataset=dict(
        store=latent_store,
        source=dict(
            data_root='demo_runs/toy_animals10', pipeline=test_pipeline)))
test_dataloader = val_dataloader

train_cfg = dict(max_epochs=12)
default_hooks = dict(logger=dict(interval=5))
# As the image config: BatchNorm statistics recomputed before validation.
custom_hooks = _base_.custom_hooks + [
    dict(type='PreciseBNHook', num_samples=128, priority='ABOVE_NORMAL')
]
