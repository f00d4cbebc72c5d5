"""What a codec keeps: bpp, PSNR and MS-SSIM per image, and picture panels.

    python tools/analysis_tools/codec_report.py \
        work_dirs/codec/codec_final.pth data/my_images --out-dir report/
    # CompressAI's published weights (online): CHECKPOINT = pretrained
    python tools/analysis_tools/codec_report.py pretrained data/my_images \
        --out-dir report/ --codec bmshj2018-factorized --quality 5

Each image is padded to a multiple of 64 the way CompressAI's
``compressai.utils.eval_model`` pads (``compressai.ops.compute_padding``:
centered, zeros), compressed to a real bitstream with ``model.compress()``,
decompressed, and un-padded. ``bpp`` is the bitstream's length in bits over
the original image's pixels. If entropy coding is not possible (or with
``--estimate``), ``bpp`` is the entropy model's estimate from the
likelihoods instead; the ``bpp_mode`` column says which. As in
``eval_model``, the entropy-coder tables are recomputed with
``model.update(force=True)`` first (``--no-update`` keeps the file's).

PSNR and MS-SSIM are computed on 8-bit RGB (as ``eval_model`` does).
MS-SSIM needs both sides above 160 px (four downsamplings of an 11-px
window); for smaller images it is left empty and single-scale SSIM (also
reported for every image) is the structural measure.

Writes ``report.csv``, ``report.json`` and ``panels/<image>.png``: original
| reconstruction | latent energy (mean of y^2 over g_a's channels, per
latent position: what CI2P's patches see) | estimated bits per latent
position.
"""
import argparse
import csv
import math
import os
import os.path as osp
import warnings
from typing import Optional

import torch
import torch.nn.functional as F
from compressai.ops import compute_padding
from matplotlib.figure import Figure
from torchvision.transforms import functional as TF

from ci2p_mm.utils.cli import at_least, torch_device
from ci2p_mm.utils.image_files import list_images, load_rgb
from ci2p_mm.utils.io import atomic_output, check_writable_dir
from ci2p_mm.utils.timing import format_table, write_json
from .metric import MS_SSIM_MIN_SIDE, image_metrics
from .zoo import (build_codec, canonical_codec_name, load_codec_state_dict,
                  load_into_codec, read_checkpoint, recorded_codec)

PAD_MULTIPLE = 64  # eval_model: "pad to allow 6 strides of 2"
COLUMNS = [
    'image', 'width', 'height', 'bpp', 'bpp_mode', 'psnr', 'ms_ssim', 'ssim'
]
#: The columns averaged over the images (the MEAN row, report.json).
AVERAGED = ('bpp', 'psnr', 'ms_ssim', 'ssim')


def load_codec(checkpoint: str,
               codec: Optional[str],
               quality: Optional[int],
               metric: str = 'mse'):
    """Build the codec; codec/quality default to what the file records
    (else bmshj2018-factorized, quality 5)."""
    loaded = None  # the file, read once; a clear error if truncated/corrupt
    if checkpoint != 'pretrained':
        loaded = read_checkpoint(checkpoint)
    recorded = loaded is not None and recorded_codec(loaded, checkpoint)
    default_codec, default_quality = recorded or ('bmshj2018-factorized', 5)
    codec = canonical_codec_name(codec or default_codec)
    quality = default_quality if quality is None else int(quality)
    model = build_codec(codec, quality, loaded is None, metric)
    if loaded is not None:
        load_into_codec(
            model, load_codec_state_dict(checkpoint, codec, quality, loaded),
            checkpoint, codec, quality)
    return model, codec, quality


