"""Animals-10 (Kaggle ``alessiocorrado99/animals10``) and its split.

The split is written by ``tools/dataset_converters/prepare_animals10.py``
(:func:`main` here)::

    python tools/dataset_converters/prepare_animals10.py \
        data/animals10/raw-img data/animals10 --val-ratio 0.2 --seed 0

which reads Kaggle's ``raw-img/<italian class>/`` folders as downloaded and
writes ``OUT_DIR/meta/{train,val,classes}.txt`` and ``split.json`` (each
file atomically, once the whole split is known). Images are not copied:
annotation paths point at them, relative to OUT_DIR. Image files that
cannot be listed (a name that is not UTF-8, a FIFO or device, a link out of
raw-img) are left out and named; ``--strict`` refuses them.
"""
import argparse
import json
import os
import os.path as osp
import random
import stat
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

from mmpretrain.datasets import CustomDataset
from mmpretrain.registry import DATASETS

from ci2p_mm.utils.errors import UserError, listing
from ci2p_mm.utils.image_files import is_inside
from ci2p_mm.utils.io import printable_path, write_text_atomically
from .annotations import annotation_problem
from .robust import SkipBadImagesMixin

#: Kaggle's Italian folder names and the English class names. Label i is
#: the i-th folder in sorted order, which is also this order.
ITALIAN_TO_ENGLISH = OrderedDict([('cane', 'dog'), ('cavallo', 'horse'),
                                  ('elefante', 'elephant'),
                                  ('farfalla', 'butterfly'),
                                  ('gallina', 'chicken'), ('gatto', 'cat'),
                                  ('mucca', 'cow'), ('pecora', 'sheep'),
                                  ('ragno', 'spider'),
                                  ('scoiattolo', 'squirrel')])
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')
HOW_TO_DOWNLOAD = (
    'Download the Kaggle data set "alessiocorrado99/animals10" (e.g. '
    '`kaggle datasets download -d alessiocorrado99/animals10`), unzip it, '
    'then run `python tools/dataset_converters/prepare_animals10.py '
    'PATH/raw-img data/animals10`')


@DATASETS.register_module()
class Animals10(SkipBadImagesMixin, CustomDataset):
    """Animals-10 read through annotation files written by
    ``tools/dataset_converters/prepare_animals10.py``.

    Each annotation line is ``<image path relative to data_root> <label>``.

    Args:
        data_root (str): Folder with ``meta/{train,val}.txt``. Defaults to
            ``'data/animals10'``.
        split (str): ``'train'`` or ``'val'``; selects
            ``meta/<split>.txt`` unless ``ann_file`` is given.
        ann_file (str): Annotation file, relative to ``data_root``.
        skip_bad_images (bool): Skip files that ``SafeLoadImageFromFile``
            refuses instead of stopping (see :mod:`ci2p_mm.datasets.robust`).
            Defaults to False.
        **kwargs: Other :class:`CustomDataset` arguments (``pipeline``, ...).
    """
    METAINFO = {'classes': tuple(ITALIAN_TO_ENGLISH.values())}

    def __init__(self,
                 data_root: str = 'data/animals10',
                 split: str = 'train',
                 ann_file: str = '',
                 **kwargs):
        self.split = split
        super().__init__(
            data_root=data_root,
            ann_file=ann_file or osp.join('meta', f'{split}.txt'),
            **kwargs)

    def load_data_list(self):
        if not osp.exists(self.ann_file):
            raise DatasetNotPreparedError(
                f'Animals-10 {self.split} annotations not found: looked for '
                f'{osp.abspath(self.ann_file)}.')
        # SkipBadImagesMixin reads it strictly (file and line on errors).
        return super().load_data_list()


class DatasetNotPreparedError(UserError, FileNotFoundError):
    """The annotation files or the downloaded folders are missing.

    The message ends with what to do, naming the config key that sets the
    data root: ``data_root_key`` under ``<split>_dataloader`` (a dataset
    that wraps this one, like ``LatentDataset``'s ``source``, changes it).
    """

    def __init__(self,
                 problem: str,
                 data_root_key: Optional[str] = 'dataset.data_root'):
        super().__init__(problem)
        self.problem = problem
        self.data_root_key = data_root_key

    def __str__(self) -> str:
        if self.data_root_key is None:  # no config involved: prepare tool
            return f'{self.problem} {HOW_TO_DOWNLOAD}.'
        return (f'{self.problem} {HOW_TO_DOWNLOAD}; or point the config '
                f'elsewhere with --cfg-options train_dataloader.'
                f'{self.data_root_key}=DIR (same for val_dataloader and '
                f'test_dataloader).')


