"""CI2P patch embedding: a frozen codec encoder followed by PatchReshape."""
import inspect
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.layers import GDN
from mmengine.model import BaseModule
from mmpretrain.models.utils import InvertedResidual, to_2tuple
from mmpretrain.registry import MODELS

from ci2p_mm.codec.zoo import (ENCODER_STRIDE, LATENT_CHANNELS, build_codec,
                               check_supported, encoder_stages)
from .codec_weights import CodecWeightsMixin
from .freezing import freeze
from .tracing import is_tracing_or_exporting

#: Total stride of CI2P tokens: the codec's 16 and PatchReshape's 2.
TOKEN_STRIDE = ENCODER_STRIDE * 2


def check_image_batch(x: torch.Tensor, stride: int = TOKEN_STRIDE) -> None:
    """Refuse inputs the codec cannot take, naming the shape and the rule."""
    if x.dim() != 4 or x.size(1) != 3:
        raise ValueError(
            f'CI2P expects RGB batches of shape [B, 3, H, W]; got '
            f'{list(x.shape)}. Grey or RGBA images must be converted to RGB '
            f'by the data pipeline.')
    h, w = x.shape[-2:]
    if h % stride or w % stride:
        raise ValueError(
            f'CI2P needs H and W to be multiples of {stride} (the codec '
            f'downsamples by {ENCODER_STRIDE}, PatchReshape by 2); got '
            f'{h}x{w}. Resize or crop to a multiple of {stride}, or pad with '
            f'the data preprocessor (pad_size_divisor={stride}).')


def check_latent_batch(x: torch.Tensor) -> None:
    """Refuse a batch that is not codec latents, naming the shape."""
    if x.dim() != 4 or x.size(1) != LATENT_CHANNELS:
        hint = (' It looks like images: build the model without '
                'latent_input (the image config), or read latents with '
                'LatentDataset.' if x.dim() == 4 and x.size(1) == 3 else '')
        raise ValueError(
            f'CI2P with latent_input=True expects codec latents of shape '
            f'[B, {LATENT_CHANNELS}, H/{ENCODER_STRIDE}, W/{ENCODER_STRIDE}]'
            f'; got {list(x.shape)}.{hint}')
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        raise ValueError(
            f'CI2P latents need an even grid (the reshape halves it); got '
            f'{h}x{w}, i.e. images that were not a multiple of '
            f'{TOKEN_STRIDE}.')


def set_latent_input(module: nn.Module, enabled: bool = True) -> nn.Module:
    """Make every :class:`CI2PEncoder` below ``module`` take (or stop taking)
    precomputed latents instead of images. Weights are untouched."""
    for m in module.modules():
        if isinstance(m, CI2PEncoder):
            m.latent_input = enabled
    return module


def check_unit_range(x: torch.Tensor) -> None:
    """Refuse mean/std-normalised or 0-255 input: the codec wants [0, 1]."""
    lo, hi = x.min().item(), x.max().item()
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(
            f'CI2P codecs expect RGB in [0, 1]; this batch spans '
            f'[{lo:.3g}, {hi:.3g}]. Use data_preprocessor='
            f'dict(type="CI2PDataPreprocessor") (or mean=[0, 0, 0], '
            f'std=[255, 255, 255], to_rgb=True) instead of ImageNet mean/std '
            f'normalisation.')


