"""CI2P-ViT^ds: dual-scale attention on the codec's latent grid."""
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.model import ModuleList
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.models.backbones.vision_transformer import (
    TransformerEncoderLayer, VisionTransformer)
from mmpretrain.models.utils import build_norm_layer, resize_pos_embed
from mmpretrain.registry import MODELS

from ci2p_mm.codec import ENCODER_STRIDE, LATENT_CHANNELS
from ..utils.freezing import FrozenStagesMixin, codec_weights_kept, freeze
from ..utils.patch_embed import (CI2PEncoder, CnnReshape, check_image_batch,
                                 split_patch_cfg)
from .ci2p_vit import check_img_size
from .settings import check_out_type, resolve_arch, stage_indices

#: ``out_indices`` names of the encoder's own maps, with their stride.
ENCODER_OUTS = {'enc_s2': 2, 'enc_s4': 4, 'enc_s8': 8, 'enc_s16': 16}


def _arch(num_layers: int,
          embed_dims: int,
          num_heads: int,
          mlp_ratio: int = 4) -> dict:
    """An ``arch`` of :class:`DualScaleViT`: ``num_layers`` layers in each
    stage, stage 1 at the latent's width (3 heads), stage 2 at
    ``embed_dims``; FFNs ``mlp_ratio`` times wider than their layer."""

    def stage(dims: int, heads: int) -> dict:
        return dict(
            embed_dims=dims,
            num_layers=num_layers,
            num_heads=heads,
            feedforward_channels=dims * mlp_ratio)

    return dict(
        stage1=stage(LATENT_CHANNELS, 3), stage2=stage(embed_dims, num_heads))


