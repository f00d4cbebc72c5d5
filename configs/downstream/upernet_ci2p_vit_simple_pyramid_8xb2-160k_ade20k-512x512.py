# Alias of configs/downstream/upernet_ci2p-vit-b_simple-pyramid_8xb2-160k_ade20k-512x512.py
# (OpenMMLab naming), kept for this documented path.
_base_ = ['./upernet_ci2p-vit-b_simple-pyramid_8xb2-160k_ade20k-512x512.py']
