"""CrossViT: Cross-Attention Multi-Scale Vision Transformer (Chen et al.,
ICCV 2021, arXiv 2103.14899), through timm's implementation.

timm's ``CrossVit`` is a faithful port of the authors' model (same module
names as their checkpoints), so this is only a thin mmpretrain backbone
around it: arch names, tuple outputs, ``out_indices`` over the multi-scale
encoders, ``frozen_stages``, and the classifier left to mmpretrain's head.
"""
from typing import Optional, Sequence, Tuple, Union

import timm
import torch
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.registry import MODELS
from timm.models.crossvit import CrossVit

from ..utils.freezing import FrozenStagesMixin, freeze
from .settings import check_out_type, lookup_arch, stage_indices


@MODELS.register_module()
class CrossViT(FrozenStagesMixin, BaseBackbone):
    """CrossViT: two ViT branches on small and large patches, fused by
    cross-attention in which each branch's class token is the only query.

    Paper variants (input 240; the large-patch branch sees the image resized
    to 224, as in the authors' code), params / FLOPs with the ImageNet head:

    ======== ================ ========= ======= ====== ======== ===========
    arch     widths (s / l)   heads     K x N   params FLOPs    timm model
    ======== ================ ========= ======= ====== ======== ===========
    ti       96 / 192         3         3 x 4   7.0M   1.6G     tiny_240
    s        192 / 384        6         3 x 4   26.7M  5.6G     small_240
    b        384 / 768        12        3 x 4   104.7M 21.2G    base_240
    9        128 / 256        4         3 x 3   8.6M   1.8G     9_240
    15       192 / 384        6         3 x 5   27.4M  5.8G     15_240
    18       224 / 448        7         3 x 6   43.3M  9.0G     18_240
    9-dagger  ... with a 3-conv patch embedding  8.8M   2.0G     9_dagger_240
    15-dagger                                    28.2M  6.1G     15_dagger_240
    18-dagger                                    44.3M  9.5G     18_dagger_240
    ======== ================ ========= ======= ====== ======== ===========

    (K multi-scale encoders, each with N transformer blocks in the large
    branch; the small branch has one.) The paper's classifier is one linear
    layer per branch on its class token, logits averaged; a single linear
    layer on the concatenated class tokens (this backbone's ``cls_token``
    output with mmpretrain's ``LinearClsHead``) computes the same function
    with one bias vector fewer.

    Args:
        arch (str | dict): One of the names above, or a dict of
            ``timm.models.crossvit.CrossVit`` arguments (``patch_size``,
            ``embed_dim``, ``depth``, ``num_heads``, ``mlp_ratio``, ...).
            Defaults to ``'s'``.
        img_size (int): Input size; the large branch runs at
            ``img_size * 224 / 240``. Inputs of another size are resized to
            it inside the model (timm's behaviour). Defaults to 240.
        out_indices (int | Sequence[int]): Multi-scale encoders to output
            (negative counts from the end). Defaults to -1.
        out_type (str): ``'cls_token'`` (both branches' class tokens,
            concatenated) or ``'avg_featmap'`` (both branches' mean patch
            token, concatenated). The last encoder's output passes the final
            LayerNorms. Defaults to ``'cls_token'``.
        drop_rate (float): Dropout after the position embedding and in the
            blocks. Defaults to 0.
        drop_path_rate (float): Stochastic depth. Defaults to 0.
        frozen_stages (int): Freeze the patch / position embeddings, the
            class tokens and this many multi-scale encoders (-1: none).
        init_cfg (dict, optional): Only ``Pretrained`` makes sense: timm
            initialises the model (truncated normal, as the authors).
    """
    arch_zoo = {
        'ti': 'crossvit_tiny_240',
        's': 'crossvit_small_240',
        'b': 'crossvit_base_240',
        '9': 'crossvit_9_240',
        '15': 'crossvit_15_240',
        '18': 'crossvit_18_240',
        '9-dagger': 'crossvit_9_dagger_240',
        '15-dagger': 'crossvit_15_dagger_240',
        '18-dagger': 'crossvit_18_dagger_240',
    }
    OUT_TYPES = {'cls_token', 'avg_featmap'}

    def __init__(self,
                 arch: Union[str, dict] = 's',
                 img_size: int = 240,
                 out_indices: Union[int, Sequence[int]] = -1,
                 out_type: str = 'cls_token',
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 frozen_stages: int = -1,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        self.out_type = check_out_type(out_type, self.OUT_TYPES)
        kwargs = dict(
            num_classes=0,
            img_size=img_size,
            pos_drop_rate=drop_rate,
            proj_drop_rate=drop_rate,
            drop_path_rate=drop_path_rate)
        if isinstance(arch, dict):  # timm CrossVit's own arguments
            self.model = CrossVit(**arch, **kwargs)
        else:
            self.model = timm.create_model(
                lookup_arch('CrossViT', self.arch_zoo, arch),
                pretrained=False,
                **kwargs)
        self.img_size = img_size
        self.embed_dims = list(self.model.embed_dim)

        self.out_indices = stage_indices(out_indices, len(self.model.blocks),
                                         'multi-scale encoder')
        self.frozen_stages = frozen_stages
        if frozen_stages > 0:
            self._freeze_stages()

    @property
    def out_channels(self) -> int:
        """Channels of each output: both branches concatenated."""
        return sum(self.embed_dims)

    def _freeze_stages(self):
        modules = [
            self.model.patch_embed, *self.model.blocks[:self.frozen_stages]
        ]
        if self.frozen_stages >= len(self.model.blocks):
            modules.append(self.model.norm)
        freeze(*modules)
        for name, param in self.model.named_parameters():
            if name.startswith(('pos_embed_', 'cls_token_')):
                param.requires_grad = False

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        last = len(self.model.blocks) - 1
        if self.out_indices == [last]:
            # timm's public path: embeddings, encoders, final norms
            per_encoder = [self.model.forward_features(x)]
        else:
            per_encoder = []
            xs = self.model._embed(x)
            for i, block in enumerate(self.model.blocks):
                xs = block(xs)
                if i in self.out_indices:
                    per_encoder.append(
                        xs if i < last else
                        [norm(b) for norm, b in zip(self.model.norm, xs)])
        outs = []
        for branches in per_encoder:
            if self.out_type == 'cls_token':
                pooled = [b[:, 0] for b in branches]
            else:
                pooled = [b[:, 1:].mean(dim=1) for b in branches]
            outs.append(torch.cat(pooled, dim=1))
        return tuple(outs)
