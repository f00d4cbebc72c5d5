"""Publish a checkpoint (mmpretrain's tools/model_converters/publish_model.py).

    python tools/model_converters/publish_model.py \
        work_dirs/ci2p_vit_animals10/epoch_300.pth ci2p-vit-b_animals10.pth

Strips the training state, keeps the weights, the codec record, the config
(as data: ``name = literal`` lines, which mmengine's readers can execute
safely; --no-config leaves it out) and the class names, and names the file
with its date and hash (``ci2p-vit-b_animals10_20261130-1a2b3c4d.pth``).
The logic is ``ci2p_mm/engine/publish.py``.
"""
from ci2p_mm.engine.publish import main
from ci2p_mm.utils.cli import run

if __name__ == '__main__':
    run(main)
