# CI2P-ViT-B on Animals-10 from stored codec latents: the model and recipe of
# ci2p-vit-b_1xb128-adam-300e_animals10.py, with the frozen encoder run once
# instead of every epoch (alias: configs/ci2p_vit_animals10_latents.py).
# First:
#   python tools/dataset_converters/encode_latents.py configs/ci2p_vit_animals10.py
# then:
#   python tools/train.py configs/ci2p_vit_animals10_latents.py
# The checkpoint is the ordinary CI2P-ViT (codec weights included):
#   python tools/test.py configs/ci2p_vit_animals10.py CHECKPOINT
_base_ = [
    '../_base_/models/ci2p_vit_b.py',
    '../_base_/datasets/animals10_latents_bs128.py',
    '../_base_/schedules/adam_1e-4_300e.py',
    '../_base_/default_runtime.py',
]

# The backbone skips its frozen encoder (weights kept) and takes latents;
# batches are stacked latents; the hook refuses a store written by another
# codec, quality, encoder weights or image size.
model = dict(backbone=dict(patch_cfg=dict(latent_input=True)))
data_preprocessor = dict(
    _delete_=True, type='LatentDataPreprocessor', num_classes=10)
custom_hooks = [
    dict(type='LatentStoreCheckHook'),
    dict(type='NonFiniteLossHook'),
    dict(type='SkippedImagesHook'),
]
