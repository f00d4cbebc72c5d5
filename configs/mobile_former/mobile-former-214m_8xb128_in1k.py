# Mobile-Former-214M on ImageNet-1k with the recipe of
# mobile-former-508m_8xb128_in1k.py (the authors publish that command only).
# 9.4M params, 215 MFLOPs at 224 (paper: 9.4M, 214M).
_base_ = ['./mobile-former-508m_8xb128_in1k.py']

model = dict(
    backbone=dict(arch='214m'),
    head=dict(in_channels=160 * 6 + 192, mid_channels=[1600]))
