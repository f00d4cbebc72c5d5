# RetinaNet with CI2P-ViT^ds (DualScaleViT) + FPN on COCO, mmdet 3.x.
#
# The backbone's two stages give maps at stride 16 (192 ch, layer 5) and
# stride 32 (768 ch, layer 11); the frozen codec encoder adds its stride-8 map
# (128 ch, 'enc_s8'). FPN turns [128, 192, 768] at strides 8/16/32 into
# P3-P7 (strides 8-128, 256 ch), as RetinaNet's anchors expect.
#
# Needs the downstream extras: bash tools/misc/install_mmcv_full.sh
# Pretrained backbone: point `pretrained` to a classification checkpoint
# trained with configs/ci2p_vit_ds_*.py (mmengine's format, keys
# `backbone.*`), e.g. --cfg-options
# model.backbone.init_cfg.checkpoint=work_dirs/ci2p_vit_ds_imagenet/epoch_300.pth
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']

custom_imports = dict(
    imports=['ci2p_mm', 'ci2p_mm.downstream'], allow_failed_imports=False)

pretrained = 'checkpoints/ci2p_vit_ds_imagenet.pth'  # classification ckpt

model = dict(
    # The codec wants unnormalised RGB in [0, 1]: x / 255, BGR -> RGB.
    # H and W padded to multiples of 32 (the backbone's coarsest stride).
    data_preprocessor=dict(
        mean=[0., 0., 0.],
        std=[255., 255., 255.],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(
        _delete_=True,
        type='DualScaleViT',  # or 'mmpretrain.DualScaleViT'
        arch='b',
        img_size=256,  # the pretraining size: position embeddings resize
        patch_cfg=dict(
            codec='bmshj2018-factorized',
            quality=5,
            pretrained=True,
            frozen=True),
        out_type='featmap',
        out_indices=('enc_s8', 5, 11),
        drop_path_rate=0.1,
        frozen_stages=-1,
        norm_eval=True,  # BN of CnnReshape in eval mode (2 images per GPU)
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(
        type='FPN',
        in_channels=[128, 192, 768],
        out_channels=256,
        start_level=0,
        add_extra_convs='on_input',
        num_outs=5))

# ViT fine-tuning: AdamW, no weight decay on norms, biases and the position
# embedding; gradient clipping.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        bias_decay_mult=0.,
        custom_keys={'pos_embed': dict(decay_mult=0.)}),
    clip_grad=dict(max_norm=1.0, norm_type=2))
