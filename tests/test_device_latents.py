"""Device-resident latents (issue 22, item 3), on the CPU.

The whole store in memory, batches drawn there: the same batches as the
DataLoader path for the same seed (inputs, labels, flips, metainfo, bad
files), an exact mid-epoch resume, bit-identical training to the
DataLoader path, evaluation on images with the ordinary tools, and the
refusals (too big for the free memory, a pipeline it cannot run). Plus the
vectorised seeds these rely on, checked against NumPy itself.
"""
import os
import os.path as osp
import signal

import numpy as np
import pytest
import test_latents
import torch
from conftest import run_tool
from mmengine.hooks import Hook
from mmengine.registry import init_default_scope
from mmpretrain.registry import HOOKS
from test_latents import copy_data, encode, write_configs

import ci2p_mm.apis.training as train_api
import ci2p_mm.latents.device as device_module
from ci2p_mm.datasets import BadImageError, ResumableSampler
from ci2p_mm.datasets.seeds import first_uniforms, sample_seeds
from ci2p_mm.engine import CI2PRunner, set_default_dataloader_cfg
from ci2p_mm.latents import DeviceLatentLoader, DeviceLatentsError
from ci2p_mm.utils import read_config
from ci2p_mm.utils.io import load_torch_file

# test_latents.py's module fixtures: its toy store, encoded once.
codec_file = test_latents.codec_file
encoded = test_latents.encoded

# ---- the seeds -----------------------------------------------------------


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """A draw's seed as ResumableSampler defines it, one NumPy call."""
    return int(
        np.random.SeedSequence([seed % 2**32, epoch,
                                position]).generate_state(1)[0])


def test_vectorised_seeds_equal_numpy():
    rng = np.random.default_rng(0)
    positions = np.concatenate([np.arange(40), rng.integers(0, 2**32, 40)])
    for seed in (0, 7, 2**32 - 1, 2**40 + 3, -5):
        for epoch in (0, 1, 299, 2**32 - 1):
            expected = [sample_seed(seed, epoch, int(k)) for k in positions]
            assert sample_seeds(seed, epoch, positions).tolist() == expected
    seeds = np.concatenate([[0, 1, 2**32 - 1], rng.integers(0, 2**32, 500)])
    expected = []
    for s in seeds:
        np.random.seed(int(s))
        expected.append(np.random.rand())
    assert np.array_equal(first_uniforms(seeds), expected)  # bit for bit
    with pytest.raises(ValueError):
        first_uniforms([2**32])


def test_resumable_sampler_seeds_are_unchanged():
    """The sampler now computes its seeds for the whole epoch at once: the
    same seeds as one ``sample_seed`` per draw, for every rank and skip."""
    data = list(range(23))
    for rank, world in ((0, 1), (1, 3)):
        sampler = ResumableSampler(data, seed=11)
        sampler.rank, sampler.world_size = rank, world
        sampler.num_samples = len(range(rank, sampler.total_size, world))
        sampler.set_epoch(4)
        for skip in (0, 5):
            sampler.skip(skip)
            drawn = list(sampler)
            assert [i.seed for i in drawn] == [
                sample_seed(11, 4, rank + (skip + k) * world)
                for k in range(len(drawn))
            ]


# ---- the loader ------------------------------------------------------------


@pytest.fixture
def configs(request):
    """(image config, latent config) of test_latents.py's toy store."""
    image, latent, _ = request.getfixturevalue('encoded')
    return image, latent


def train_loader_cfg(config, **overrides):
    init_default_scope('mmpretrain')
    cfg = read_config(config)
    set_default_dataloader_cfg(cfg, 'train_dataloader')
    loader = cfg.train_dataloader
    loader.update(overrides)
    return loader


def both_loaders(config, seed=3, **overrides):
    """(DataLoader path, device path) of a config's train loader."""
    loader = train_loader_cfg(config, **overrides)
    return (CI2PRunner.build_dataloader(loader, seed=seed),
            CI2PRunner.build_dataloader(
                dict(loader, device_resident=True), seed=seed))


