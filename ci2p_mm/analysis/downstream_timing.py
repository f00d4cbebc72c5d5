"""Forward / backward / predict times (and FLOPs) of the downstream models.

Builds each configs/downstream config (no codec download, no pretrained
checkpoint), feeds a generated batch and reports median wall times of
``loss`` (data preprocessor + forward), ``backward`` and ``predict``, and
with ``--flops`` the FLOPs of one image (ci2p_mm.analysis.flops: one
multiply-add is one FLOP, attention included)::

    python tools/analysis_tools/downstream_timing.py     # det, pose and seg
    python tools/analysis_tools/downstream_timing.py --det-size 800 1344 \
        --configs configs/downstream/retinanet_ci2p-vit-ds-b_fpn_1x_coco.py

Needs the downstream extras (tools/misc/install_mmcv_full.sh).
"""
import argparse
import importlib
import json
import os.path as osp
import sys

import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData

from ci2p_mm.utils import set_patch_options
from ci2p_mm.utils.cli import at_least
from ci2p_mm.utils.timing import (format_table, interleave, tool_options,
                                  write_json)
from .flops import model_flops
from .timing import check_input_size

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIGS = [
    'configs/downstream/retinanet_ci2p-vit-ds-b_fpn_1x_coco.py',
    'configs/downstream/retinanet_ci2p-vit-b_simple-pyramid-fpn_1x_coco.py',
    'configs/downstream/td-hm_ci2p-vit-ds-b_8xb64-210e_coco-256x192.py',
    'configs/downstream/segnetr_1xb8-20k_isic2017-224x224.py',
    'configs/downstream/upernet_ci2p-vit-ds-b_1xb8-20k_isic2017-224x224.py',
    'configs/downstream/upernet_ci2p-vit-ds-b_8xb2-160k_ade20k-512x512.py',
]

#: The input size options: default and help.
SIZE_OPTIONS = {
    '--det-size': ([512, 512], 'detection image size (multiples of 32)'),
    '--pose-size': ([256, 192], "pose crop size (the config's is 256x192)"),
    '--seg-size':
    (None, "segmentation image size (default: the config's crop size)"),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        parents=[
            tool_options('--batch-size', '--repeats', '--warmup', '--threads',
                         '--out')
        ])
    parser.set_defaults(batch_size=2, repeats=3, warmup=1)
    parser.add_argument('--configs', nargs='+', default=DEFAULT_CONFIGS)
    for flag, (default, text) in SIZE_OPTIONS.items():
        parser.add_argument(
            flag,
            type=at_least(1),
            nargs=2,
            default=default,
            metavar=('H', 'W'),
            help=text)
    parser.add_argument(
        '--flops', action='store_true', help='also count FLOPs of one image')
    parser.add_argument('--arch', help='override the backbone arch')
    args = parser.parse_args(argv)
    for flag in SIZE_OPTIONS:
        size = getattr(args, flag[2:].replace('-', '_'))
        if size:
            check_input_size(
                f'{flag} {size[0]} {size[1]} --batch-size '
                f'{args.batch_size}', size, args.batch_size)
    return args


def build(config, arch):
    cfg = Config.fromfile(osp.join(REPO, config))  # absolute ones as they are
    set_patch_options(cfg, pretrained=False)  # CI2P backbones only
    cfg.model.backbone.init_cfg = None
    if arch:
        cfg.model.backbone.arch = arch
    scope = cfg.get('default_scope')
    if scope not in ('mmdet', 'mmpose', 'mmseg'):
        raise ValueError(f'{config}: default_scope {scope!r} is not mmdet, '
                         f'mmpose or mmseg')
    init_default_scope(scope)
    registry = importlib.import_module(f'{scope}.registry')
    torch.manual_seed(0)
    # SyncBN (mmseg's UPerNet bases) needs a process group: plain BN here
    model = revert_sync_batchnorm(registry.MODELS.build(cfg.model))
    model.init_weights()
    return scope, model, cfg


