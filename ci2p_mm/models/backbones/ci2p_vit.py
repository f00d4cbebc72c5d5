"""CI2P-ViT: mmpretrain's ViT with CI2P's patch embedding."""
from typing import Optional, Sequence, Union

from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.models.utils import to_2tuple
from mmpretrain.registry import MODELS

from ..utils.freezing import FrozenStagesMixin, codec_weights_kept
from ..utils.patch_embed import TOKEN_STRIDE, CI2PPatchEmbed, split_patch_cfg


def check_img_size(img_size: Union[int, Sequence[int]]) -> tuple:
    h, w = to_2tuple(img_size)
    if h % TOKEN_STRIDE or w % TOKEN_STRIDE:
        raise ValueError(f'img_size must be a multiple of {TOKEN_STRIDE} for '
                         f'CI2P backbones; got {img_size}.')
    return h, w


@MODELS.register_module()
class CI2PViT(FrozenStagesMixin, VisionTransformer):
    """CI2P-ViT (`Compress Image to Patches`).

    mmpretrain's :class:`VisionTransformer` whose patch embedding is
    :class:`CI2PPatchEmbed`: a frozen CompressAI encoder (stride 16) and two
    inverted residuals (stride 2), so a 256x256 image becomes 8x8 = 64 tokens
    instead of ViT-B/16's 256. The defaults are the paper's CI2P-ViT-B: no
    class token, global average pooling over tokens (``'avg_featmap'``).

    Args:
        arch (str | dict): Any mmpretrain ViT arch (``'b'``, ``'s'``,
            ``'deit-t'``, ``'deit-s'``, ...). Defaults to ``'b'``.
        img_size (int | tuple): Expected input size, a multiple of 32; other
            sizes (multiples of 32) work by resizing the position embedding.
            Defaults to 256.
        patch_cfg (dict): The CI2P patch path, as for every CI2P backbone:
            :class:`CI2PEncoder`'s arguments (``codec``, ``quality``,
            ``pretrained``, ``frozen``, ``channels_last``,
            ``latent_input``, ...) and the reshape blocks' ``norm_cfg`` /
            ``act_cfg`` (see :func:`split_patch_cfg`).
        out_type (str): ``'avg_featmap'`` (default), ``'featmap'`` (NCHW at
            stride 32), ``'raw'`` or ``'cls_token'``.
        with_cls_token (bool): Defaults to False (the paper uses GAP).
        norm_eval (bool): Keep the BatchNorms of the reshape blocks in eval
            mode during training (for fine-tuning with small batches).
            Defaults to False.
        **kwargs: Everything else :class:`VisionTransformer` takes
            (``out_indices``, ``drop_path_rate``, ``frozen_stages``,
            ``final_norm``, ``init_cfg``, ...).
    """

    def __init__(self,
                 arch: Union[str, dict] = 'b',
                 img_size: Union[int, Sequence[int]] = 256,
                 patch_cfg: dict = dict(),
                 out_type: str = 'avg_featmap',
                 with_cls_token: bool = False,
                 norm_eval: bool = False,
                 init_cfg: Optional[dict] = None,
                 **kwargs):
        img_size = check_img_size(img_size)
        out_indices = kwargs.pop('out_indices', -1)
        # mmpretrain's ViT rewrites negative entries in place: no tuples.
        kwargs['out_indices'] = ([out_indices] if isinstance(out_indices, int)
                                 else list(out_indices))
        if 'patch_size' in kwargs or 'in_channels' in kwargs:
            raise ValueError('CI2PViT takes no patch_size/in_channels: tokens '
                             'come from the codec at stride 32 from RGB.')
        # VisionTransformer builds mmcv's conv PatchEmbed from patch_cfg;
        # with stride 32 it gives the same token grid as CI2P's, so the
        # position embedding and everything else get their right sizes.
        # The conv is then replaced by CI2P's embedding.
        super().__init__(
            arch=arch,
            img_size=img_size,
            patch_size=TOKEN_STRIDE,
            out_type=out_type,
            with_cls_token=with_cls_token,
            init_cfg=init_cfg,
            **kwargs)
        encoder_cfg, reshape_cfg = split_patch_cfg(patch_cfg)
        self.patch_embed = CI2PPatchEmbed(
            embed_dims=self.embed_dims,
            input_size=img_size,
            **reshape_cfg,
            **encoder_cfg)
        assert self.patch_embed.init_out_size == self.patch_resolution
        self.norm_eval = norm_eval
        if self.frozen_stages > 0:
            self._freeze_stages()

    def init_weights(self):
        with codec_weights_kept(self.patch_embed.ci2p_encoder, self.init_cfg):
            super().init_weights()
