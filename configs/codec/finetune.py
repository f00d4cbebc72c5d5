# tools/train_codec.py --finetune (CompressAI's published weights) or
# --init PATH (a local codec): CompressAI's recipe from those weights.
_base_ = ['./compressai.py']

model = dict(pretrained=True)
