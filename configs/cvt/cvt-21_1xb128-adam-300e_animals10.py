# CvT-21 on Animals-10 at 256x256, as cvt-13_1xb128-adam-300e_animals10.py.
_base_ = ['./cvt-13_1xb128-adam-300e_animals10.py']

model = dict(backbone=dict(arch='21'))
