# Mobile-Former-151M on ImageNet-1k with the recipe of
# mobile-former-508m_8xb128_in1k.py (the authors publish that command only).
# 7.6M params, 152 MFLOPs at 224 (paper: 7.6M, 151M).
_base_ = ['./mobile-former-508m_8xb128_in1k.py']

model = dict(
    backbone=dict(arch='151m'),
    head=dict(in_channels=128 * 6 + 192, mid_channels=[1280]))
