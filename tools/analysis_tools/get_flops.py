"""FLOPs (one multiply-add = one FLOP, attention matmuls included) and
parameters of the models that configs build.

    python tools/analysis_tools/get_flops.py CONFIG --shape 256
    python tools/analysis_tools/get_flops.py configs/vit_b16_animals10.py \
        configs/ci2p_vit_animals10.py configs/ci2p_vit_ds_animals10.py \
        --sizes 256 384 512 --no-pretrained

With several configs or sizes it prints a table with each model's FLOPs
reduction against the first config at the same size.

The logic lives in ``ci2p_mm/analysis/get_flops.py`` (``-h`` for the
options).
"""
from ci2p_mm.analysis.get_flops import main
from ci2p_mm.utils.cli import run

if __name__ == '__main__':
    run(main)
