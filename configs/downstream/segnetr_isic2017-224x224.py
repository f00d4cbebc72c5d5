# Alias of configs/downstream/segnetr_1xb8-20k_isic2017-224x224.py
# (OpenMMLab naming), kept for this documented path.
_base_ = ['./segnetr_1xb8-20k_isic2017-224x224.py']
