"""Check every image of a config's datasets before a long run.

    python tools/misc/verify_dataset.py CONFIG [--split train val test]
        [--cfg-options train_dataloader.dataset.data_root=DIR ...]
        [--workers 8] [--out bad_files.tsv]

Each file is read and decoded exactly as training would (the pipeline's
``SafeLoadImageFromFile`` settings; its defaults when the pipeline uses
another loader), so a FIFO, a device, a link out of the data root or a file
in a format that is not allowed (PostScript named ``.jpg``) is listed, never
read or handed to another program. Lists every bad file with the reason,
prints a summary, and exits with status 1 when any file is bad (2 when a
data set cannot be built).
Validation and test sets that share a configuration are checked once.
"""
import argparse
import json
import os
import sys
from typing import Optional, Sequence

from mmengine.config import DictAction
from mmengine.dataset import BaseDataset
from mmengine.registry import init_default_scope
from mmpretrain.registry import DATASETS
from tqdm.contrib.concurrent import thread_map

from ci2p_mm.utils.cli import at_least, output_file
from ci2p_mm.utils.io import write_text_atomically
from ci2p_mm.utils.model_config import read_config
from .robust import find_loader


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Decode every image of a config\'s datasets and list '
        'the bad ones')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--split',
        nargs='+',
        default=['train', 'val', 'test'],
        choices=['train', 'val', 'test'],
        help='which dataloaders to check (default: all three)')
    workers = min(8, os.cpu_count() or 1)
    parser.add_argument(
        '--workers',
        type=at_least(1),
        default=workers,
        help='decoding threads')
    parser.add_argument(
        '--out',
        type=output_file,
        help='also write the bad files as "path<TAB>reason" here')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. '
        'train_dataloader.dataset.data_root=/data/animals10')
    return parser.parse_args(argv)


def build_all_samples(dataset_cfg: dict,
                      pipeline: Optional[Sequence] = None) -> BaseDataset:
    """The dataset of ``dataset_cfg`` listing every annotated sample: with
    ``skip_bad_images`` an evaluation set would decode its files when built
    and leave the bad ones out unseen. ``pipeline`` replaces the config's
    when given."""
    cfg = dict(dataset_cfg)
    if 'skip_bad_images' in cfg:
        cfg['skip_bad_images'] = False
    if pipeline is not None:
        cfg['pipeline'] = list(pipeline)
    return DATASETS.build(cfg)


def main(argv=None) -> int:
    """Check the config's images; return the exit status (0, 1 or 2)."""
    args = parse_args(argv)
    cfg = read_config(args.config, args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))

    checked = {}  # dataset config -> split that checked it
    summary, all_bad = [], []
    for split in args.split:
        loader_cfg = cfg.get(f'{split}_dataloader')
        if not loader_cfg or not loader_cfg.get('dataset'):
            print(f'[{split}] no {split}_dataloader in the config; skipped.')
            continue
        key = json.dumps(loader_cfg['dataset'], sort_keys=True, default=str)
        if key in checked:
            print(f'[{split}] same dataset as [{checked[key]}]; not checked '
                  f'again.')
            continue
        checked[key] = split
        try:
            dataset = build_all_samples(loader_cfg['dataset'])
        except Exception as err:
            print(
                f'[{split}] cannot build the dataset: '
                f'{type(err).__name__}: {err}',
                file=sys.stderr)
            return 2
        loader = find_loader(dataset.pipeline,
                             getattr(dataset, 'data_root', None))
        if loader not in getattr(dataset.pipeline, 'transforms', []):
            print(f'[{split}] note: the pipeline does not decode with '
                  f'SafeLoadImageFromFile; checking with its defaults '
                  f'({loader!r}).')
        paths = [
            dataset.get_data_info(i)['img_path'] for i in range(len(dataset))
        ]
        # in threads: Pillow decodes without the GIL
        reasons = thread_map(
            loader.check,
            paths,
            max_workers=max(1, args.workers),
            desc=f'[{split}] decoding',
            unit='img',
            file=sys.stderr)
        bad = [(p, r) for p, r in zip(paths, reasons) if r is not None]
        for path, reason in bad:
            print(f'[{split}] BAD {path}: {reason}')
        summary.append((split, type(dataset).__name__, len(paths), len(bad)))
        all_bad += bad

    print('\nSummary:')
    for split, name, total, num_bad in summary:
        print(f'  {split:5s} {name}: {total} images, {num_bad} bad, '
              f'{total - num_bad} good')
    if args.out:
        write_text_atomically(args.out,
                              ''.join(f'{p}\t{r}\n' for p, r in all_bad))
        print(f'Bad files written to {args.out}.')
    if all_bad:
        print(f'{len(all_bad)} bad file(s). Replace or delete them and '
              f'rewrite the annotation files (Animals-10: '
              f'tools/dataset_converters/prepare_animals10.py), or train with '
              f'skip_bad_images=True on the datasets to skip them.')
        return 1
    print('All images decode.')
    return 0
