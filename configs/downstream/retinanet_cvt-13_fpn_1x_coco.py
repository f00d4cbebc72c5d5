# RetinaNet with CvT-13 + FPN on COCO, mmdet 3.x: the CvT comparison for
# retinanet_ci2p_vit_ds_fpn_1x_coco.py.
#
# CvT's stages give maps at strides 4, 8 and 16 (64, 192, 384 channels);
# it has no stride-32 stage. FPN takes strides 8 and 16 and adds P5-P7 by
# strided convs on its outputs, as RetinaNet's anchors (strides 8-128) need.
#
# Needs the downstream extras: bash tools/misc/install_mmcv_full.sh
# Pretrained backbone: a checkpoint of configs/cvt/cvt-13_8xb256_in1k.py
# (keys `backbone.*`), e.g. --cfg-options
# model.backbone.init_cfg.checkpoint=work_dirs/cvt-13_8xb256_in1k/epoch_300.pth
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']

custom_imports = dict(
    imports=['ci2p_mm', 'ci2p_mm.downstream'], allow_failed_imports=False)

pretrained = 'checkpoints/cvt-13_in1k.pth'  # classification ckpt

model = dict(
    # mean/std-normalised RGB (the base's), padded to multiples of 32.
    data_preprocessor=dict(pad_size_divisor=32),
    backbone=dict(
        _delete_=True,
        type='CvT',  # or 'mmpretrain.CvT'
        arch='13',
        out_type='featmap',
        out_indices=(1, 2),
        drop_path_rate=0.1,
        frozen_stages=-1,
        norm_eval=True,  # BN of the convolutional projections
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(
        type='FPN',
        in_channels=[192, 384],
        out_channels=256,
        start_level=0,
        add_extra_convs='on_output',
        num_outs=5))

# Transformer fine-tuning: AdamW, no weight decay on norms and biases,
# gradient clipping.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.),
    clip_grad=dict(max_norm=1.0, norm_type=2))
