# Alias of configs/downstream/retinanet_ci2p-vit-ds-b_fpn_1x_coco.py
# (OpenMMLab naming), kept for this documented path.
_base_ = ['./retinanet_ci2p-vit-ds-b_fpn_1x_coco.py']
