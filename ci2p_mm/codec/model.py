"""A CompressAI codec as an mmengine model trained for rate-distortion.

CompressAI's ``examples/train.py`` step, with its own pieces: the zoo
model class, ``compressai.losses.RateDistortionLoss`` (``lambda * 255^2 *
MSE + bpp``) on the network, and ``compressai.optimizers.
net_aux_optimizer``'s split of the parameters: the entropy bottleneck's
``quantiles`` have an optimizer of their own, stepped on ``aux_loss()``.
mmengine holds the two as an ``OptimWrapperDict`` (``net``, ``aux``) and
the model's ``train_step`` steps both, as mmengine documents for models
with several optimizers (GANs).
"""
import copy
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from compressai.losses import RateDistortionLoss
from compressai.optimizers import net_aux_optimizer
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapperDict
from mmpretrain.registry import (MODELS, OPTIM_WRAPPER_CONSTRUCTORS,
                                 OPTIM_WRAPPERS)

from ci2p_mm.utils.model_config import bare_model
from .zoo import build_codec, canonical_codec_name, load_codec_pretrained


@MODELS.register_module()
class RateDistortionCodec(BaseModel):
    """A CompressAI zoo codec and CompressAI's rate-distortion loss.

    Args:
        codec (str): CompressAI zoo name. Defaults to
            ``'bmshj2018-factorized'``.
        quality (int): Zoo quality (sets N and M). Defaults to 5.
        lmbda (float): Rate-distortion trade-off. Defaults to 0.025 (the
            zoo's for MSE quality 5).
        metric (str): Distortion of the loss, ``'mse'`` or ``'ms-ssim'``;
            also which published weights ``pretrained=True`` takes.
            Defaults to ``'mse'``.
        pretrained (bool | str): Start from CompressAI's published weights
            (True) or a local codec checkpoint (a path), loaded by
            ``init_weights()``. Defaults to False (random).
        data_preprocessor (dict, optional): Defaults to mmengine's
            ``ImgDataPreprocessor`` dividing by 255, BGR to RGB: RGB in
            [0, 1], what CompressAI's models take.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 codec: str = 'bmshj2018-factorized',
                 quality: int = 5,
                 lmbda: float = 0.025,
                 metric: str = 'mse',
                 pretrained: Union[bool, str] = False,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(
            data_preprocessor=data_preprocessor or dict(
                type='ImgDataPreprocessor',
                mean=[0.] * 3,
                std=[255.] * 3,
                bgr_to_rgb=True),
            init_cfg=init_cfg)
        self.codec_name = canonical_codec_name(codec)
        self.quality, self.lmbda, self.metric = quality, lmbda, metric
        self.pretrained = pretrained
        self.codec = build_codec(self.codec_name, quality)
        self.criterion = RateDistortionLoss(lmbda=lmbda, metric=metric)

    def init_weights(self) -> None:
        super().init_weights()
        if self.pretrained:
            load_codec_pretrained(self.codec, self.codec_name, self.quality,
                                  self.pretrained, self.metric)

    def rd_losses(self, out: dict, x: torch.Tensor) -> dict:
        """CompressAI's ``loss`` and ``bpp`` of ``out = codec(x)``, and the
        MSE / PSNR of the clamped reconstruction."""
        losses = self.criterion(out, x)
        mse = F.mse_loss(out['x_hat'].detach().clamp(0, 1), x)
        return dict(
            loss=losses['loss'],
            bpp=losses['bpp_loss'],
            mse=mse,
            psnr=-10 * torch.log10(mse))

    def forward(self,
                inputs: torch.Tensor,
                data_samples=None,
                mode: str = 'tensor') -> Union[torch.Tensor, dict, List]:
        """``'tensor'``: the reconstruction; ``'loss'``: :meth:`rd_losses`
        and ``aux_loss``; ``'predict'``: per image, what
        :class:`~ci2p_mm.codec.metric.RateDistortionMetric` reads."""
        out = self.codec(inputs)
        if mode == 'tensor':
            return out['x_hat']
        if mode == 'loss':
            return dict(
                self.rd_losses(out, inputs), aux_loss=self.codec.aux_loss())
        aux = self.codec.aux_loss().item()
        results = []
        for i in range(len(inputs)):
            one = dict(
                x_hat=out['x_hat'][i:i + 1],
                likelihoods={
                    k: v[i:i + 1]
                    for k, v in out['likelihoods'].items()
                })
            losses = self.criterion(one, inputs[i:i + 1])
            results.append(
                dict(
                    loss=losses['loss'].item(),
                    bpp=losses['bpp_loss'].item(),
                    aux=aux,
                    x=inputs[i].cpu(),
                    x_hat=out['x_hat'][i].clamp(0, 1).cpu()))
        return results

    def train_step(self, data, optim_wrapper: OptimWrapperDict) -> dict:
        """The RD loss steps the network (``net``); then, as in CompressAI's
        example, the aux loss of the updated entropy bottleneck steps its
        quantiles (``aux``)."""
        data = self.data_preprocessor(data, True)
        x = data['inputs']
        log_vars = self.rd_losses(self.codec(x), x)
        optim_wrapper['net'].update_params(log_vars['loss'])
        log_vars['aux_loss'] = self.codec.aux_loss()
        optim_wrapper['aux'].update_params(log_vars['aux_loss'])
        return {k: v.detach() for k, v in log_vars.items()}


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class NetAuxOptimWrapperConstructor:
    """``OptimWrapperDict(net=..., aux=...)`` over the codec's parameters,
    split by ``compressai.optimizers.net_aux_optimizer`` (everything but the
    ``quantiles`` / the ``quantiles``).

    Args:
        optim_wrapper_cfg (dict): ``net`` and ``aux``: each an optim
            wrapper config with its ``optimizer`` (a ``torch.optim`` name
            and its arguments).
        paramwise_cfg (dict, optional): Not supported. Defaults to None.
    """

    def __init__(self,
                 optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None):
        if paramwise_cfg:
            raise ValueError('NetAuxOptimWrapperConstructor: paramwise_cfg '
                             'is not supported.')
        self.cfg = optim_wrapper_cfg

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        model = bare_model(model)
        cfg = copy.deepcopy(dict(self.cfg))
        optimizers = net_aux_optimizer(
            model.codec,
            {k: dict(cfg[k].pop('optimizer'))
             for k in ('net', 'aux')})
        return OptimWrapperDict(
            **{
                k: OPTIM_WRAPPERS.build(dict(cfg[k], optimizer=o))
                for k, o in optimizers.items()
            })


@torch.no_grad()
def data_init(codec: nn.Module,
              batch: torch.Tensor,
              latent_std: float = 1.0) -> str:
    """Data-dependent init of a fresh codec, for short runs.

    At PyTorch's default init ``g_a``'s output has a std of about 0.06,
    far below the std 0.29 of the uniform noise that stands in for
    quantisation: the decoder sees mostly noise until Adam has grown the
    encoder's weights, which takes hundreds of steps. Scaling the last conv
    of ``g_a`` so the latent has ``latent_std`` on ``batch`` skips that
    phase; setting the bias of ``g_s``'s output layer to the batch's mean
    colour starts the reconstruction at the mean instead of black.
    """
    last = list(codec.g_a.children())[-1]
    if not isinstance(last, nn.Conv2d):
        return (f'--data-init skipped: g_a ends in {type(last).__name__}, '
                f'not a convolution')
    std = codec.g_a(batch).std().item()
    scale = latent_std / max(std, 1e-8)
    last.weight.mul_(scale)
    if last.bias is not None:
        last.bias.mul_(scale)
    note = f'--data-init: latent std {std:.3f} -> {latent_std}'
    out = [
        m for m in codec.g_s.modules()
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
    ][-1]
    if out.bias is not None and out.out_channels % 3 == 0:
        # out_channels = 3 * r^2 when a PixelShuffle(r) follows.
        mean = batch.mean((0, 2, 3))
        out.bias.copy_(mean.repeat_interleave(out.out_channels // 3))
        note += ', output bias = mean colour'
    return note


def final_record(model: RateDistortionCodec) -> Dict[str, object]:
    """``codec_final.pth``'s core, CompressAI's checkpoint format: the
    codec's ``state_dict`` after ``update()`` (entropy-coder tables filled
    in) and what it is."""
    model.codec.update(force=True)
    return {
        'state_dict': {
            k: v.detach().cpu()
            for k, v in model.codec.state_dict().items()
        },
        'codec': model.codec_name,
        'quality': model.quality,
        'metric': model.metric,
        'lmbda': model.lmbda,
    }
