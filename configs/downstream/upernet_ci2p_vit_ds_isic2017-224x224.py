# Alias of configs/downstream/upernet_ci2p-vit-ds-b_1xb8-20k_isic2017-224x224.py
# (OpenMMLab naming), kept for this documented path.
_base_ = ['./upernet_ci2p-vit-ds-b_1xb8-20k_isic2017-224x224.py']
