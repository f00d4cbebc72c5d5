# Alias of configs/downstream/td-hm_ci2p-vit-ds-b_8xb64-210e_coco-256x192.py
# (OpenMMLab naming), kept for this documented path.
_base_ = ['./td-hm_ci2p-vit-ds-b_8xb64-210e_coco-256x192.py']
