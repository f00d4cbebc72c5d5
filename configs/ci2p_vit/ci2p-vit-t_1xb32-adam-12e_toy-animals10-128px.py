# The README demo's CI2P-ViT: a DeiT-tiny-sized ViT (192 wide, 12 layers)
# on the toy Animals-10 at 128x128, for a few epochs on a CPU. Inherits the
# full recipe and changes only sizes; tools/run_demo.py sets the data root
# and the codec file.
_base_ = [
    '../_base_/models/ci2p_vit_b.py',
    '../_base_/datasets/toy_animals10_bs32_128.py',
    '../_base_/schedules/adam_1e-4_300e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(arch='deit-t', img_size=128), head=dict(in_channels=192))

train_cfg = dict(max_epochs=12)
default_hooks = dict(logger=dict(interval=5))
# A short run: recompute BatchNorm statistics before each validation (see
# docs/architecture.md, "Short runs and small data sets"). Training is
# unchanged; without it, validation sat at chance for 7 of the 12 epochs.
custom_hooks = _base_.custom_hooks + [
    dict(type='PreciseBNHook', num_samples=128, priority='ABOVE_NORMAL')
]
