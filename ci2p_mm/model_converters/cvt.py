"""CvT weights from Microsoft's code and from transformers, to mmpretrain.

    python tools/model_converters/cvt_to_mmpretrain.py \\
        CvT-13-224x224-IN-1k.pth cvt-13_in1k.pth

Two source formats, told apart by their keys:

* ``microsoft``: the released checkpoints of github.com/microsoft/CvT
  (``lib/models/cls_cvt.py``: ``stage0.patch_embed.proj.weight``,
  ``stage2.blocks.0.attn.conv_proj_q.conv.weight``, ``head.weight``, ...);
* ``transformers``: ``CvtForImageClassification`` state dicts (the
  ``microsoft/cvt-*`` files on the Hugging Face hub:
  ``cvt.encoder.stages.0.embedding.convolution_embeddings.projection.weight``,
  ..., ``classifier.weight``).

The tensors are the same in both (transformers converted Microsoft's
files); only names change, so no tensor is altered. The ``cvt-*`` configs
compute Microsoft's function (QuickGELU, attention scaled by
``1/sqrt(embed_dims)``); to reproduce transformers' logits instead, build
the backbone with ``act_cfg=dict(type='GELU')``.
"""
from typing import Tuple

from .common import Family, StateDict, rename, require_format

_BLOCK = r'(\d+)\.blocks\.(\d+)\.'
_HF_LAYER = r'cvt\.encoder\.stages\.(\d+)\.layers\.(\d+)\.'
_OURS_BLOCK = r'backbone.stages.\1.blocks.\2.'
_QKV = dict(q='q', k='k', v='v', query='q', key='k', value='v')

MICROSOFT_RULES = [
    (r'stage(\d+)\.patch_embed\.(proj|norm)\.(\w+)',
     r'backbone.stages.\1.embed.\2.\3'),
    (r'stage(\d+)\.cls_token', r'backbone.stages.\1.cls_token'),
    (r'stage' + _BLOCK + r'norm1\.(\w+)', _OURS_BLOCK + r'ln1.\3'),
    (r'stage' + _BLOCK + r'norm2\.(\w+)', _OURS_BLOCK + r'ln2.\3'),
    *[(r'stage' + _BLOCK + rf'attn\.conv_proj_{src}\.conv\.weight',
       _OURS_BLOCK + rf'attn.{dst}.depthwise.weight')
      for src, dst in _QKV.items() if len(src) == 1],
    *[(r'stage' + _BLOCK + rf'attn\.conv_proj_{src}\.bn\.(\w+)',
       _OURS_BLOCK + rf'attn.{dst}.bn.\3')
      for src, dst in _QKV.items() if len(src) == 1],
    *[(r'stage' + _BLOCK + rf'attn\.proj_{src}\.(\w+)',
       _OURS_BLOCK + rf'attn.{dst}.pointwise.\3')
      for src, dst in _QKV.items() if len(src) == 1],
    (r'stage' + _BLOCK + r'attn\.proj\.(\w+)', _OURS_BLOCK + r'attn.proj.\3'),
    (r'stage' + _BLOCK + r'mlp\.fc1\.(\w+)',
     _OURS_BLOCK + r'ffn.layers.0.0.\3'),
    (r'stage' + _BLOCK + r'mlp\.fc2\.(\w+)', _OURS_BLOCK + r'ffn.layers.1.\3'),
    (r'norm\.(\w+)', r'backbone.ln_out.\1'),
    (r'head\.(\w+)', r'head.fc.\1'),
]

_HF_ATTN = _HF_LAYER + r'attention\.attention\.'
TRANSFORMERS_RULES = [
    (r'cvt\.encoder\.stages\.(\d+)\.embedding\.convolution_embeddings\.'
     r'projection\.(\w+)', r'backbone.stages.\1.embed.proj.\2'),
    (r'cvt\.encoder\.stages\.(\d+)\.embedding\.convolution_embeddings\.'
     r'normalization\.(\w+)', r'backbone.stages.\1.embed.norm.\2'),
    (r'cvt\.encoder\.stages\.(\d+)\.cls_token',
     r'backbone.stages.\1.cls_token'),
    (_HF_LAYER + r'layernorm_before\.(\w+)', _OURS_BLOCK + r'ln1.\3'),
    (_HF_LAYER + r'layernorm_after\.(\w+)', _OURS_BLOCK + r'ln2.\3'),
    *[(_HF_ATTN + rf'convolution_projection_{src}\.convolution_projection\.'
       r'convolution\.weight', _OURS_BLOCK + rf'attn.{dst}.depthwise.weight')
      for src, dst in _QKV.items() if len(src) > 1],
    *[(_HF_ATTN + rf'convolution_projection_{src}\.convolution_projection\.'
       r'normalization\.(\w+)', _OURS_BLOCK + rf'attn.{dst}.bn.\3')
      for src, dst in _QKV.items() if len(src) > 1],
    *[(_HF_ATTN + rf'projection_{src}\.(\w+)',
       _OURS_BLOCK + rf'attn.{dst}.pointwise.\3')
      for src, dst in _QKV.items() if len(src) > 1],
    (_HF_LAYER + r'attention\.output\.dense\.(\w+)',
     _OURS_BLOCK + r'attn.proj.\3'),
    (_HF_LAYER + r'intermediate\.dense\.(\w+)',
     _OURS_BLOCK + r'ffn.layers.0.0.\3'),
    (_HF_LAYER + r'output\.dense\.(\w+)', _OURS_BLOCK + r'ffn.layers.1.\3'),
    (r'layernorm\.(\w+)', r'backbone.ln_out.\1'),
    (r'classifier\.(\w+)', r'head.fc.\1'),
]

#: format -> a key that only its files have
FORMATS = {
    'microsoft':
    'stage0.patch_embed.proj.weight',
    'transformers':
    'cvt.encoder.stages.0.embedding.convolution_embeddings.'
    'projection.weight',
}


def convert(state_dict: StateDict) -> Tuple[StateDict, str]:
    """Microsoft's or transformers' CvT state dict -> mmpretrain keys."""
    source = require_format(state_dict, 'CvT', FORMATS)
    rules = MICROSOFT_RULES if source == 'microsoft' else TRANSFORMERS_RULES
    return rename(state_dict, rules), source


CVT = Family(
    name='CvT',
    config_dir='cvt',
    convert=convert,
    formats="Microsoft's released checkpoints or transformers' "
    'CvtForImageClassification state dicts')

#: ``tools/model_converters/cvt_to_mmpretrain.py``
main = CVT.main
