"""The whole CI2P job on a small built-in data set, on a CPU, in minutes.

    python tools/run_demo.py

1. writes a toy Animals-10 (ten pattern classes, real .jpeg/.jpg/.png files
   in Kaggle's raw-img/<italian class>/ layout) and splits it with
   tools/dataset_converters/prepare_animals10.py;
2. gets codec weights: CompressAI's q5 weights from torch.hub's cache, or
   downloaded through CompressAI's zoo; if that fails (offline), trains a
   codec on the toy images with tools/train_codec.py --quick, and says so;
3. trains a small CI2P-ViT (configs/demo/ci2p_vit_tiny_toy.py) from images;
4. encodes the toy images once with the frozen codec encoder
   (:func:`ci2p_mm.latents.encode`, what
   tools/dataset_converters/encode_latents.py runs) and trains the same model
   from the stored latents (configs/demo/ci2p_vit_tiny_toy_latents.py), so
   every epoch is the ViT alone; its checkpoint is tested on images with
   the image config;
5. trains the matching plain ViT (configs/demo/vit_tiny_toy.py);
6. evaluates every checkpoint with tools/test.py, counts FLOPs, plots the
   curves, and prints top-1, FLOPs, the encode-once cost and the per-epoch
   training time side by side.

Every other step runs the real tool in a subprocess; logs go to
``<work-dir>/logs``.
"""
import argparse
import os
import os.path as osp
import socket
import subprocess
import sys
import time

import mmengine
from mmengine.runner import find_latest_checkpoint
from mmpretrain.registry import MODELS as MODEL_REGISTRY

from ci2p_mm.analysis import model_flops
from ci2p_mm.codec import (CodecWeightsError, download_zoo_weights,
                           zoo_cache_file, zoo_url)
from ci2p_mm.datasets import make_toy_animals10
from ci2p_mm.latents import encode
from ci2p_mm.utils import load_model_config, read_config
from ci2p_mm.utils.cli import at_least
from ci2p_mm.utils.errors import UserError
from ci2p_mm.utils.timing import write_json

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
MODELS = (
    ('CI2P-ViT', 'configs/demo/ci2p_vit_tiny_toy.py'),
    ('CI2P latents', 'configs/demo/ci2p_vit_tiny_toy_latents.py'),
    ('ViT/16', 'configs/demo/vit_tiny_toy.py'),
)
#: The image config that evaluates a latent config's checkpoint.
IMAGE_CONFIG = {
    'configs/demo/ci2p_vit_tiny_toy_latents.py':
    'configs/demo/ci2p_vit_tiny_toy.py'
}
STEPS = 6
IMG_SIZE = 128  # what the demo configs' pipelines resize to
PAPER_MODELS = (
    ('ViT-B/16', 'configs/vit_b16_animals10.py'),
    ('CI2P-ViT-B', 'configs/ci2p_vit_animals10.py'),
)
PAPER_SIZE = 256


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--work-dir',
        default='demo_runs',
        help='where data, checkpoints and logs go')
    parser.add_argument('--epochs', type=at_least(1), default=12)
    # two: a class needs one image for training and one for validation
    parser.add_argument('--images-per-class', type=at_least(2), default=30)
    parser.add_argument(
        '--codec-weights',
        default='auto',
        help="'auto': CompressAI's q5 weights (cached, or downloaded), else "
        "train a codec here; 'zoo': CompressAI's weights or fail; 'train': "
        'always train (no download attempt); or a path to a codec '
        'checkpoint')
    parser.add_argument(
        '--codec-iters',
        type=at_least(1),
        default=None,
        help='codec training iterations (default: --quick)')
    return parser.parse_args(argv)


def run(cmd,
        log_path,
        show=('Epoch(', 'Iter(val)', 'accuracy/top1', 'it/s', 'PSNR')):
    """Run a tool, stream its key lines, keep the full log; fail loudly."""
    print('  $ ' + ' '.join(cmd), flush=True)
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(
            [sys.executable] + cmd,
            cwd=REPO,
            # A pipe makes the tool's stdout block-buffered: without this
            # its progress would arrive in bursts, minutes late.
            env=dict(os.environ, PYTHONUNBUFFERED='1'),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1)
        for line in proc.stdout:
            log.write(line)
            if any(key in line for key in show):
                # mmengine's prefix (date, logger, level) is in the log
                text = line.rstrip().split(' - INFO - ', 1)[-1]
                print('    ' + text, flush=True)
        if proc.wait():
            raise UserError(f'step failed (exit {proc.returncode}); see '
                            f'{log_path}')


