"""FLOPs as the paper counts them: one multiply-add is one FLOP, attention
matmuls included.

mmengine's ``FlopAnalyzer`` (fvcore's counter) has no handle for
``aten::scaled_dot_product_attention``, which mmpretrain's attention calls,
so it leaves out QK^T and AV: 2 * N^2 * D multiply-adds per layer. We add
that handle and otherwise keep mmengine's conventions.
"""
from math import prod
from typing import Any, Dict, List, Sequence

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.analysis.jit_handles import get_shape


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """Multiply-adds of softmax(Q K^T) V for q [..., N, d], k/v [..., M, d]."""
    q, k, v = (get_shape(x) for x in inputs[:3])
    batch_heads = prod(q[:-2])
    n, d = q[-2], q[-1]
    m, dv = k[-2], v[-1]
    return batch_heads * n * m * (d + dv)


class _TensorForward(nn.Module):
    """Runs a model's tensor path for tracing: a classifier's
    ``forward(x, mode='tensor')``; ``model._forward(x)`` of an mmdet,
    mmpose or mmseg model (backbone, neck and head without
    post-processing, the same call in the three: mmpose's ``forward`` has
    no ``mode='tensor'`` path without data samples)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        if hasattr(self.model, '_forward'):  # mmdet, mmpose, mmseg
            return self.model._forward(x)
        return self.model(x, mode='tensor')


def model_flops(model: nn.Module,
                shape: Sequence[int],
                by_module: bool = False) -> Dict[str, Any]:
    """FLOPs and parameters of ``model`` for one ``3 x H x W`` image.

    ``model`` is an mmpretrain classifier (counted through
    ``forward(x, mode='tensor')``: backbone, neck and head), an mmdet,
    mmpose or mmseg model (through ``_forward(x)``) or any module taking
    an image batch.

    Returns:
        dict: ``flops``, ``params``, ``attention_flops`` (the part added for
        scaled_dot_product_attention) and, with ``by_module``, a Counter
        of FLOPs per submodule.
    """
    h, w = shape
    x = torch.rand(1, 3, h, w)  # [0, 1]: what CI2P's codec takes
    was_training = model.training
    model.eval()
    traced = _TensorForward(model) if hasattr(model, 'extract_feat') else model
    # Counted by tracing: CI2P's codec skips its weight and [0, 1] checks
    # there, so neither pretrained weights nor real images are needed.
    analyzer = FlopAnalyzer(traced, (x, ))
    analyzer.set_op_handle('aten::scaled_dot_product_attention', sdpa_flop_jit)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    result = dict(
        flops=analyzer.total(),
        params=parameter_count(model)[''],
        attention_flops=analyzer.by_operator().get(
            'scaled_dot_product_attention', 0))
    if by_module:
        result['by_module'] = analyzer.by_module()
    model.train(was_training)
    return result
