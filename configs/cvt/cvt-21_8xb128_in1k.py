# CvT-21 on ImageNet-1k, the authors' cvt-21-224x224.yaml: as CvT-13 but
# 8 x 128 images, lr 1.25e-4, weight decay 0.1.
# 31.6M params, 7.21 GFLOPs at 224 (paper: 32M, 7.1G).
_base_ = ['./cvt-13_8xb256_in1k.py']

model = dict(backbone=dict(arch='21'))
train_dataloader = dict(batch_size=128)
optim_wrapper = dict(optimizer=dict(lr=1.25e-4, weight_decay=0.1))
auto_scale_lr = dict(base_batch_size=1024)
