# tools/train_codec.py's default preset: CompressAI's examples/train.py
# recipe. Options of tools/train_codec.py override `codec_recipe`.
_base_ = ['../_base_/codec_runtime.py']

codec_recipe = dict(
    patch_size=256,
    batch_size=16,
    epochs=100,
    iters=None,
    lr=1e-4,
    aux_lr=1e-3,
    lr_schedule='plateau',
    warmup_iters=0,
    data_init=False,
    val_interval=None,  # once per pass over the training images
    num_workers=4)  # at most the CPU count
