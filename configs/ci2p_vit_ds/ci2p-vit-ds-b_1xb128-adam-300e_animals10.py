# CI2P-ViT^ds (DualScaleViT) on Animals-10 with the paper's recipe.
_base_ = [
    '../_base_/models/ci2p_vit_ds.py',
    '../_base_/datasets/animals10_bs128.py',
    '../_base_/schedules/adam_1e-4_300e.py',
    '../_base_/default_runtime.py',
]
