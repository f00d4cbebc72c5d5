# tools/train_codec.py --quick: a small codec in a minute or two on a free
# 2-core CPU (docs/codec.md says what it reaches).
_base_ = ['./bmshj2018-factorized_1xb16-adam-100e_images-256px.py']

codec_recipe = dict(
    patch_size=64,
    batch_size=8,
    iters=400,
    lr=1e-3,
    aux_lr=1e-2,
    lr_schedule='cosine',
    warmup_iters=30,
    data_init=True,
    val_interval=100,
    num_workers=0)