def make_seg_batch(batch_size, size, num_classes):
    """Random uint8 images and label maps, as mmseg's PackSegInputs gives."""
    from mmseg.structures import SegDataSample
    h, w = size
    inputs, samples = [], []
    for _ in range(batch_size):
        inputs.append(torch.randint(0, 256, (3, h, w), dtype=torch.uint8))
        sample = SegDataSample(
            metainfo=dict(
                img_shape=(h, w),
                ori_shape=(h, w),
                pad_shape=(h, w),
                padding_size=[0, 0, 0, 0]))
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, num_classes, (1, h, w)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def make_batch(scope, args, model, cfg):
    if scope == 'mmseg':
        size = tuple(args.seg_size or cfg.crop_size)
        if not args.seg_size:  # parse_args checked --seg-size
            check_input_size(
                f'{cfg.filename}: crop_size {size} --batch-size '
                f'{args.batch_size}', size, args.batch_size)
        return make_seg_batch(args.batch_size, size,
                              model.decode_head.num_classes), size
    if scope == 'mmdet':
        from mmdet.testing import demo_mm_inputs
        h, w = args.det_size
        return demo_mm_inputs(
            batch_size=args.batch_size, image_shapes=(3, h, w),
            num_classes=80), (h, w)
    from mmpose.testing import get_packed_inputs
    h, w = args.pose_size
    return get_packed_inputs(
        batch_size=args.batch_size,
        img_shape=(h, w),
        input_size=(w, h),
        heatmap_size=(w // 4, h // 4),
        with_simcc_label=False), (h, w)


def time_steps(model, batch, repeats: int, warmup: int) -> dict:
    """Median seconds of ``loss_forward`` (train mode, zero_grad, data
    preprocessor, ``mode='loss'``, ``parse_losses``), ``backward`` (of that
    loss) and ``predict`` (eval mode, no_grad, data preprocessor,
    ``mode='predict'``) of an OpenMMLab model on ``batch``, in
    ``warmup + repeats`` rounds of the three."""
    state = {}

    def loss_forward():
        model.train()
        model.zero_grad(set_to_none=True)
        data = model.data_preprocessor(batch, True)
        state['loss'] = model.parse_losses(model(**data, mode='loss'))[0]

    def backward():
        state['loss'].backward()

    def predict():
        model.eval()
        with torch.no_grad():
            model(**model.data_preprocessor(batch, False), mode='predict')

    steps = dict(loss_forward=loss_forward, backward=backward, predict=predict)
    timings = interleave(steps, repeats, warmup)
    return {f'{name}_s': round(t.median, 3) for name, t in timings.items()}


def measure(config, args):
    scope, model, cfg = build(config, args.arch)
    batch, size = make_batch(scope, args, model, cfg)
    result = dict(
        config=osp.basename(config),
        backbone=f'{type(model.backbone).__name__}'
        f'({args.arch or "as configured"})',
        params_m=round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        trainable_params_m=round(
            sum(p.numel()
                for p in model.parameters() if p.requires_grad) / 1e6, 1),
        batch=args.batch_size,
        image=f'{size[0]}x{size[1]}',
        **time_steps(model, batch, args.repeats, args.warmup))
    if args.flops:
        result['flops_g'] = round(model_flops(model, size)['flops'] / 1e9, 2)
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import ci2p_mm.downstream  # noqa: F401
    results = []
    print(
        f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
        f'CPU; median of {args.repeats} after {args.warmup} warm-up',
        file=sys.stderr)
    for config in args.configs:
        results.append(measure(config, args))
        print(json.dumps(results[-1]), file=sys.stderr)
    cols = [
        'config', 'backbone', 'params_m', 'batch', 'image', 'loss_forward_s',
        'backward_s', 'predict_s'
    ]
    if args.flops:
        cols.insert(5, 'flops_g')
    print(
        format_table(
            cols, [[res[c] for c in cols] for res in results], markdown=True))
    write_json(args.out, results)
    return 0
