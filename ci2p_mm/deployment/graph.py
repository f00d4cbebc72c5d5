"""What an exported graph computes, and what it takes as input.

The graph is mmpretrain's ``model(inputs, mode='tensor')`` (backbone, neck,
head: logits, no softmax) or, for detection/segmentation users, the
backbone's feature outputs, starting from the **data-preprocessed batch**,
as mmdeploy exports mmpretrain models. The input contract is then the data
preprocessor's output (:class:`InputContract`):

* CI2P models (``CI2PDataPreprocessor``): RGB divided by 255, i.e. float in
  [0, 1], NCHW, H and W multiples of 32;
* ViT, CvT, CrossViT, Mobile-Former (``ClsDataPreprocessor``): RGB
  normalised with the config's ``mean``/``std`` (ImageNet's).

With ``normalize_in_graph`` the graph starts one step earlier: it takes RGB
pixels in [0, 255] (float, NCHW) and applies the preprocessor's
``(x - mean) / std`` itself, so every family takes the same input.
"""
import json
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

#: Backbone settings of ``--features``: the outputs the project's mmdet and
#: mmseg configs (configs/downstream/) take from each backbone. Backbones not
#: listed are exported with the config's own ``out_type``/``out_indices``
#: (CrossViT has no feature maps: its outputs are class-token vectors).
FEATURE_OUTPUTS = {
    'CI2PViT': dict(out_type='featmap', out_indices=-1),
    'DualScaleViT': dict(out_type='featmap', out_indices=('enc_s8', 5, 11)),
    'VisionTransformer': dict(out_type='featmap', out_indices=-1),
    'CvT': dict(out_type='featmap', out_indices=(1, 2)),
    'MobileFormer': dict(out_type='featmap', out_indices=(2, 3, 4)),
}

#: Name of the graph's input.
INPUT_NAME = 'input'


@dataclass
class InputContract:
    """The input an exported graph expects (all float32, NCHW).

    Attributes:
        rgb (bool): Channels are RGB (the data preprocessor's ``to_rgb``,
            true for every config of this project), else BGR.
        mean (list[float] | None): Per-channel mean the caller subtracts,
            on 0-255 pixels (None: none).
        std (list[float] | None): Per-channel divisor after the mean.
        in_graph (bool): The graph applies ``mean``/``std`` itself and
            takes 0-255 pixels.
    """
    rgb: bool
    mean: Optional[List[float]]
    std: Optional[List[float]]
    in_graph: bool = False

    def describe(self) -> str:
        order = 'RGB' if self.rgb else 'BGR'
        if self.in_graph or self.mean is None:
            how = ('; the graph normalises it itself with '
                   f'(x - {self.mean}) / {self.std}'
                   if self.in_graph and self.mean is not None else '')
            return f'float32 NCHW, {order} pixels in [0, 255]{how}'
        if all(m == 0 for m in self.mean) and len(set(self.std)) == 1:
            scale = self.std[0]
            return (f'float32 NCHW, {order} pixels / {scale:g} (values in '
                    f'[0, {255 / scale:g}])')
        return (f'float32 NCHW, {order} pixels (0-255) normalised as '
                f'(x - mean) / std with mean={self.mean}, std={self.std}')

    def metadata(self) -> dict:
        """Key/values stored in the ONNX file (``metadata_props``)."""
        normalization = 'in graph' if self.in_graph else (
            'none' if self.mean is None else 'caller')
        return dict(
            input=self.describe(),
            input_channels='RGB' if self.rgb else 'BGR',
            input_normalization=normalization,
            input_mean=json.dumps(self.mean),
            input_std=json.dumps(self.std))


def input_contract(model: nn.Module, in_graph: bool = False) -> InputContract:
    """What the model's data preprocessor hands the model, read from it.

    Raises:
        ValueError: ``in_graph`` for a preprocessor without mmpretrain's
            ``mean``/``std`` (e.g. the latent configs' one).
    """
    pre = model.data_preprocessor
    normalizes = getattr(pre, '_enable_normalize', None)
    if normalizes is None:
        raise ValueError(
            f'{type(pre).__name__} is not an mmpretrain ClsDataPreprocessor, '
            f'so its input normalisation is unknown; export a config whose '
            f'data_preprocessor is ClsDataPreprocessor or '
            f'CI2PDataPreprocessor.')
    # float32 buffers: 123.675 reads back as 123.67500305...
    mean, std = ([[round(v, 4) for v in t.flatten().tolist()]
                  for t in (pre.mean, pre.std)] if normalizes else
                 (None, None))
    return InputContract(
        bool(getattr(pre, 'to_rgb', False)), mean, std, in_graph=in_graph)


class ExportGraph(nn.Module):
    """The module handed to the exporter.

    Args:
        model (nn.Module): An mmpretrain classifier (``ImageClassifier``).
        features (bool): Output ``model.backbone``'s tuple of features
            instead of the logits of ``model(x, mode='tensor')``.
        contract (InputContract, optional): With ``in_graph``, the data
            preprocessor's ``(x - mean) / std`` is applied first, with its
            own ``mean``/``std`` buffers.
    """

    def __init__(self,
                 model: nn.Module,
                 features: bool = False,
                 contract: Optional[InputContract] = None):
        super().__init__()
        self.model = model
        self.features = features
        self.normalize = bool(contract and contract.in_graph
                              and contract.mean is not None)

    def forward(self, x: torch.Tensor):
        if self.normalize:
            pre = self.model.data_preprocessor
            x = (x - pre.mean) / pre.std
        if self.features:
            return tuple(self.model.backbone(x))
        return self.model(x, mode='tensor')


def as_tuple(outputs) -> Tuple[torch.Tensor, ...]:
    """A graph's outputs as a flat tuple of tensors."""
    if isinstance(outputs, torch.Tensor):
        return (outputs, )
    return tuple(tensor for item in outputs for tensor in as_tuple(item))


def output_names(outputs: Sequence[torch.Tensor], input_hw: Tuple[int, int],
                 features: bool) -> List[str]:
    """``['logits']`` for a classifier; ``feat{i}_s{stride}`` for feature
    maps (``feat{i}`` for vectors, e.g. CrossViT's class tokens)."""
    if not features:
        return ['logits'] if len(outputs) == 1 else [
            f'logits{i}' for i in range(len(outputs))
        ]
    names = []
    for i, out in enumerate(outputs):
        rows = out.shape[-2] if out.dim() == 4 else 0
        whole = rows and input_hw[0] % rows == 0
        names.append(
            f'feat{i}_s{input_hw[0] // rows}' if whole else f'feat{i}')
    return names
