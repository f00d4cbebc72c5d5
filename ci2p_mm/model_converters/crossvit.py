"""CrossViT weights from IBM's code and from timm, to mmpretrain.

    python tools/model_converters/crossvit_to_mmpretrain.py \\
        crossvit_9_dagger_224.pth crossvit-9-dagger_in1k.pth

Two source formats, told apart by their keys:

* ``ibm``: github.com/IBM/CrossViT (``models/crossvit.py``); their released
  files are bare state dicts, their training script saves
  ``{'model': ..., 'args': ...}``. Class tokens and position embeddings
  are ``nn.ParameterList`` entries (``cls_token.0``, ``pos_embed.1``);
* ``timm``: ``timm.models.crossvit.CrossVit`` (``cls_token_0``,
  ``pos_embed_1``).

The backbone is timm's model, so its keys are timm's under
``backbone.model.``. Both formats have one classifier per branch whose
logits are averaged; mmpretrain's ``LinearClsHead`` on the concatenated
class tokens computes the same with the weights halved and concatenated
and the two biases averaged. IBM's 384 px models (``*_384``: position
embeddings for 408 / 384 px) have no config here and are refused.
"""
from typing import Tuple

import torch

from .common import ConversionError, Family, StateDict, rename, require_format

#: format -> a key that only its files have
FORMATS = {'ibm': 'cls_token.0', 'timm': 'cls_token_0'}
RULES = [
    (r'(cls_token|pos_embed)[._](\d+)', r'backbone.model.\1_\2'),
    (r'head\.(\d+)\.(\w+)', r'head.\1.\2'),  # merged below
    (r'(.+)', r'backbone.model.\1'),
]


def merge_branch_heads(state_dict: StateDict) -> StateDict:
    """``head.0`` and ``head.1`` (logits averaged) -> one ``head.fc`` on
    the concatenated class tokens (small branch first)."""
    heads = sorted(
        {k.split('.')[1]
         for k in state_dict if k.startswith('head.')})
    if heads != ['0', '1']:
        raise ConversionError(
            f'Expected two classifiers head.0 and head.1 (one per branch); '
            f'found head.{", head.".join(heads) or " none"}.')
    out = {k: v for k, v in state_dict.items() if not k.startswith('head.')}
    weights = [state_dict[f'head.{i}.weight'] for i in heads]
    biases = [state_dict[f'head.{i}.bias'] for i in heads]
    if weights[0].shape[0] != weights[1].shape[0]:
        raise ConversionError(
            f'The two classifiers have {weights[0].shape[0]} and '
            f'{weights[1].shape[0]} classes.')
    out['head.fc.weight'] = torch.cat(weights, dim=1) / 2
    out['head.fc.bias'] = (biases[0] + biases[1]) / 2
    return out


def convert(state_dict: StateDict) -> Tuple[StateDict, str]:
    """IBM's or timm's CrossViT state dict -> mmpretrain keys."""
    source = require_format(state_dict, 'CrossViT', FORMATS)
    return merge_branch_heads(rename(state_dict, RULES)), source


CROSSVIT = Family(
    name='CrossViT',
    config_dir='crossvit',
    convert=convert,
    formats="IBM's released checkpoints or timm's CrossVit state dicts")

#: ``tools/model_converters/crossvit_to_mmpretrain.py``
main = CROSSVIT.main