def assert_same_batches(reference, device, epochs=(0, 1)):
    count = 0
    for epoch in epochs:
        reference.sampler.set_epoch(epoch)
        device.sampler.set_epoch(epoch)
        for a, b in zip(reference, device, strict=True):
            assert a['inputs'].dtype == b['inputs'].dtype
            assert torch.equal(a['inputs'], b['inputs'])
            assert len(a['data_samples']) == len(b['data_samples'])
            for x, y in zip(a['data_samples'], b['data_samples']):
                assert x.metainfo == y.metainfo
                assert torch.equal(x.gt_label, y.gt_label)
            count += 1
    return count


@pytest.mark.slow  # end to end (pytest.ini)
def test_device_batches_equal_dataloader_batches(configs):
    _, latent = configs
    reference, device = both_loaders(latent, seed=3)
    assert isinstance(device, DeviceLatentLoader)
    assert not isinstance(reference, DeviceLatentLoader)
    assert device.sampler.seed == reference.sampler.seed == 3
    assert len(device) == len(reference) == 3  # 40 samples, batches of 16
    assert assert_same_batches(reference, device) == 6
    flips = [s.flip for b in device for s in b['data_samples']]
    assert 0 < sum(flips) < len(flips)  # both views are drawn
    # Another seed: another order (DefaultSampler shuffles with seed +
    # epoch, so compare the same epoch).
    _, other = both_loaders(latent, seed=4)
    device.sampler.set_epoch(0)
    assert [s.sample_idx for s in next(iter(other))['data_samples']
            ] != [s.sample_idx for s in next(iter(device))['data_samples']]


def test_device_loader_resumes_inside_an_epoch(configs):
    _, latent = configs
    _, device = both_loaders(latent)
    device.sampler.set_epoch(1)
    whole = list(device)
    device.sampler.skip(device.batch_size)  # as the loop does on resume
    tail = list(device)
    assert len(tail) == len(whole) - 1
    for a, b in zip(whole[1:], tail):
        assert torch.equal(a['inputs'], b['inputs'])
        assert [s.metainfo for s in a['data_samples']
                ] == [s.metainfo for s in b['data_samples']]


@pytest.mark.slow  # end to end (pytest.ini)
def test_quantized_store_gives_the_same_float_batches(configs, tmp_path):
    _, latent = configs
    store = encode(
        latent, storage='quantized', out=str(tmp_path / 'q'), splits=['train'])
    dataset = dict(train_loader_cfg(latent).dataset, store=store)
    reference, device = both_loaders(latent, dataset=dataset)
    assert device.latents.dtype == torch.int8  # stored compactly
    assert next(iter(device))['inputs'].dtype == torch.float32
    assert assert_same_batches(reference, device, epochs=(0, )) == 3


@pytest.mark.slow
def test_refusals_name_sizes_and_the_way_out(configs, monkeypatch):
    image, latent = configs
    loader = train_loader_cfg(latent)
    # 40 samples x 2 views x 192 x 4 x 4 fp16 = 0.47 MiB
    monkeypatch.setattr(device_module, 'free_memory', lambda device: 2**21)
    CI2PRunner.build_dataloader(dict(loader, device_resident=True))  # fits
    monkeypatch.setattr(device_module, 'free_memory', lambda device: 2**19)
    with pytest.raises(DeviceLatentsError) as err:
        CI2PRunner.build_dataloader(dict(loader, device_resident=True))
    message = str(err.value)
    assert 'holds 0.5 MiB' in message and '0.5 MiB free' in message
    assert 'may take 50%' in message and 'remove device_resident' in message
    assert 'test-store' in message
    monkeypatch.undo()
    with pytest.raises(DeviceLatentsError, match='Animals10'):
        CI2PRunner.build_dataloader(
            dict(train_loader_cfg(image), device_resident=True))
    flip_again = dict(loader.dataset)
    flip_again['pipeline'] = [
        dict(type='LoadLatent', flip_prob=0.5),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackInputs')
    ]
    with pytest.raises(DeviceLatentsError, match='LoadLatent, RandomFlip'):
        CI2PRunner.build_dataloader(
            dict(loader, dataset=flip_again, device_resident=True))
    with pytest.raises(DeviceLatentsError, match='max_memory_fraction'):
        CI2PRunner.build_dataloader(
            dict(loader, device_resident=dict(fraction=0.9)))
    # device_resident=False is the DataLoader path.
    plain = CI2PRunner.build_dataloader(dict(loader, device_resident=False))
    assert isinstance(plain, torch.utils.data.DataLoader)