class InplaceGDN(GDN):
    """CompressAI's :class:`~compressai.layers.GDN`, lighter without autograd.

    Same parameters, state dict and result (bit for bit) as ``GDN``. When
    autograd is off (a frozen encoder, ``inference_mode``), the
    normalisation is computed in the convolution's output buffer
    (``rsqrt_``, ``mul_``) instead of two more full-size temporaries: at
    256x256 the first GDN's tensors are ``[B, 128, 128, 128]``, and on CPU
    every fresh tensor of that size costs page faults. With autograd on,
    CompressAI's forward runs unchanged.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return super().forward(x)
        channels = x.size(1)
        beta = self.beta_reparam(self.beta)
        gamma = self.gamma_reparam(self.gamma).reshape(channels, channels, 1,
                                                       1)
        norm = F.conv2d(x * x, gamma, beta)
        norm = norm.sqrt_() if self.inverse else norm.rsqrt_()
        return norm.mul_(x)


def use_inplace_gdn(module: nn.Module) -> nn.Module:
    """Switch every plain ``GDN`` below ``module`` to :class:`InplaceGDN`."""
    for m in module.modules():
        if type(m) is GDN:  # not GDN1 or other subclasses
            m.__class__ = InplaceGDN
    return module


class PatchReshape(nn.Sequential):
    """Two MobileNetV2 inverted residuals: codec latent to ViT tokens.

    ``IR(192 -> 192, hidden 768, 3x3)`` then
    ``IR(192 -> embed_dims, hidden 1152, 5x5, stride 2)``.
    """

    def __init__(self,
                 in_channels: int = LATENT_CHANNELS,
                 embed_dims: int = 768,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU6')):
        super().__init__(
            InvertedResidual(
                in_channels,
                in_channels,
                mid_channels=in_channels * 4,
                kernel_size=3,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg),
            CnnReshape(in_channels, embed_dims, norm_cfg, act_cfg))


class CnnReshape(InvertedResidual):
    """``IR(in -> out, hidden 6*in, 5x5, stride 2)``: halves the token grid."""

    def __init__(self,
                 in_channels: int = LATENT_CHANNELS,
                 out_channels: int = 768,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU6')):
        super().__init__(
            in_channels,
            out_channels,
            mid_channels=in_channels * 6,
            kernel_size=5,
            stride=2,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg)


@MODELS.register_module()
class CI2PEncoder(CodecWeightsMixin, BaseModule):
    """A CompressAI codec's analysis transform ``g_a``, optionally frozen.

    The constructor never reads weights: ``pretrained`` is fetched by
    ``init_weights()`` (the Runner calls it when training starts) or
    arrives with a loaded checkpoint; until then the encoder refuses to run
    (see :mod:`ci2p_mm.models.utils.codec_weights`).

    Args:
        codec (str): CompressAI zoo name. Defaults to
            ``'bmshj2018-factorized'``.
        quality (int): Zoo quality. Defaults to 5 (N=128, M=192).
        pretrained (bool | str): ``True``: CompressAI's published weights
            (downloaded through its zoo by ``init_weights``); ``False``:
            random init; a path: a local CompressAI checkpoint (read by
            ``init_weights``). Defaults to True.
        frozen (bool): No gradients and always eval mode. Defaults to True.
        check_input_range (bool): Check the first batch lies in [0, 1], to
            catch mean/std-normalised input early. Defaults to True.
        channels_last (bool): Run the encoder's convolutions in the
            channels_last (NHWC) memory format, converting the input; the
            output stays NHWC in memory (same shape and values), so the
            layers after it run NHWC too. Faster on CPU (oneDNN) and on
            CUDA with AMP; see docs/benchmark.md. Defaults to False.
        latent_input (bool): ``forward`` takes the codec latents
            ``[B, 192, H/16, W/16]`` that ``g_a`` would compute (stored by
            ``tools/dataset_converters/encode_latents.py``) and returns
            them without running the encoder. The encoder and its weights
            are kept, so checkpoints are those of the image model. Only for
            a frozen encoder. Defaults to False.
    """

    def __init__(self,
                 codec: str = 'bmshj2018-factorized',
                 quality: int = 5,
                 pretrained: Union[bool, str] = True,
                 frozen: bool = True,
                 check_input_range: bool = True,
                 channels_last: bool = False,
                 init_cfg: Optional[dict] = None,
                 latent_input: bool = False):
        super().__init__(init_cfg=init_cfg)
        if latent_input and not frozen:
            raise ValueError('latent_input=True needs frozen=True: stored '
                             'latents cannot train the encoder.')
        self.latent_input = latent_input
        self.check_input_range = check_input_range
        self.codec = check_supported(codec, quality)
        self.quality = quality
        self.frozen = frozen
        self.channels_last = channels_last
        self.encoder = use_inplace_gdn(
            build_codec(self.codec, quality, pretrained=False).g_a)
        self._request_codec_weights(pretrained)
        if channels_last:
            self.encoder.to(memory_format=torch.channels_last)
        self.stages = encoder_stages(self.encoder)
        if frozen:
            freeze(self.encoder)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.encoder.eval()
        return self

    def forward(
        self,
        x: torch.Tensor,
        return_stages: bool = False
    ) -> Union[torch.Tensor, List[torch.Tensor]]:
        """Encode RGB in [0, 1] to the ``[B, 192, H/16, W/16]`` latent.

        With ``return_stages``, return the four levels' maps (strides 2, 4,
        8 and 16), the last being the latent. With ``latent_input``, ``x``
        is the latent already and is returned as it is.
        """
        if self.latent_input:
            if return_stages:
                raise ValueError(
                    "The encoder's intermediate maps (out_indices 'enc_s2', "
                    "'enc_s4', 'enc_s8') cannot come from stored latents; "
                    'train from images for them.')
            check_latent_batch(x)
            return x
        self.check_codec_ready()
        # FLOP counters and exporters trace with placeholder values: check
        # real data only (the check stays armed for the first real batch).
        if self.check_input_range and not is_tracing_or_exporting():
            check_unit_range(x)
            self.check_input_range = False  # once: .item() syncs a GPU
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        # A frozen encoder needs no autograd graph: running it without one
        # saves its activations' memory and the backward bookkeeping.
        with torch.set_grad_enabled(torch.is_grad_enabled()
                                    and not self.frozen):
            if not return_stages:
                return self.encoder(x)
            feats = []
            for stage in self.stages:
                x = stage(x)
                feats.append(x)
            return feats


#: ``patch_cfg`` keys beside :class:`CI2PEncoder`'s own: the settings of the
#: CNN blocks that turn the latent into tokens (``PatchReshape`` under
#: ``CI2PViT``, ``CnnReshape`` under ``DualScaleViT``).
RESHAPE_KEYS = ('norm_cfg', 'act_cfg')


def split_patch_cfg(patch_cfg: dict) -> Tuple[dict, dict]:
    """The one ``patch_cfg`` contract of every CI2P backbone.

    ``patch_cfg`` holds :class:`CI2PEncoder`'s arguments (``codec``,
    ``quality``, ``pretrained``, ``frozen``, ``check_input_range``,
    ``channels_last``, ``latent_input``) and the reshape blocks'
    ``norm_cfg`` / ``act_cfg``. Returns ``(encoder kwargs, reshape
    kwargs)``; any other key is refused, naming the ones that exist.
    """
    patch_cfg = dict(patch_cfg or {})
    # The arguments of CI2PEncoder (init_cfg aside).
    params = inspect.signature(CI2PEncoder.__init__).parameters
    allowed = [name for name in params if name not in ('self', 'init_cfg')]
    unknown = sorted(set(patch_cfg) - set(allowed) - set(RESHAPE_KEYS))
    if unknown:
        raise ValueError(
            f'patch_cfg has {unknown}, which no CI2P backbone takes. It holds '
            f'the codec encoder\'s arguments ({", ".join(allowed)}) and the '
            f'reshape blocks\' ({", ".join(RESHAPE_KEYS)}); see CI2PEncoder.')
    reshape = {k: patch_cfg.pop(k) for k in RESHAPE_KEYS if k in patch_cfg}
    return patch_cfg, reshape


@MODELS.register_module()
class CI2PPatchEmbed(BaseModule):
    """CI2P patch embedding: frozen codec encoder + PatchReshape.

    A drop-in for mmcv's ``PatchEmbed`` in a ViT: ``forward`` returns
    ``(tokens [B, H/32 * W/32, embed_dims], (H/32, W/32))``. Input is RGB
    in [0, 1] with H and W multiples of 32.

    Args:
        embed_dims (int): Token width. Defaults to 768.
        input_size (int | tuple, optional): The expected image size; sets
            ``init_out_size`` for position embeddings. Defaults to None.
        norm_cfg (dict): Norm of the reshape blocks. Defaults to BN.
        act_cfg (dict): Activation of the reshape blocks. Defaults to ReLU6.
        init_cfg (dict, optional): Initialization config.
        **encoder_cfg: Arguments of :class:`CI2PEncoder` (``codec``,
            ``quality``, ``pretrained``, ``frozen``, ``check_input_range``,
            ``channels_last``, ``latent_input``), documented there. With
            ``channels_last`` the reshape blocks run NHWC too; the tokens
            come out contiguous either way.
    """

    def __init__(self,
                 embed_dims: int = 768,
                 input_size: Optional[Union[int, Sequence[int]]] = None,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU6'),
                 init_cfg: Optional[dict] = None,
                 **encoder_cfg):
        super().__init__(init_cfg=init_cfg)
        encoder_cfg, _ = split_patch_cfg(encoder_cfg)
        self.embed_dims = embed_dims
        self.ci2p_encoder = CI2PEncoder(**encoder_cfg)
        self.reshape = PatchReshape(LATENT_CHANNELS, embed_dims, norm_cfg,
                                    act_cfg)
        self.init_out_size = None if input_size is None else tuple(
            side // TOKEN_STRIDE for side in to_2tuple(input_size))

    @property
    def encoder(self) -> nn.Sequential:
        """The codec's ``g_a``."""
        return self.ci2p_encoder.encoder

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        if not self.ci2p_encoder.latent_input:
            check_image_batch(x)
        x = self.reshape(self.ci2p_encoder(x))
        hw = (x.shape[2], x.shape[3])
        return x.flatten(2).transpose(1, 2), hw