def find_images(
        raw_dir: str
) -> Tuple[Dict[str, List[str]], List[str], Dict[str, str]]:
    """Image files per Italian class folder; files without an image
    extension; and files with an image extension that cannot be listed,
    with the reason (a name that is not UTF-8 or holds a line break, a
    FIFO, device or other non-regular file, a link out of ``raw_dir``)."""
    if not osp.isdir(raw_dir):
        raise DatasetNotPreparedError(
            f'{raw_dir} is not a folder. Pass the Kaggle "raw-img" folder '
            f'(it holds {", ".join(ITALIAN_TO_ENGLISH)}).',
            data_root_key=None)
    missing = [
        c for c in ITALIAN_TO_ENGLISH if not osp.isdir(osp.join(raw_dir, c))
    ]
    if missing:
        raise DatasetNotPreparedError(
            f'{raw_dir} lacks the class folders {missing}. Pass the Kaggle '
            f'"raw-img" folder.',
            data_root_key=None)
    images, skipped, unusable = {}, [], {}
    for folder in ITALIAN_TO_ENGLISH:
        class_dir = osp.join(raw_dir, folder)
        images[folder] = []
        for path in sorted(
                osp.join(root, name) for root, _, names in os.walk(class_dir)
                for name in names):
            if not path.lower().endswith(IMAGE_EXTENSIONS):
                skipped.append(path)
            elif problem := unusable_image_file(path, raw_dir):
                unusable[printable_path(path)] = problem
            else:
                images[folder].append(path)
        if not images[folder]:
            raise DatasetNotPreparedError(
                f'No images in {class_dir}.', data_root_key=None)
    return images, sorted(skipped), unusable


def unusable_image_file(path: str, raw_dir: str) -> Optional[str]:
    """Why a file with an image extension cannot go into the split, or
    None. Nothing is read: the name, ``lstat`` and ``stat`` decide."""
    if problem := annotation_problem(path):
        return problem
    try:
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            if not is_inside(path, raw_dir):
                return (f'a symbolic link to {osp.realpath(path)}, outside '
                        f'{raw_dir}')
            mode = os.stat(path).st_mode
    except OSError as err:
        return f'cannot be read ({err.strerror})'
    if not stat.S_ISREG(mode):
        return 'not a regular file (a FIFO, device, socket or folder)'
    return None


def left_out_entries(raw_dir: str) -> Dict[str, int]:
    """What ``raw_dir`` holds besides the ten class folders: stray folders
    (``'unicorno/'``) with their number of files, and loose files (1)."""
    entries = {}
    for name in sorted(set(os.listdir(raw_dir)) - set(ITALIAN_TO_ENGLISH)):
        path = osp.join(raw_dir, name)
        if osp.isdir(path):
            entries[printable_path(name) + '/'] = sum(
                len(files) for _, _, files in os.walk(path))
        else:
            entries[printable_path(name)] = 1
    return entries


def describe_left_out(entries: Dict[str, int]) -> str:
    return ', '.join(
        f'{name} ({n} file{"s" * (n != 1)})' if name.endswith('/') else name
        for name, n in entries.items())


