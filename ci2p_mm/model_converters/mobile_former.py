"""Mobile-Former weights from the authors' code, to mmpretrain.

    python tools/model_converters/mobile_former_to_mmpretrain.py \\
        mobile-former-508m.pth mobile-former-508m_in1k.pth

The source is a state dict of github.com/AAboys/MobileFormer's
``MobileFormer`` (bare, or under ``state_dict`` / ``model`` as timm's
``train.py`` saves it). Same tensors, other names and layout:

* ``tokens.weight`` (their ``nn.Embedding``) -> ``backbone.tokens``;
* their flat ``features.N`` -> ``backbone.stages.S.B``: a new stage starts
  at every downsampling block (theirs ``DnaBlock3``, the one with
  ``conv4``), as this backbone groups blocks by output stride;
* the dynamic-ReLU coefficient MLPs ``hyper1`` / ``hyper2`` (``hyper3`` in
  downsampling blocks) -> ``act1.coefficients`` / ``act2.coefficients``;
  the bridges ``local_global`` / ``global_block`` / ``global_local`` ->
  ``mobile_to_former`` / ``former`` / ``former_to_mobile``;
* their ``classifier`` is split: its 1x1 conv joins the backbone
  (``last_conv``, with the final ``local_global`` as ``final_bridge``),
  its two FC layers become ``StackedLinearClsHead``'s ``layers.0`` (FC,
  BatchNorm1d) and ``layers.1``.
"""
import re
from typing import Dict, Tuple

from .common import ConversionError, Family, StateDict, rename, require_format

#: Inside one of their blocks: (pattern, replacement) for the rest of a key.
_BRIDGE_RULES = [
    (r'local_global\.alpha\.0\.(\w+)', r'mobile_to_former.gate.0.\1'),
    (r'local_global\.q\.(\w+)', r'mobile_to_former.q.\1'),
    (r'local_global\.proj\.(\w+)', r'mobile_to_former.proj.\1'),
    (r'local_global\.layer_norm\.(\w+)', r'mobile_to_former.norm.\1'),
    (r'global_block\.q\.(\w+)', r'former.q.\1'),
    (r'global_block\.channel_mlp\.(\w+)', r'former.proj.\1'),
    (r'global_block\.layer_norm\.(\w+)', r'former.norm1.\1'),
    (r'global_block\.ffn\.([02])\.(\w+)', r'former.ffn.\1.\2'),
    (r'global_block\.ffn_norm\.(\w+)', r'former.norm2.\1'),
    (r'global_local\.k\.(\w+)', r'former_to_mobile.k.\1'),
    (r'global_local\.proj\.(\w+)', r'former_to_mobile.v.\1'),
]
_CONV = [(r'(conv[1-4])\.([01])\.(\w+)', r'\1.\2.\3')]
#: Stride-1 block (their ``DnaBlock``): dynamic ReLU after conv1, conv2.
_BLOCK_RULES = _BRIDGE_RULES + _CONV + [
    (r'hyper([12])\.hyper\.([02])\.(\w+)', r'act\1.coefficients.\2.\3')
]
#: Downsampling block (their ``DnaBlock3``): after conv1 and conv3.
_DOWN_RULES = _BRIDGE_RULES + _CONV + [
    (r'hyper1\.hyper\.([02])\.(\w+)', r'act1.coefficients.\1.\2'),
    (r'hyper3\.hyper\.([02])\.(\w+)', r'act2.coefficients.\1.\2')
]
#: Stage-1 block without bridge (``DnaBlock3`` with ``e2 == 0``).
_LITE_RULES = [
    (r'conv\.([01])\.(\w+)', r'depthwise.\1.\2'),
    (r'conv\.4\.(\w+)', r'pointwise.0.\1'),
    (r'conv\.5\.(\w+)', r'pointwise.1.\1'),
]
_TOP_RULES = [
    (r'tokens\.weight', 'backbone.tokens'),
    (r'stem\.([01])\.(\w+)', r'backbone.stem.\1.\2'),
    *[(p, r'backbone.final_bridge.' + r[len('mobile_to_former.'):])
      for p, r in _BRIDGE_RULES if p.startswith('local_global')],
    (r'classifier\.conv\.1\.(\w+)', r'backbone.last_conv.0.\1'),
    (r'classifier\.conv\.2\.(\w+)', r'backbone.last_conv.1.\1'),
    (r'classifier\.fc\.0\.(\w+)', r'head.layers.0.fc.\1'),
    (r'classifier\.fc\.1\.(\w+)', r'head.layers.0.norm.\1'),
    (r'classifier\.classifier\.1\.(\w+)', r'head.layers.1.fc.\1'),
]

#: Marks the keys of a block that no rule renamed.
_UNKNOWN = '?'
#: format -> a key that only its files have (their nn.Embedding tokens)
FORMATS = {'authors': 'tokens.weight'}


def _blocks(state_dict: StateDict) -> Dict[int, Dict[str, object]]:
    """``{N: {rest of key: tensor}}`` of their ``features.N.*`` keys."""
    blocks: Dict[int, Dict[str, object]] = {}
    for key, value in state_dict.items():
        match = re.fullmatch(r'features\.(\d+)\.(.+)', key)
        if match:
            blocks.setdefault(int(match[1]), {})[match[2]] = value
    if sorted(blocks) != list(range(len(blocks))):
        raise ConversionError(
            f'The Mobile-Former blocks features.N are not numbered 0..'
            f'{len(blocks) - 1}: {sorted(blocks)}.')
    return blocks


def convert(state_dict: StateDict) -> Tuple[StateDict, str]:
    """The authors' Mobile-Former state dict -> mmpretrain keys."""
    source = require_format(state_dict, 'Mobile-Former', FORMATS)
    top = {
        k: v
        for k, v in state_dict.items() if not k.startswith('features.')
    }
    out = rename(top, _TOP_RULES)
    stage = index = -1
    for n, params in sorted(_blocks(state_dict).items()):
        down = any(k.startswith('conv4.') for k in params)
        # A new stage at each downsampling block (one with ``conv4``).
        stage, index = (stage + 1, 0) if n == 0 or down else (stage, index + 1)
        if any(k.startswith('conv.') for k in params):
            rules = _LITE_RULES
        else:
            rules = _DOWN_RULES if down else _BLOCK_RULES
        for key, value in rename(params, rules, prefix=_UNKNOWN).items():
            if key.startswith(_UNKNOWN):  # kept as it was: the fit check
                out[f'features.{n}.{key[len(_UNKNOWN):]}'] = value  # names it
            else:
                out[f'backbone.stages.{stage}.{index}.{key}'] = value
    return out, source


MOBILE_FORMER = Family(
    name='Mobile-Former',
    config_dir='mobile_former',
    convert=convert,
    formats="the authors' MobileFormer state dicts "
    '(github.com/AAboys/MobileFormer)')

#: ``tools/model_converters/mobile_former_to_mmpretrain.py``
main = MOBILE_FORMER.main