def codec_weights(args, raw_dir, logs):
    """Return (pretrained value for patch_cfg, a sentence saying which)."""
    choice = args.codec_weights
    if choice in ('auto', 'zoo'):
        path = zoo_cache_file(zoo_url('bmshj2018-factorized', 5))
        cached = osp.isfile(path)
        if not cached:
            print(
                "  downloading CompressAI's q5 weights through its zoo ...",
                flush=True)
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(30)  # a firewall that drops packets
        try:  # checks the file in torch.hub's cache, or fetches it there
            download_zoo_weights('bmshj2018-factorized', 5)
            where = 'torch.hub cache: ' if cached else 'downloaded to '
            return True, f"CompressAI's published q5 weights ({where}{path})"
        except CodecWeightsError as err:  # one line: why it failed
            print(f'  {err}')
        finally:
            socket.setdefaulttimeout(previous)
        if choice == 'zoo':
            raise UserError('--codec-weights zoo: no CompressAI weights.')
    elif choice != 'train':
        return osp.abspath(choice), f'the codec checkpoint {choice}'
    work = osp.join(args.work_dir, 'codec')
    cmd = [
        'tools/train_codec.py', raw_dir, '--work-dir', work, '--quick',
        '--no-progress'
    ]
    if args.codec_iters:
        cmd += ['--iters', str(args.codec_iters)]
    print('  No CompressAI weights: training a codec on the toy images with '
          'tools/train_codec.py --quick (CI2P then uses its g_a).')
    run(cmd, osp.join(logs, 'train_codec.log'))
    path = osp.abspath(osp.join(work, 'codec_final.pth'))
    return path, (f'a bmshj2018-factorized q5 codec trained here on the toy '
                  f'images by tools/train_codec.py --quick ({path}), not '
                  f"CompressAI's published weights")


def config_flops(config, size):
    """FLOPs and params of a config's model at ``size`` x ``size``."""
    # no_pretrained: FLOPs do not depend on the codec weights
    cfg = load_model_config(osp.join(REPO, config), no_pretrained=True)
    counted = model_flops(
        MODEL_REGISTRY.build(cfg.model), (size, size), by_module=True)
    by_module = counted.pop('by_module')
    counted['encoder_flops'] = next(
        (flops for name, flops in by_module.items()
         if name.endswith('patch_embed.ci2p_encoder')), 0)
    return counted


def data_settings(config, data_root, epochs, pretrained):
    """Settings pointing a demo config at the toy data and codec."""
    latent = config in IMAGE_CONFIG
    field = 'dataset.source.data_root' if latent else 'dataset.data_root'
    settings = {
        f'{split}_dataloader.{field}': data_root
        for split in ('train', 'val', 'test')
    }
    settings['train_cfg.max_epochs'] = epochs
    if 'ci2p' in config:
        settings['model.backbone.patch_cfg.pretrained'] = pretrained
    return settings


def as_cfg_options(settings):
    """``--cfg-options`` arguments of :func:`data_settings`."""
    return [
        f'{key}={value!r}' if isinstance(value, str) else f'{key}={value}'
        for key, value in settings.items()
    ]


def train_and_test(config, args, data_root, pretrained, logs):
    """Train ``config`` (a latent config: after encoding once), test the
    checkpoint (a latent config's: on images, with the image config)."""
    work = osp.join(args.work_dir, osp.splitext(osp.basename(config))[0])
    settings = data_settings(config, data_root, args.epochs, pretrained)
    opts = as_cfg_options(settings)
    result = dict(config=config, work_dir=work, opts=opts, encode_time=None)
    if config in IMAGE_CONFIG:
        tic = time.time()
        print(f'  encoding the images once: ci2p_mm.latents.encode({config})')
        encode(
            read_config(osp.join(REPO, config), settings),
            num_workers=0,
            progress=False)
        result['encode_time'] = time.time() - tic
        print(f'  encoded once in {result["encode_time"]:.1f} s; every '
              f'epoch now skips the encoder')
    tic = time.time()
    run(['tools/train.py', config, '--work-dir', work, '--cfg-options'] + opts,
        osp.join(logs, f'train_{osp.basename(work)}.log'))
    result['train_time'] = time.time() - tic
    result['checkpoint'] = find_latest_checkpoint(work)
    test_config = IMAGE_CONFIG.get(config, config)
    if test_config != config:
        print(f'  testing its checkpoint on images with {test_config}')
    metrics_file = osp.join(work, 'test_metrics.pkl')
    run([
        'tools/test.py', test_config, result['checkpoint'], '--work-dir', work,
        '--out', metrics_file, '--out-item', 'metrics', '--cfg-options'
    ] + as_cfg_options(
        data_settings(test_config, data_root, args.epochs, pretrained)),
        osp.join(logs, f'test_{osp.basename(work)}.log'))
    result['top1'] = mmengine.load(metrics_file)['accuracy/top1']
    return result