def make_split(raw_dir: str,
               out_dir: str,
               val_ratio: float = 0.2,
               seed: int = 0,
               strict: bool = False) -> dict:
    """Write a seeded, stratified train/val split as annotation files.

    Files are listed in sorted order and shuffled per class with one
    ``random.Random(seed)``, so the same folder and seed always give the
    same split. Each class keeps ``round(n * val_ratio)`` images (at least
    one) for validation. Paths are written relative to ``out_dir``, so the
    files are read in place, not copied.

    Folders and files in ``raw_dir`` other than the ten class folders (a
    stray ``unicorno/``) are left out and listed in the summary as
    ``left_out``; image files that cannot be listed (a name that is not
    UTF-8 or holds a line break, a FIFO or device, a link out of
    ``raw_dir``) are left out and listed as ``unusable``. With
    ``strict=True`` both are refused instead.

    Nothing is written until the whole split is known, and then each file
    is written atomically (:func:`~ci2p_mm.utils.io.write_text_atomically`):
    a failed run leaves the previous files as they were.

    Returns:
        dict: The summary also written to ``out_dir/meta/split.json``.
    """
    if not 0 < val_ratio < 1:
        raise SplitError(f'--val-ratio must be in (0, 1); got {val_ratio}.')
    images, skipped, unusable = find_images(raw_dir)
    left_out = left_out_entries(raw_dir)
    if strict and left_out:
        raise SplitError(
            f'{raw_dir} holds what is not one of the ten Animals-10 class '
            f'folders ({", ".join(ITALIAN_TO_ENGLISH)}): '
            f'{describe_left_out(left_out)}. Move it out of the folder, or '
            f'run without --strict to leave it out of the split.')
    if strict and unusable:
        raise SplitError(
            f'{raw_dir} holds image files that cannot be listed: '
            f'{describe_unusable(unusable)}. Rename, replace or remove them, '
            f'or run without --strict to leave them out of the split.')
    rng = random.Random(seed)
    splits = {'train': [], 'val': []}
    counts = OrderedDict()
    for label, (folder, files) in enumerate(images.items()):
        rng.shuffle(files)  # find_images' own list
        num_val = max(1, round(len(files) * val_ratio))
        if num_val >= len(files):
            raise SplitError(f'Class folder {folder} has {len(files)} '
                             f'image(s): too few to split.')
        for split, part in (('val', files[:num_val]), ('train',
                                                       files[num_val:])):
            splits[split] += [(osp.relpath(p, out_dir), label)
                              for p in sorted(part)]
        counts[ITALIAN_TO_ENGLISH[folder]] = dict(
            train=len(files) - num_val, val=num_val)

    meta_dir = osp.join(out_dir, 'meta')
    summary = dict(
        raw_dir=osp.abspath(raw_dir),
        seed=seed,
        val_ratio=val_ratio,
        counts=counts,
        skipped_non_images=[printable_path(p) for p in skipped],
        left_out=left_out,
        unusable=unusable)
    texts = {
        f'{split}.txt': ''.join(f'{path} {label}\n' for path, label in samples)
        for split, samples in splits.items()
    }
    texts['classes.txt'] = ''.join(f'{name}\n'
                                   for name in ITALIAN_TO_ENGLISH.values())
    texts['split.json'] = json.dumps(summary, indent=2)
    for name, text in texts.items():
        write_text_atomically(osp.join(meta_dir, name), text)
    return summary


class SplitError(UserError, ValueError):
    """``prepare_animals10.py`` cannot write a split of this folder."""


def describe_unusable(unusable: Dict[str, str], limit: int = 10) -> str:
    return listing((f'{path} ({reason})' for path, reason in unusable.items()),
                   limit, '; ') + (' (all in meta/split.json as "unusable")'
                                   if len(unusable) > limit else '')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write a deterministic, stratified Animals-10 split for '
        'the configs')
    parser.add_argument('raw_img_dir', help="Kaggle's raw-img folder")
    parser.add_argument('out_dir', help='data root the configs read')
    parser.add_argument('--val-ratio', type=float, default=0.2)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--strict',
        action='store_true',
        help='refuse folders or files in raw-img that are not one of the ten '
        'class folders, and image files that cannot be listed (default: '
        'leave them out and name them)')
    return parser.parse_args(argv)


def prepare(argv=None) -> dict:
    """Run ``prepare_animals10.py argv``: write the split, print what was
    written and left out; return the summary (``meta/split.json``)."""
    args = parse_args(argv)
    summary = make_split(args.raw_img_dir, args.out_dir, args.val_ratio,
                         args.seed, args.strict)
    counts = summary['counts']
    total = {k: sum(c[k] for c in counts.values()) for k in ('train', 'val')}
    print(f'{"class":<12}{"train":>8}{"val":>8}')
    for name, c in [*counts.items(), ('total', total)]:
        print(f'{name:<12}{c["train"]:>8}{c["val"]:>8}')
    if summary['skipped_non_images']:
        print(f'Passed over {len(summary["skipped_non_images"])} files without'
              f' an image extension (listed in meta/split.json).')
    if summary['unusable']:
        print(f'Left out {len(summary["unusable"])} image file(s) that cannot '
              f'be listed: {describe_unusable(summary["unusable"])} (in '
              f'meta/split.json as "unusable"; --strict refuses them).')
    if summary['left_out']:
        print(f'Left out of the split, not Animals-10 class folders: '
              f'{describe_left_out(summary["left_out"])} (in '
              f'meta/split.json as "left_out"; --strict refuses them).')
    print(f'Wrote {args.out_dir}/meta/train.txt and val.txt '
          f'(seed {args.seed}, val ratio {args.val_ratio}).')
    return summary


def main(argv=None) -> int:
    """``tools/dataset_converters/prepare_animals10.py``."""
    prepare(argv)
    return 0