@torch.no_grad()
def code_image(model, x: torch.Tensor, estimate: bool) -> dict:
    """Pad, code, un-pad one ``[1, 3, H, W]`` image; bpp over H*W pixels."""
    h, w = x.shape[-2:]
    pad, unpad = compute_padding(h, w, min_div=PAD_MULTIPLE)
    x_pad = F.pad(x, pad, mode='constant', value=0)
    num_pixels = h * w
    out_net = model(x_pad)  # eval mode: rounded latent, its likelihoods
    lk_y = out_net['likelihoods'].get('y')
    bits_map = -torch.log2(lk_y).sum(1)[0] if lk_y is not None else None
    est_bpp = sum(-torch.log2(lk).sum().item()
                  for lk in out_net['likelihoods'].values()) / num_pixels
    result = dict(bpp_mode='estimated', bpp=est_bpp, x_hat=out_net['x_hat'])
    if not estimate:
        try:
            enc = model.compress(x_pad)
            dec = model.decompress(enc['strings'], enc['shape'])
            nbits = 8 * sum(len(s[0]) for s in enc['strings'])
            result = dict(
                bpp_mode='actual', bpp=nbits / num_pixels, x_hat=dec['x_hat'])
        except Exception as err:  # no entropy coder, tables missing, ...
            warnings.warn(f'compress() failed ({type(err).__name__}: '
                          f'{err}); reporting estimated bpp.')
    result['x_hat'] = F.pad(result['x_hat'], unpad).clamp(0, 1)
    y = model.g_a(x_pad)
    # Latent positions covering the original (un-padded) image.
    left, _, top, _ = pad
    s = x_pad.shape[-2] // y.shape[-2]  # 16
    rows = slice(top // s, math.ceil((top + h) / s))
    cols = slice(left // s, math.ceil((left + w) / s))
    result['energy'] = y.pow(2).mean(1)[0][rows, cols]
    result['bits'] = bits_map[rows, cols] if bits_map is not None else None
    result['latent_shape'] = tuple(y.shape[1:])
    return result


def save_panel(path: str, name: str, x: torch.Tensor, coded: dict,
               metrics: dict) -> None:
    h, w = x.shape[-2:]
    extent = (0, w, h, 0)
    maps = [('latent energy: mean $y^2$ over '
             f'{coded["latent_shape"][0]} ch', coded['energy'], 'magma')]
    if coded['bits'] is not None:
        maps.append(
            ('est. bits per latent position', coded['bits'], 'viridis'))
    n = 2 + len(maps)
    # A Figure of its own (no pyplot): no global backend, no GUI.
    fig = Figure(figsize=(3.2 * n, 3.6))
    axes = fig.subplots(1, n)
    axes[0].imshow(x[0].permute(1, 2, 0).numpy())
    axes[0].set_title('original')
    axes[1].imshow(coded['x_hat'][0].permute(1, 2, 0).numpy())
    axes[1].set_title(f'reconstruction\n{coded["bpp"]:.3f} bpp '
                      f'({coded["bpp_mode"]}), {metrics["psnr"]:.2f} dB')
    for ax, (title, data, cmap) in zip(axes[2:], maps):
        im = ax.imshow(
            data.numpy(), cmap=cmap, extent=extent, interpolation='nearest')
        ax.set_title(title, fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(name, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _mean(rows, key) -> Optional[float]:
    vals = [
        r[key] for r in rows if r[key] is not None and math.isfinite(r[key])
    ]
    return sum(vals) / len(vals) if vals else None


def _cell(v) -> str:
    if v is None:
        return '-'
    return f'{v:.4f}' if isinstance(v, float) else str(v)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='bpp / PSNR / MS-SSIM and picture panels of a codec '
        'on an image folder (docs/codec.md).')
    add = parser.add_argument
    add('checkpoint',
        help='codec checkpoint (e.g. codec_final.pth from '
        'tools/train_codec.py, or a CompressAI zoo file); "pretrained" '
        "downloads CompressAI's weights")
    add('image_dir', help='images (searched recursively)')
    add('--out-dir', required=True)
    add('--codec',
        help='zoo name (default: the checkpoint\'s, else '
        'bmshj2018-factorized)')
    add('--quality', type=int, help="default: the checkpoint's, else 5")
    add('--metric',
        default='mse',
        choices=['mse', 'ms-ssim'],
        help='which published weights "pretrained" gets')
    add('--max-images', type=at_least(1))
    add('--max-panels',
        type=at_least(0),
        default=16,
        help='0: none (default 16)')
    add('--estimate', action='store_true', help='no entropy coding')
    add('--no-update', action='store_true', help="keep the file's tables")
    add('--device',
        type=torch_device,
        default='cpu',
        help='cpu (default) or cuda')
    return parser.parse_args(argv)


def report(args) -> dict:
    check_writable_dir(args.out_dir, '--out-dir')  # before any coding
    files = list_images(args.image_dir)[:args.max_images]
    model, codec, quality = load_codec(args.checkpoint, args.codec,
                                       args.quality, args.metric)
    model = model.to(args.device).eval()
    if not args.no_update:
        model.update(force=True)
    os.makedirs(osp.join(args.out_dir, 'panels'), exist_ok=True)

    rows = []
    for i, path in enumerate(files):
        x = TF.to_tensor(load_rgb(path)).unsqueeze(0)
        coded = code_image(model, x.to(args.device), args.estimate)
        coded = {
            k: v.cpu() if isinstance(v, torch.Tensor) else v
            for k, v in coded.items()
        }
        metrics = image_metrics(x, coded['x_hat'])
        name = osp.relpath(path, args.image_dir)
        rows.append({
            'image': name,
            'width': x.shape[-1],
            'height': x.shape[-2],
            'bpp': coded['bpp'],
            'bpp_mode': coded['bpp_mode'],
            **metrics
        })
        if i < args.max_panels:
            stem = osp.splitext(name)[0].replace(os.sep, '__')
            save_panel(
                osp.join(args.out_dir, 'panels', f'{stem}.png'), name, x,
                coded, metrics)

    means = {k: _mean(rows, k) for k in AVERAGED}
    modes = '/'.join(sorted({r['bpp_mode'] for r in rows}))
    mean = dict(image='MEAN', width=None, height=None, bpp_mode=modes, **means)
    print(f'{codec} quality {quality} from {args.checkpoint}: '
          f'{len(rows)} images, padded to multiples of {PAD_MULTIPLE}.')
    print(
        format_table(COLUMNS,
                     [[_cell(r[c]) for c in COLUMNS] for r in rows + [mean]]))
    if any(r['ms_ssim'] is None for r in rows):
        print(f'MS-SSIM "-": image side under {MS_SSIM_MIN_SIDE} px '
              f'(4 downsamplings of an 11-px window); see SSIM.')

    csv_path = osp.join(args.out_dir, 'report.csv')
    with atomic_output(csv_path) as tmp, open(tmp, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows + [mean])
    result = {
        'checkpoint': args.checkpoint,
        'codec': codec,
        'quality': quality,
        'bpp_mode': modes,
        'padding': f'zeros, centered, to a multiple of {PAD_MULTIPLE} '
        '(compressai.utils.eval_model); bpp over original pixels',
        'mean': means,
        'images': rows,
    }
    write_json(osp.join(args.out_dir, 'report.json'), result, quiet=True)
    print(f'Wrote {csv_path}, report.json and '
          f'{min(len(rows), args.max_panels)} panels in '
          f'{osp.join(args.out_dir, "panels")}.')
    return result


def main(argv=None) -> int:
    """``tools/analysis_tools/codec_report.py``: parse ``argv``, write the
    report."""
    report(parse_args(argv))
    return 0
