# The paper's recipe: Adam, lr 1e-4, betas (0.9, 0.999), constant lr,
# 300 epochs from scratch.
optim_wrapper = dict(
    optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.999), weight_decay=0))
param_scheduler = []

train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# lr scales linearly when the total batch differs from 128
# (enable with tools/train.py --auto-scale-lr).
auto_scale_lr = dict(base_batch_size=128)