@MODELS.register_module()
class DualScaleViT(FrozenStagesMixin, BaseBackbone):
    """CI2P-ViT^ds: CI2P's encoder, then ViT layers at two scales.

    The codec latent (192 channels, stride 16) is taken as tokens directly.
    The first stage of layers runs at width 192 on that fine grid; a
    stride-2 inverted residual (CnnReshape) turns it into the stride-32 grid
    of the second, wider stage. Global average pooling ends the backbone.

    ============ =================== ======== ========= =====================
    out_indices  tensor (featmap)    channels  stride   note
    ============ =================== ======== ========= =====================
    'enc_s2'     encoder level 1     N (128)   2        codec's own maps;
    'enc_s4'     encoder level 2     N (128)   4        N=192 for cheng2020
    'enc_s8'     encoder level 3     N (128)   8
    'enc_s16'    codec latent        192       16
    0 .. d1-1    stage-1 layers      192       16       arch 'b': d1 = 6
    d1 .. d-1    stage-2 layers      D (768)   32       last one: final norm
    ============ =================== ======== ========= =====================

    Args:
        arch (str | dict): ``'b'`` (the paper's: 6 layers at 192 / 3 heads,
            6 at 768 / 12 heads), ``'s'`` or ``'t'``, or a dict with
            ``stage1`` and ``stage2`` dicts of ``embed_dims``,
            ``num_layers``, ``num_heads``, ``feedforward_channels``
            (``stage1.embed_dims`` must be 192). Defaults to ``'b'``.
        img_size (int | tuple): Expected input size, a multiple of 32.
            Defaults to 256.
        patch_cfg (dict): The CI2P patch path, as for every CI2P backbone:
            :class:`CI2PEncoder`'s arguments (``codec``, ``quality``,
            ``pretrained``, ``frozen``, ``channels_last``,
            ``latent_input``, ...) and ``norm_cfg`` / ``act_cfg`` of
            CnnReshape (see :func:`split_patch_cfg`).
        out_indices (int | str | Sequence): Layer indices (negative counts
            from the end) and/or encoder map names; see the table.
            Defaults to -1.
        out_type (str): ``'avg_featmap'`` (GAP + LN, stage-2 layers only),
            ``'featmap'`` (NCHW) or ``'raw'`` (tokens). Defaults to
            ``'avg_featmap'``.
        drop_rate (float): Dropout after position embedding and in layers.
        drop_path_rate (float): Stochastic depth, rising over all layers.
        qkv_bias (bool): Defaults to True.
        norm_cfg (dict): Defaults to ``dict(type='LN', eps=1e-6)``.
        final_norm (bool): LayerNorm after the last layer. Defaults to True.
        frozen_stages (int): Freeze the embedding, position embedding and
            this many layers (CnnReshape too once stage 1 is frozen).
            Defaults to -1.
        norm_eval (bool): Keep CnnReshape's BatchNorms in eval mode.
        interpolate_mode (str): Position-embedding resize mode.
        init_cfg (dict, optional): Initialization config.
    """
    arch_zoo = {
        **dict.fromkeys(['b', 'base'], _arch(6, 768, 12)),
        **dict.fromkeys(['s', 'small'], _arch(4, 384, 6)),
        **dict.fromkeys(['t', 'tiny'], _arch(2, 192, 3, mlp_ratio=2)),
    }
    OUT_TYPES = {'raw', 'featmap', 'avg_featmap'}

    def __init__(self,
                 arch: Union[str, dict] = 'b',
                 img_size: Union[int, Sequence[int]] = 256,
                 patch_cfg: dict = dict(),
                 out_indices: Union[int, str, Sequence] = -1,
                 out_type: str = 'avg_featmap',
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 qkv_bias: bool = True,
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 final_norm: bool = True,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 interpolate_mode: str = 'bicubic',
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        arch = resolve_arch('DualScaleViT', self.arch_zoo, arch,
                            ('stage1', 'stage2'))
        stage1, stage2 = arch['stage1'], arch['stage2']
        if stage1['embed_dims'] != LATENT_CHANNELS:
            raise ValueError(
                f'Stage 1 runs on the codec latent, so its embed_dims must '
                f'be {LATENT_CHANNELS}; got {stage1["embed_dims"]}.')
        self.out_type = check_out_type(out_type, self.OUT_TYPES)
        self.arch_settings = arch
        self.num_stage1_layers = stage1['num_layers']
        self.num_layers = stage1['num_layers'] + stage2['num_layers']
        self.embed_dims = stage2['embed_dims']
        self.img_size = check_img_size(img_size)
        self.interpolate_mode = interpolate_mode

        encoder_cfg, reshape_cfg = split_patch_cfg(patch_cfg)
        self.patch_embed = CI2PEncoder(**encoder_cfg)
        self.patch_resolution = tuple(s // ENCODER_STRIDE
                                      for s in self.img_size)
        self.pos_embed = nn.Parameter(
            torch.zeros(1, int(np.prod(self.patch_resolution)),
                        LATENT_CHANNELS))
        self._register_load_state_dict_pre_hook(self._prepare_pos_embed)
        self.drop_after_pos = nn.Dropout(p=drop_rate)

        dpr = np.linspace(0, drop_path_rate, self.num_layers)
        self.layers = ModuleList()
        for i in range(self.num_layers):
            stage = stage1 if i < self.num_stage1_layers else stage2
            self.layers.append(
                TransformerEncoderLayer(
                    embed_dims=stage['embed_dims'],
                    num_heads=stage['num_heads'],
                    feedforward_channels=stage['feedforward_channels'],
                    drop_rate=drop_rate,
                    drop_path_rate=dpr[i],
                    qkv_bias=qkv_bias,
                    norm_cfg=norm_cfg))
        self.cnn_reshape = CnnReshape(LATENT_CHANNELS, self.embed_dims,
                                      **reshape_cfg)

        self.out_indices, self.encoder_outs = self._parse_out_indices(
            out_indices)
        self.final_norm = final_norm
        if final_norm:
            self.ln1 = build_norm_layer(norm_cfg, self.embed_dims)
        if out_type == 'avg_featmap':
            self.ln2 = build_norm_layer(norm_cfg, self.embed_dims)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        if frozen_stages > 0:
            self._freeze_stages()

    def _parse_out_indices(self, out_indices) -> Tuple[List[int], List[str]]:
        """Layer indices (as every backbone here reads them) and the
        encoder maps named among them."""
        if isinstance(out_indices, (int, str)):
            out_indices = [out_indices]
        names = [i for i in out_indices if isinstance(i, str)]
        unknown = [i for i in names if i not in ENCODER_OUTS]
        if unknown:
            raise ValueError(f'Invalid out_indices {unknown}: encoder maps '
                             f'are {list(ENCODER_OUTS)}.')
        if names and self.out_type != 'featmap':
            raise ValueError(f"Encoder maps {names} need out_type='featmap'.")
        layers = stage_indices(
            [i for i in out_indices if not isinstance(i, str)],
            self.num_layers, 'layer')
        early = [i for i in layers if i < self.num_stage1_layers]
        if self.out_type == 'avg_featmap' and early:
            raise ValueError(
                f"out_type='avg_featmap' is for stage-2 layers "
                f'({self.num_stage1_layers}..{self.num_layers - 1}); '
                f"use 'featmap' or 'raw' for layers {early}.")
        return layers, sorted(names, key=ENCODER_OUTS.get)

    @property
    def encoder(self) -> nn.Sequential:
        """The codec's ``g_a``."""
        return self.patch_embed.encoder

    def init_weights(self):
        with codec_weights_kept(self.patch_embed, self.init_cfg):
            super().init_weights()
        if not (isinstance(self.init_cfg, dict)
                and self.init_cfg['type'] == 'Pretrained'):
            trunc_normal_(self.pos_embed, std=0.02)

    def _prepare_pos_embed(self, state_dict, prefix, *args, **kwargs):
        """Resize a checkpoint's position embedding trained at another size."""
        name = prefix + 'pos_embed'
        if name not in state_dict or (state_dict[name].shape
                                      == self.pos_embed.shape):
            return
        side = int(np.sqrt(state_dict[name].shape[1]))
        state_dict[name] = resize_pos_embed(state_dict[name], (side, side),
                                            self.patch_resolution,
                                            self.interpolate_mode, 0)

    def _freeze_stages(self):
        frozen = [self.patch_embed, self.drop_after_pos]
        frozen += list(self.layers[:self.frozen_stages])
        if self.frozen_stages > self.num_stage1_layers:
            frozen.append(self.cnn_reshape)
        if self.frozen_stages >= self.num_layers:
            frozen += [
                getattr(self, n) for n in ('ln1', 'ln2') if hasattr(self, n)
            ]
        self.pos_embed.requires_grad = False
        freeze(*frozen)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if not self.patch_embed.latent_input:  # else the encoder checks
            check_image_batch(x)
        outs = []
        if self.encoder_outs:
            levels = self.patch_embed(x, return_stages=True)
            for name in self.encoder_outs:
                outs.append(levels[list(ENCODER_OUTS).index(name)])
            latent = levels[-1]
        else:
            latent = self.patch_embed(x)

        hw = tuple(latent.shape[2:])
        x = latent.flatten(2).transpose(1, 2)
        x = x + resize_pos_embed(self.pos_embed, self.patch_resolution, hw,
                                 self.interpolate_mode, 0)
        x = self.drop_after_pos(x)
        for i, layer in enumerate(self.layers):
            if i == self.num_stage1_layers:  # tokens on the latent's grid
                x = self.cnn_reshape(x.transpose(1, 2).reshape(*latent.shape))
                x, hw = x.flatten(2).transpose(1, 2), tuple(x.shape[2:])
            x = layer(x)
            if i == self.num_layers - 1 and self.final_norm:
                x = self.ln1(x)
            if i not in self.out_indices:
                continue
            if self.out_type == 'featmap':
                outs.append(x.transpose(1, 2).reshape(x.size(0), -1, *hw))
            elif self.out_type == 'raw':
                outs.append(x)
            else:
                outs.append(self.ln2(x.mean(dim=1)))
        return tuple(outs)

    def get_layer_depth(self, param_name: str, prefix: str = ''):
        """Layer-wise depth for layer-wise lr decay, as mmpretrain's ViT;
        CnnReshape shares the depth of the first stage-2 layer."""
        if param_name.startswith(prefix + 'cnn_reshape'):
            return self.num_stage1_layers + 1, self.num_layers + 2
        return VisionTransformer.get_layer_depth(self, param_name, prefix)
