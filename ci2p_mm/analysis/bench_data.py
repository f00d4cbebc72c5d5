"""What the end-to-end and latent-storage benchmarks run on: a generated
Animals-10-like folder of JPEGs, a seeded random codec, and configs pointed
at them."""
import os
import os.path as osp
import shutil
import time
from multiprocessing import get_context
from typing import Optional

import numpy as np
import torch
from mmengine.config import Config
from PIL import Image

from ci2p_mm.codec import build_codec
from ci2p_mm.datasets import ITALIAN_TO_ENGLISH, make_split
from ci2p_mm.engine import set_default_dataloader_cfg
from ci2p_mm.latents import encode
from ci2p_mm.utils import read_config, set_patch_options
from ci2p_mm.utils.io import save_atomic


def _write_jpeg(job):
    """One photo-like JPEG: smooth colour field, texture and a disc; its own
    seeded generator, so the folder is the same however many processes
    write it."""
    path, (w, h), seed, i = job
    rng = np.random.default_rng([seed, i])
    coarse = rng.uniform(0, 255, (6, 8, 3)).astype(np.uint8)
    img = np.asarray(
        Image.fromarray(coarse).resize((w, h), Image.BICUBIC),
        dtype=np.float32)
    img += rng.normal(0, 18, (h, w, 3))
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx, r = h * rng.uniform(.3, .7), w * rng.uniform(.3, .7), h / 4
    img[(yy - cy)**2 + (xx - cx)**2 < r**2] = rng.uniform(0, 255, 3)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(
        path, quality=90)


def write_jpeg_folder(root: str, num_images: int, size, seed: int = 0):
    """Photo-like JPEGs in Kaggle's ``raw-img/<class>/`` layout, split 80/20
    with ``make_split``; written by one process per CPU core (thousands of
    ImageNet-sized JPEGs take seconds on a GPU machine's cores)."""
    if osp.isfile(osp.join(root, 'meta', 'train.txt')):
        return root
    folders = list(ITALIAN_TO_ENGLISH)
    jobs = []
    for i in range(num_images):
        folder = folders[i % len(folders)]
        os.makedirs(osp.join(root, 'raw-img', folder), exist_ok=True)
        jobs.append((osp.join(root, 'raw-img', folder,
                              f'{folder}_{i:05d}.jpeg'), tuple(size), seed, i))
    processes = min(len(jobs), os.cpu_count() or 1, 16)
    if processes > 1:
        with get_context('fork').Pool(processes) as pool:
            pool.map(_write_jpeg, jobs, chunksize=16)
    else:
        for job in jobs:
            _write_jpeg(job)
    make_split(osp.join(root, 'raw-img'), root, val_ratio=0.2, seed=0)
    return root


def count_lines(path: str) -> int:
    with open(path) as f:
        return sum(1 for line in f if line.strip())


def random_codec_file(root: str) -> str:
    """A seeded random codec saved once, so that encoding and training use
    the same weights (speed does not depend on them)."""
    path = osp.join(root, 'random_codec_q5.pth')
    if not osp.isfile(path):
        torch.manual_seed(0)
        save_atomic(build_codec('bmshj2018-factorized', 5).state_dict(), path)
    return path


def prepare_data(args) -> Optional[str]:
    """The data folder of ``--end-to-end`` and ``--latent-storage``
    (written unless there) and the codec file they use: ``--codec``, else a
    random one with ``--no-pretrained``, else None (CompressAI's)."""
    size = tuple(int(s) for s in args.source_size.split('x'))
    os.makedirs(args.data_dir, exist_ok=True)
    write_jpeg_folder(args.data_dir, args.num_images, size, args.seed)
    return args.codec or (random_codec_file(args.data_dir)
                          if args.no_pretrained else None)


def encode_train_split(cfg: Config,
                       out: str,
                       batch_size: int,
                       num_workers: int,
                       storage: str = 'fp16') -> float:
    """Encode the config's train split into the store ``out`` from scratch
    (the tool's own store there is removed first, so a whole encode is
    timed); the seconds it took (paid once, not per epoch)."""
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    encode(
        cfg,
        out=out,
        storage=storage,
        splits=['train'],
        overwrite=True,
        progress=False,
        num_workers=num_workers,
        batch_size=batch_size)
    return time.perf_counter() - start


def is_latent(cfg: Config) -> bool:
    dataset = cfg.train_dataloader.dataset
    return str(dataset.get('type', '')).endswith('LatentDataset')


def prepared_config(path: str, args, codec) -> Config:
    """The config pointed at the data folder, with the run's settings
    (batch size, image size, workers, codec file)."""
    cfg = read_config(path, args.cfg_options)
    loader = cfg.train_dataloader
    image_dataset = (
        loader.dataset.source if is_latent(cfg) else loader.dataset)
    image_dataset.data_root = osp.abspath(args.data_dir)
    for t in image_dataset.pipeline:
        if t['type'] in ('Resize', ) and 'scale' in t:
            t['scale'] = (args.img_size, args.img_size)
    loader.batch_size = args.batch_size
    if args.num_workers is not None:
        loader.num_workers = args.num_workers
        loader.persistent_workers = args.num_workers > 0
    set_default_dataloader_cfg(cfg, 'train_dataloader')
    cfg.model.backbone.img_size = args.img_size
    if codec is not None:
        set_patch_options(cfg, pretrained=codec)
    if args.channels_last:
        set_patch_options(cfg, channels_last=True)
    if is_latent(cfg):
        loader.dataset.store = osp.join(
            'latents', f'e2e-{osp.splitext(osp.basename(path))[0]}-'
            f'{args.img_size}')
    return cfg
