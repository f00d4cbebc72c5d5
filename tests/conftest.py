"""Shared fixtures: generated data sets and tiny configs (no network)."""
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

#: A ViT small enough for a training test to take seconds on a CPU.
TINY_ARCH = ("dict(_delete_=True,embed_dims=64,num_layers=2,num_heads=2,"
             "feedforward_channels=128)")


@pytest.fixture(scope='session')
def toy_animals10(tmp_path_factory):
    """A prepared toy Animals-10: raw-img/ plus meta/{train,val}.txt."""
    from ci2p_mm.datasets import make_split, make_toy_animals10
    root = str(tmp_path_factory.mktemp('toy_animals10'))
    make_split(
        make_toy_animals10(root, images_per_class=6, size=64),
        root,
        val_ratio=1 / 3,
        seed=0)
    return root


def write_tiny_config(directory, base, data_root, epochs=2, extra=''):
    """A config inheriting ``base`` (a configs/ file) at 64 px, tiny ViT."""
    path = osp.join(str(directory), f'tiny_{osp.basename(base)}')
    pipeline = ("[dict(type='SafeLoadImageFromFile'),"
                "dict(type='Resize',scale=(64,64)),{}"
                "dict(type='PackInputs')]")
    flip = "dict(type='RandomFlip',prob=0.5,direction='horizontal'),"
    with open(path, 'w') as f:
        f.write(f"""
_base_ = [{osp.join(REPO, base)!r}]
model = dict(backbone=dict(arch={TINY_ARCH}, img_size=64),
             head=dict(in_channels=64))
train_dataloader = dict(batch_size=16, num_workers=0, dataset=dict(
    data_root={data_root!r}, pipeline={pipeline.format(flip)}))
val_dataloader = dict(batch_size=16, num_workers=0, dataset=dict(
    data_root={data_root!r}, pipeline={pipeline.format('')}))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs={epochs})
default_hooks = dict(logger=dict(interval=1))
{extra}
""")
    return path


def free_port() -> int:
    """A TCP port nobody listens on now, for a torchrun rendezvous (fixed
    ports collide when test runs overlap on one machine)."""
    import socket
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run_tool(*args, timeout=600, env=None):
    """Run a repository tool in a fresh interpreter; return its output."""
    proc = subprocess.run([sys.executable, *args],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=timeout,
                          env=env)
    output = proc.stdout + proc.stderr
    if proc.returncode:
        raise AssertionError(f'{args} failed ({proc.returncode}):\n'
                             f'{output[-4000:]}')
    return output


# ---------------------------------------------------------------- codecs ---
def load_tool(relpath, name=None):
    """Import a script under tools/ as a module (once per session)."""
    import importlib.util
    name = name or 'tool_' + osp.splitext(osp.basename(relpath))[0]
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name,
                                                      osp.join(REPO, relpath))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def make_codec_images(root, n=24, size=64, seed=0):
    """Smooth gradients with a disc or a square (PNG): easy to compress."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        a, b, c = rng.uniform(0, 1, (3, 3))
        img = a * xx[..., None] + b * yy[..., None] + 0.3 * c
        cy, cx, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), 0.2
        shape = ((yy - cy)**2 +
                 (xx - cx)**2 < r**2) if i % 2 else ((abs(yy - cy) < r) &
                                                     (abs(xx - cx) < r))
        img = np.where(shape[..., None], rng.uniform(0, 1, 3), img)
        img = (np.clip(img, 0, 1) * 255).astype(np.uint8)
        Image.fromarray(img).save(root / f'img_{i:02d}.png')
    return root


def codec_train_args(image_dir, work_dir, iters=40, *extra):
    """tools/train_codec.py options for a small CPU run: the --quick preset
    (lr 1e-3, warmup, cosine, --data-init) on batches of four 64 px crops,
    validation on a quarter of the images every 20 iterations."""
    return [
        str(image_dir), '--work-dir',
        str(work_dir), '--quick', '--iters',
        str(iters), '--warmup-iters', '10', '--batch-size', '4', '--val-ratio',
        '0.25', '--val-interval', '20', '--log-interval', '5', '--device',
        'cpu', '--no-progress', '--seed', '0', *extra
    ]


def train_codec(argv):
    """``tools/train_codec.py argv`` in this process; the final codec file."""
    from ci2p_mm.codec import training
    return training.train(training.parse_args(argv))


@pytest.fixture(scope='session')
def codec_images(tmp_path_factory):
    return make_codec_images(tmp_path_factory.mktemp('codec_images'))


@pytest.fixture(scope='session')
def trained_codec(codec_images, tmp_path_factory):
    """(work_dir, codec_final.pth) of a codec trained 40 iterations."""
    work_dir = tmp_path_factory.mktemp('codec_run')
    final = train_codec(codec_train_args(codec_images, work_dir))
    return work_dir, final


@pytest.fixture
def fake_zoo(tmp_path, monkeypatch):
    """A :class:`_hostile.FakeZoo`: CompressAI's zoo without network."""
    from _hostile import FakeZoo
    zoo = FakeZoo(tmp_path, monkeypatch)
    yield zoo
    zoo.restore()
