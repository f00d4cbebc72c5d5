# CI2P-ViT^ds on Animals-10 from stored codec latents (see
# configs/ci2p_vit/ci2p-vit-b_1xb128-adam-300e_animals10-latents.py; alias:
# configs/ci2p_vit_ds_animals10_latents.py). It reads the same store as
# CI2P-ViT: both use the same frozen codec at 256x256.
_base_ = [
    '../_base_/models/ci2p_vit_ds.py',
    '../_base_/datasets/animals10_latents_bs128.py',
    '../_base_/schedules/adam_1e-4_300e.py',
    '../_base_/default_runtime.py',
]

model = dict(backbone=dict(patch_cfg=dict(latent_input=True)))
data_preprocessor = dict(
    _delete_=True, type='LatentDataPreprocessor', num_classes=10)
custom_hooks = [
    dict(type='LatentStoreCheckHook'),
    dict(type='NonFiniteLossHook'),
    dict(type='SkippedImagesHook'),
]
