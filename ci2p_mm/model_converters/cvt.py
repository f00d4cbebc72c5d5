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
from typing import Dict, List, Tuple

from .common import Family, RenameRule, StateDict, rename, require_format

_QKV = dict(q='query', k='key', v='value')
_HF_STAGE = r'cvt\.encoder\.stages\.(\d+)\.'
_HF_EMBED = _HF_STAGE + r'embedding\.convolution_embeddings\.'
_HF_ATTN = r'attention\.attention\.'
_HF_CONV = _HF_ATTN + r'convolution_projection_{}\.convolution_projection\.'
_OURS_BLOCK = r'backbone.stages.\1.blocks.\2.'

#: (Microsoft's key, transformers' key, ours) outside the blocks.
_KEYS = [
    (r'stage(\d+)\.patch_embed\.proj\.(\w+)', _HF_EMBED + r'projection\.(\w+)',
     r'backbone.stages.\1.embed.proj.\2'),
    (r'stage(\d+)\.patch_embed\.norm\.(\w+)',
     _HF_EMBED + r'normalization\.(\w+)', r'backbone.stages.\1.embed.norm.\2'),
    (r'stage(\d+)\.cls_token', _HF_STAGE + r'cls_token',
     r'backbone.stages.\1.cls_token'),
    (r'norm\.(\w+)', r'layernorm\.(\w+)', r'backbone.ln_out.\1'),
    (r'head\.(\w+)', r'classifier\.(\w+)', r'head.fc.\1'),
]
#: (Microsoft's, transformers', ours) inside block ``S.B``, each followed
#: by the parameter's name.
_BLOCK_PARTS = [
    (r'norm1', r'layernorm_before', 'ln1'),
    (r'norm2', r'layernorm_after', 'ln2'),
    # q, k, v: depthwise conv, its BatchNorm, pointwise linear
    *[
        part for q, query in _QKV.items()
        for part in ((rf'attn\.conv_proj_{q}\.conv', _HF_CONV.format(query) +
                      'convolution', f'attn.{q}.depthwise'),
                     (rf'attn\.conv_proj_{q}\.bn', _HF_CONV.format(query) +
                      'normalization', f'attn.{q}.bn'),
                     (rf'attn\.proj_{q}', _HF_ATTN + rf'projection_{query}',
                      f'attn.{q}.pointwise'))
    ],
    (r'attn\.proj', r'attention\.output\.dense', 'attn.proj'),
    (r'mlp\.fc1', r'intermediate\.dense', 'ffn.layers.0.0'),
    (r'mlp\.fc2', r'output\.dense', 'ffn.layers.1'),
]
#: Where a block's keys start (groups 1 and 2: stage and block), per format.
_BLOCKS = [r'stage(\d+)\.blocks\.(\d+)\.', _HF_STAGE + r'layers\.(\d+)\.']

#: format -> rename rules (``i``: 0 Microsoft's keys, 1 transformers')
RULES: Dict[str, List[RenameRule]] = {
    source: [(keys[i], ours) for *keys, ours in _KEYS] +
    [(_BLOCKS[i] + keys[i] + r'\.(\w+)', _OURS_BLOCK + ours + r'.\3')
     for *keys, ours in _BLOCK_PARTS]
    for i, source in enumerate(('microsoft', 'transformers'))
}

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
    return rename(state_dict, RULES[source]), source


CVT = Family(
    name='CvT',
    config_dir='cvt',
    convert=convert,
    formats="Microsoft's released checkpoints or transformers' "
    'CvtForImageClassification state dicts')

#: ``tools/model_converters/cvt_to_mmpretrain.py``
main = CVT.main
