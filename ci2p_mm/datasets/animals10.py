"""Animals-10 (Kaggle ``alessiocorrado99/animals10``) and its split."""
import json
import os
import os.path as osp
import random
from collections import OrderedDict
from typing import Dict, List, Tuple

from mmpretrain.datasets import CustomDataset
from mmpretrain.registry import DATASETS

from .robust import SkipBadImagesMixin

#: Kaggle's Italian folder names and the English class names. Label i is
#: the i-th folder in sorted order, which is also this order.
ITALIAN_TO_ENGLISH = OrderedDict([
    ('cane', 'dog'), ('cavallo', 'horse'), ('elefante', 'elephant'),
    ('farfalla', 'butterfly'), ('gallina', 'chicken'), ('gatto', 'cat'),
    ('mucca', 'cow'), ('pecora', 'sheep'), ('ragno', 'spider'),
    ('scoiattolo', 'squirrel')
])
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')
HOW_TO_PREPARE = (
    'Download the Kaggle data set "alessiocorrado99/animals10" (e.g. '
    '`kaggle datasets download -d alessiocorrado99/animals10`), unzip it, '
    'then run `python tools/dataset_converters/prepare_animals10.py '
    'PATH/raw-img data/animals10`; or point the config elsewhere with '
    '--cfg-options train_dataloader.dataset.data_root=DIR (same for '
    'val_dataloader and test_dataloader).')


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
        skip_bad_images (bool): Skip files that ``LoadImageRGB`` refuses
            instead of stopping (see :mod:`ci2p_mm.datasets.robust`).
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
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'Animals-10 {self.split} annotations not found: looked for '
                f'{osp.abspath(self.ann_file)}. {HOW_TO_PREPARE}')
        num_classes = len(self.METAINFO['classes'])
        with open(self.ann_file) as f:
            for number, line in enumerate(f, 1):
                parts = line.strip().rsplit(' ', 1)
                if line.strip() and not (len(parts) == 2 and parts[1].isdigit()
                                         and int(parts[1]) < num_classes):
                    raise ValueError(
                        f'{self.ann_file}, line {number}: expected "<path> '
                        f'<label 0-{num_classes - 1}>", got {line.strip()!r}.')
        return super().load_data_list()


def find_images(raw_dir: str) -> Tuple[Dict[str, List[str]], List[str]]:
    """Image files per Italian class folder, and the files passed over."""
    if not osp.isdir(raw_dir):
        raise FileNotFoundError(
            f'{raw_dir} is not a folder. Pass the Kaggle "raw-img" folder '
            f'(it holds {", ".join(ITALIAN_TO_ENGLISH)}).')
    missing = [c for c in ITALIAN_TO_ENGLISH
               if not osp.isdir(osp.join(raw_dir, c))]
    if missing:
        raise FileNotFoundError(
            f'{raw_dir} lacks the class folders {missing}. Pass the Kaggle '
            f'"raw-img" folder. {HOW_TO_PREPARE}')
    images, skipped = {}, []
    for folder in ITALIAN_TO_ENGLISH:
        class_dir = osp.join(raw_dir, folder)
        images[folder] = []
        for root, _, files in os.walk(class_dir):
            for name in files:
                path = osp.join(root, name)
                if name.lower().endswith(IMAGE_EXTENSIONS):
                    images[folder].append(path)
                else:
                    skipped.append(path)
        images[folder].sort()
        if not images[folder]:
            raise FileNotFoundError(f'No images in {class_dir}.')
    return images, sorted(skipped)


def left_out_entries(raw_dir: str) -> Dict[str, int]:
    """What ``raw_dir`` holds besides the ten class folders: stray folders
    (``'unicorno/'``) with their number of files, and loose files (1)."""
    entries = {}
    for name in sorted(os.listdir(raw_dir)):
        path = osp.join(raw_dir, name)
        if name in ITALIAN_TO_ENGLISH:
            continue
        if osp.isdir(path):
            entries[name + '/'] = sum(len(files)
                                      for _, _, files in os.walk(path))
        else:
            entries[name] = 1
    return entries


def describe_left_out(entries: Dict[str, int]) -> str:
    return ', '.join(f'{name} ({n} file{"s" * (n != 1)})' if name.endswith(
        '/') else name for name, n in entries.items())


def make_split(raw_dir: str, out_dir: str, val_ratio: float = 0.2,
               seed: int = 0, strict: bool = False) -> dict:
    """Write a seeded, stratified train/val split as annotation files.

    Files are listed in sorted order and shuffled per class with one
    ``random.Random(seed)``, so the same folder and seed always give the
    same split. Each class keeps ``round(n * val_ratio)`` images (at least
    one) for validation. Paths are written relative to ``out_dir``, so the
    files are read in place, not copied.

    Folders and files in ``raw_dir`` other than the ten class folders (a
    stray ``unicorno/``) are left out and listed in the summary as
    ``left_out``; with ``strict=True`` they are refused instead.

    Returns:
        dict: The summary also written to ``out_dir/meta/split.json``.
    """
    if not 0 < val_ratio < 1:
        raise ValueError(f'--val-ratio must be in (0, 1); got {val_ratio}.')
    images, skipped = find_images(raw_dir)
    left_out = left_out_entries(raw_dir)
    if strict and left_out:
        raise ValueError(
            f'{raw_dir} holds what is not one of the ten Animals-10 class '
            f'folders ({", ".join(ITALIAN_TO_ENGLISH)}): '
            f'{describe_left_out(left_out)}. Move it out of the folder, or '
            f'run without --strict to leave it out of the split.')
    rng = random.Random(seed)
    splits = {'train': [], 'val': []}
    counts = OrderedDict()
    for label, (folder, files) in enumerate(images.items()):
        files = list(files)
        rng.shuffle(files)
        num_val = max(1, round(len(files) * val_ratio))
        if num_val >= len(files):
            raise ValueError(f'Class folder {folder} has {len(files)} '
                             f'image(s): too few to split.')
        for split, part in (('val', files[:num_val]),
                            ('train', files[num_val:])):
            splits[split] += [(osp.relpath(p, out_dir), label)
                              for p in sorted(part)]
        counts[ITALIAN_TO_ENGLISH[folder]] = dict(
            train=len(files) - num_val, val=num_val)

    meta_dir = osp.join(out_dir, 'meta')
    os.makedirs(meta_dir, exist_ok=True)
    for split, samples in splits.items():
        with open(osp.join(meta_dir, f'{split}.txt'), 'w') as f:
            f.writelines(f'{path} {label}\n' for path, label in samples)
    with open(osp.join(meta_dir, 'classes.txt'), 'w') as f:
        f.writelines(f'{name}\n' for name in ITALIAN_TO_ENGLISH.values())
    summary = dict(
        raw_dir=osp.abspath(raw_dir), seed=seed, val_ratio=val_ratio,
        counts=counts, skipped_non_images=skipped, left_out=left_out)
    with open(osp.join(meta_dir, 'split.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    return summary