@pytest.mark.slow
def test_bad_files_are_replaced_or_refused_as_by_the_dataloader(
        toy_animals10, request, tmp_path):
    codec = request.getfixturevalue('codec_file')
    root = copy_data(toy_animals10, tmp_path)
    _, latent = write_configs(tmp_path, root, codec)
    with open(osp.join(root, 'meta', 'train.txt')) as f:
        bad = osp.join(root, f.readlines()[5].split()[0])
    with open(bad, 'wb') as f:
        f.write(b'not an image')
    encode(
        latent, {'train_dataloader.dataset.source.skip_bad_images': True},
        splits=['train'])
    skip = dict(skip_bad_images=True)
    reference, device = both_loaders(
        latent, dataset=dict(train_loader_cfg(latent).dataset, **skip))
    assert assert_same_batches(reference, device) == 6
    marked = [
        s.skipped_bad_images for b in device for s in b['data_samples']
        if 'skipped_bad_images' in s
    ]
    assert marked == [[bad]]  # once in an epoch
    # Without skip_bad_images both paths stop at the bad file.
    reference, device = both_loaders(latent)
    with pytest.raises(BadImageError, match=osp.basename(bad)):
        list(reference)
    with pytest.raises(BadImageError, match=osp.basename(bad)):
        list(device)


# ---- training through the ordinary tools --------------------------------


@HOOKS.register_module(force=True)
class TermAtIterationHook(Hook):
    """Test-only: send this process SIGTERM after an iteration (as slurm
    would); CI2PRunner stops there with a checkpoint."""
    priority = 'LOWEST'

    def __init__(self, iteration):
        self.iteration = iteration

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        if runner.iter + 1 == self.iteration:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.slow
def test_device_path_trains_resumes_exactly_and_tests_on_images(
        configs, tmp_path):
    """Two epochs with drop path: the device path ends with the DataLoader
    path's weights bit for bit; stopped by SIGTERM in the middle of epoch 2
    and resumed, with the same weights again; the checkpoint is tested on
    images with tools/test.py and the image config."""
    image, latent = configs
    stop = tmp_path / 'stop.py'
    stop.write_text(f'_base_ = [{latent!r}]\ncustom_hooks = [dict(type='
                    "'LatentStoreCheckHook'), dict(type='TermAtIterationHook',"
                    ' iteration=4)]\n')
    options = [
        '--cfg-options', 'train_cfg.max_epochs=2',
        'model.backbone.drop_path_rate=0.1'
    ]

    def train(config, work, *extra):
        return train_api.train([
            str(config), '--work-dir',
            str(tmp_path / work), *extra, *options
        ])

    def weights(work):
        return load_torch_file(str(tmp_path / work /
                                   'epoch_2.pth'))['state_dict']

    train(latent, 'dataloader', '--no-validate')
    runner = train(latent, 'device', '--device-latents')
    assert isinstance(runner.train_dataloader, DeviceLatentLoader)
    stopped = train(stop, 'resumed', '--device-latents', '--no-validate')
    assert stopped.stopped_by == signal.SIGTERM and stopped.iter == 4
    train(latent, 'resumed', '--device-latents', '--no-validate', '--resume')
    reference, device, resumed = (weights('dataloader'), weights('device'),
                                  weights('resumed'))
    assert set(device) == set(reference)
    for key in reference:
        assert torch.equal(device[key], reference[key]), key
        assert torch.equal(resumed[key], reference[key]), key
    out = run_tool('tools/test.py', image,
                   str(tmp_path / 'device' / 'epoch_2.pth'), '--work-dir',
                   str(tmp_path / 'test'))
    assert 'accuracy/top1' in out
