# tools/train_codec.py --quick with --finetune or --init: weights that
# already code images keep CompressAI's lr, no warmup, no re-init.
_base_ = ['./bmshj2018-factorized_1xb8-adam-400it-quick_images-64px.py']

codec_recipe = dict(lr=1e-4, warmup_iters=0, data_init=False)
model = dict(pretrained=True)