def print_table(results, epochs):
    base = results['ViT/16']
    header = (f'{"model":<14}{"top-1 %":>8}{"GFLOPs":>8}{"vs ViT":>8}'
              f'{"params M":>9}{"encode once s":>14}{"s/epoch":>9}'
              f'{"vs ViT":>8}')
    print(header + '\n' + '-' * len(header))
    for name, r in results.items():
        once = ('-' if r['encode_time'] is None else f'{r["encode_time"]:.1f}')
        print(f'{name:<14}{r["top1"]:>8.2f}{r["flops"] / 1e9:>8.3f}'
              f'{r["flops"] / base["flops"]:>7.2f}x'
              f'{r["params"] / 1e6:>9.2f}{once:>14}'
              f'{r["train_time"] / epochs:>9.1f}'
              f'{r["train_time"] / base["train_time"]:>7.2f}x')
    print('GFLOPs per training image (forward); CI2P latents: without the '
          'encoder, which ran once (encode once s). s/epoch: tools/train.py '
          'wall time / epochs, validation (for CI2P, after its PreciseBNHook '
          'pass) and start-up included.')


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.time()
    args.work_dir = osp.abspath(args.work_dir)
    logs = osp.join(args.work_dir, 'logs')
    os.makedirs(logs, exist_ok=True)
    data_root = osp.join(args.work_dir, 'toy_animals10')

    print(f'[1/{STEPS}] Toy Animals-10: writing images and the split')
    raw_dir = make_toy_animals10(data_root, args.images_per_class, IMG_SIZE)
    run([
        'tools/dataset_converters/prepare_animals10.py', raw_dir, data_root,
        '--seed', '0'
    ],
        osp.join(logs, 'prepare.log'),
        show=('total', ))

    print(f'[2/{STEPS}] Codec weights')
    pretrained, codec_note = codec_weights(args, raw_dir, logs)
    print(f'  using {codec_note}')

    results = {}
    for step, (name, config) in enumerate(MODELS, 3):
        print(f'[{step}/{STEPS}] Training {name} ({config}), '
              f'{args.epochs} epochs')
        results[name] = train_and_test(config, args, data_root, pretrained,
                                       logs)

    print(f'[{STEPS}/{STEPS}] FLOPs and curves')
    for res in results.values():
        image_config = IMAGE_CONFIG.get(res['config'], res['config'])
        res.update(config_flops(image_config, IMG_SIZE))
        if res['config'] in IMAGE_CONFIG:  # the encoder ran once, not here
            res['flops'] -= res['encoder_flops']
    plot = osp.join(args.work_dir, 'curves.png')
    run(['tools/analysis_tools/plot_curves.py'] +
        [r['work_dir'] for r in results.values()] + ['--labels'] +
        list(results) + ['--out', plot],
        osp.join(logs, 'plot.log'),
        show=('Wrote', ))

    print(f'\nToy Animals-10, {IMG_SIZE}x{IMG_SIZE}, '
          f'{args.epochs} epochs, CPU. Codec: {codec_note}.')
    print_table(results, args.epochs)
    # FLOPs of the paper's ViT-B/16 and CI2P-ViT-B at 256x256.
    paper = {
        name: config_flops(config, PAPER_SIZE)['flops']
        for name, config in PAPER_MODELS
    }
    print(f'\nAt the paper\'s size (ViT-B, {PAPER_SIZE}x{PAPER_SIZE}): '
          f'CI2P-ViT-B {paper["CI2P-ViT-B"] / 1e9:.2f} GFLOPs vs ViT-B/16 '
          f'{paper["ViT-B/16"] / 1e9:.2f} '
          f'({100 * (paper["CI2P-ViT-B"] / paper["ViT-B/16"] - 1):+.0f}%). '
          'The toy models are DeiT-tiny wide at 128x128, where the codec '
          "encoder's fixed cost outweighs the tokens it saves when it runs "
          'every epoch (the CI2P-ViT row); encoded once, CI2P trains '
          'cheaper than its ViT (the CI2P latents row). See the README\'s '
          'FLOPs and speed tables for the ViT-B scale.')
    summary = osp.join(args.work_dir, 'demo_results.json')
    write_json(
        summary,
        dict(
            codec=codec_note,
            img_size=IMG_SIZE,
            epochs=args.epochs,
            results=results,
            paper_size_flops=paper),
        quiet=True)
    print(f'\nCurves: {plot}\nResults: {summary}\n'
          f'Total wall time: {time.time() - start:.0f} s')
    return 0
