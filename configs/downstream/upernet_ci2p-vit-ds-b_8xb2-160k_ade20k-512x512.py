# UPerNet with CI2P-ViT^ds (DualScaleViT) on ADE20K (150 classes), mmseg 1.x,
# following mmseg's UPerNet + ViT recipe (8 GPUs x 2 images, 160k
# iterations, 512x512 crops, AdamW 6e-5, slide inference). Model:
# configs/_base_/models/upernet_ci2p_vit_ds.py (codec maps at strides 4/8 +
# both ViT scales).
#
# Needs the downstream extras: bash tools/misc/install_mmcv_full.sh
# Data: mmseg's ADE20K layout (docs/segmentation.md). Pretrained backbone:
# a classification checkpoint from configs/ci2p_vit_ds_*.py.
_base_ = [
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
    '../_base_/models/upernet_ci2p_vit_ds.py',
]

custom_imports = dict(
    imports=['ci2p_mm', 'ci2p_mm.downstream'], allow_failed_imports=False)

crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(img_size=crop_size),
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(num_classes=150),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

# ViT fine-tuning: no weight decay on norms, biases and the position
# embedding; gradient clipping.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        bias_decay_mult=0.,
        custom_keys={'pos_embed': dict(decay_mult=0.)}),
    clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(
        type='PolyLR',
        power=1.0,
        eta_min=0.0,
        by_epoch=False,
        begin=1500,
        end=160000),
]
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
