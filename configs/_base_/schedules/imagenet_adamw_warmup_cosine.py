# The DeiT-style ImageNet schedule the hybrids' papers train with (CvT,
# CrossViT, Mobile-Former): AdamW without weight decay on norms, biases and
# flat parameters, a linear warm-up, then cosine decay to 1e-5, stepped per
# iteration. Each config sets its paper's lr, weight decay, warm-up and
# length (param_scheduler is a list: a config that changes it restates it).
#
# Learning rate and batch size: the lr below is for auto_scale_lr's
# base_batch_size; `tools/train.py --auto-scale-lr` scales it linearly to
# the batch actually used (GPUs x batch per GPU), as mmpretrain does.
optim_wrapper = dict(
    optimizer=dict(
        type='AdamW', lr=1e-3, weight_decay=0.05, betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        end=5,
        convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=5)
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=1024)
