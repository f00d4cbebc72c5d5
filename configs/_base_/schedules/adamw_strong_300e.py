# The authors' "strong" recipe (never the default): AdamW, weight decay
# 0.05, 5 warm-up epochs then cosine decay, for 300 epochs. Its lr is set
# for a total batch of 1024 and scales linearly with the actual total batch
# under tools/train.py --auto-scale-lr (auto_scale_lr below), as
# mmpretrain's ImageNet recipes do. Fused AdamW:
# --cfg-options optim_wrapper.optimizer.fused=True.
optim_wrapper = dict(
    optimizer=dict(
        type='AdamW',
        lr=5e-4 * 1024 / 512,
        betas=(0.9, 0.999),
        weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={'.pos_embed': dict(decay_mult=0.0)}),
    clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        end=5,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=295,
        eta_min=1e-5,
        by_epoch=True,
        begin=5,
        end=300),
]

train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
val_cfg = dict()
test_cfg = dict()

auto_scale_lr = dict(base_batch_size=1024)
