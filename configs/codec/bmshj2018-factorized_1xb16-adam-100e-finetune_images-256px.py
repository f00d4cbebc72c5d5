# tools/train_codec.py --finetune (CompressAI's published weights) or
# --init PATH (a local codec): CompressAI's recipe from those weights.
_base_ = ['./bmshj2018-factorized_1xb16-adam-100e_images-256px.py']

model = dict(pretrained=True)
