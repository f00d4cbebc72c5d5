"""How close a codec's reconstructions are: per image, and as mmengine's
validation metric of codec training."""
import math
from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmpretrain.registry import METRICS
from pytorch_msssim import ms_ssim, ssim

#: MS-SSIM downsamples four times with an 11-px window: sides over 160 px.
MS_SSIM_MIN_SIDE = 161


def image_metrics(x: torch.Tensor, x_hat: torch.Tensor) -> Dict[str, float]:
    """PSNR, MS-SSIM (None under 161 px) and SSIM on 8-bit RGB."""
    org, rec = ((t * 255).clamp(0, 255).round() for t in (x, x_hat))
    mse = (org - rec).pow(2).mean().item()
    psnr = 10 * math.log10(255**2 / mse) if mse > 0 else float('inf')
    side = min(x.shape[-2:])
    msssim = (
        ms_ssim(org, rec, data_range=255).item()
        if side >= MS_SSIM_MIN_SIDE else None)
    ssim_v = ssim(org, rec, data_range=255).item() if side >= 11 else None
    return {'psnr': psnr, 'ms_ssim': msssim, 'ssim': ssim_v}


@METRICS.register_module()
class RateDistortionMetric(BaseMetric):
    """Means over the validation images of what
    :class:`~ci2p_mm.codec.model.RateDistortionCodec` predicts for each.

    ``loss`` (CompressAI's rate-distortion loss), ``bpp`` (the entropy
    model's estimate with the latent rounded, as ``compress()`` would code
    it), ``aux`` (the entropy bottleneck's aux loss), ``mse`` (on [0, 1]),
    and :func:`image_metrics` on 8-bit RGB as CompressAI's ``eval_model``
    computes them: ``psnr``, ``ssim`` and, for crops over 160 px,
    ``ms_ssim``. A key that no image has is left out. Keys are prefixed
    ``codec/`` (``codec/psnr``, ...).
    """

    default_prefix = 'codec'

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            x, x_hat = sample['x'][None], sample['x_hat'][None]
            self.results.append(
                dict(
                    loss=sample['loss'],
                    bpp=sample['bpp'],
                    aux=sample['aux'],
                    mse=F.mse_loss(x_hat, x).item(),
                    **image_metrics(x, x_hat)))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        columns = {
            key: [r[key] for r in results if r[key] is not None]
            for key in results[0]
        }
        return {k: sum(v) / len(v) for k, v in columns.items() if v}
