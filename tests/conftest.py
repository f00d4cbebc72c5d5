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
    make_split(make_toy_animals10(root, images_per_class=6, size=64), root,
               val_ratio=1 / 3, seed=0)
    return root


def write_tiny_config(directory, base, data_root, epochs=2, extra=''):
    """A config inheriting ``base`` (a configs/ file) at 64 px, tiny ViT."""
    path = osp.join(str(directory), f'tiny_{osp.basename(base)}')
    pipeline = ("[dict(type='LoadImageRGB'),"
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


def run_tool(*args, timeout=600, env=None):
    """Run a repository tool in a fresh interpreter; return its output."""
    proc = subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, text=True,
        timeout=timeout, env=env)
    output = proc.stdout + proc.stderr
    if proc.returncode:
        raise AssertionError(f'{args} failed ({proc.returncode}):\n'
                             f'{output[-4000:]}')
    return output
