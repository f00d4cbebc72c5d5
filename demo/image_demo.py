"""Classify one image with a CI2P checkpoint (mmpretrain's
demo/image_demo.py, with the checkpoint as an argument).

    python demo/image_demo.py cat.jpg configs/ci2p_vit_animals10.py \
        work_dirs/ci2p_vit_animals10/epoch_300.pth --out cat_pred.png

MODEL is a config file or a model name (``mmpretrain.list_models('*ci2p*')``).
The checkpoint must fit the model exactly (keys, shapes, codec), as in
tools/test.py; the image must be a photo format (JPEG, PNG, BMP, WebP,
TIFF, GIF, PPM) in a regular file. The logic is ``ci2p_mm/inference.py``.
"""
from ci2p_mm.inference import main
from ci2p_mm.utils.cli import run

if __name__ == '__main__':
    run(main)
