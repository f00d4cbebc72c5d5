# UPerNet with CI2P-ViT^ds (DualScaleViT) on ADE20K (150 classes), mmseg 1.x,
# following mmseg's UPerNet + ViT recipe (8 GPUs x 2 images, 160k
# iterations, 512x512 crops, AdamW, slide inference).
#
# Pyramid: the frozen codec encoder's maps at strides 4 and 8 ('enc_s4',
# 'enc_s8': 128 ch), ViT stage 1 at stride 16 (layer 5: 192 ch) and stage 2
# at stride 32 (layer 11: 768 ch). Auxiliary FCN head on stage 1.
#
# Needs the downstream extras: bash tools/misc/install_mmcv_full.sh
# Data: mmseg's ADE20K layout (docs/segmentation.md). Pretrained backbone:
# a classification checkpoint from configs/ci2p_vit_ds_*.py.
_base_ = [
    'mmseg::_base_/models/upernet_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]

custom_imports = dict(
    imports=['ci2p_mm', 'ci2p_mm.downstream'], allow_failed_imports=False)

pretrained = 'checkpoints/ci2p_vit_ds_imagenet.pth'  # classification ckpt
crop_size = (512, 512)
model = dict(
    # The codec wants unnormalised RGB in [0, 1]: x / 255, BGR -> RGB;
    # crops are multiples of 32 (the backbone's coarsest stride).
    data_preprocessor=dict(
        mean=[0., 0., 0.],
        std=[255., 255., 255.],
        bgr_to_rgb=True,
        size=crop_size),
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='DualScaleViT',  # or 'mmpretrain.DualScaleViT'
        arch='b',
        img_size=crop_size,
        patch_cfg=dict(
            codec='bmshj2018-factorized', quality=5, pretrained=True,
            frozen=True),
        out_type='featmap',
        out_indices=('enc_s4', 'enc_s8', 5, 11),
        drop_path_rate=0.1,
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    decode_head=dict(
        in_channels=[128, 128, 192, 768], channels=512, num_classes=150),
    auxiliary_head=dict(in_channels=192, in_index=2, num_classes=150),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

# ViT fine-tuning (mmseg's UPerNet-ViT recipe): AdamW 6e-5, no weight decay
# on norms, biases and the position embedding; warm-up then poly decay.
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
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
         end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=1500,
         end=160000),
]
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
