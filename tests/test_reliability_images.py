"""Messy image folders: every surprise decoded to RGB or refused, by name.

Covers issue 6, point 1: SafeLoadImageFromFile, skip_bad_images (train and
evaluation sets), the per-epoch count in the log, verify_dataset.py, and the
sampler that makes augmentation independent of workers and resume.
"""
import os
import os.path as osp
import pickle
import shutil

import numpy as np
import pytest
import torch
from _reliability import make_toy_data, write_config, write_messy_files
from PIL import ImageFile

import ci2p_mm.apis.training as train_api
from ci2p_mm.datasets import (Animals10, BadImageError, ResumableSampler,
                              SafeLoadImageFromFile, SeededIndex)


@pytest.fixture(scope='module')
def messy(tmp_path_factory):
    directory = tmp_path_factory.mktemp('messy')
    return str(directory), write_messy_files(directory)


def test_every_case_is_decoded_or_refused(messy):
    directory, cases = messy
    loader = SafeLoadImageFromFile()
    for name, (kind, expect) in cases.items():
        path = osp.join(directory, name)
        if kind == 'ok':
            results = loader(dict(img_path=path))
            img = results['img']
            assert img.dtype == np.uint8 and img.ndim == 3 and \
                img.shape[2] == 3, name
            assert results['img_shape'] == img.shape[:2]
            # BGR out, as mmcv's LoadImageFromFile.
            assert expect(img[..., ::-1]), f'{name} decoded wrongly'
        else:
            with pytest.raises(BadImageError) as info:
                loader(dict(img_path=path))
            message = str(info.value)
            assert expect in info.value.reason, (name, info.value.reason)
            assert path in message and 'Fix:' in message
            assert 'skip_bad_images=True' in message, name
    assert {k
            for k, (kind, _) in cases.items() if kind == 'bad'} >= {
                'empty.jpg', 'truncated.jpg', 'truncated.png', 'html_page.jpg',
                'bomb_100mp.png', 'tracking_pixel.gif'
            }


def test_missing_file_and_truncated_mode_are_refused(messy, monkeypatch):
    directory, _ = messy
    loader = SafeLoadImageFromFile()
    with pytest.raises(BadImageError, match='nope.jpg: file not found'):
        loader(dict(img_path=osp.join(directory, 'nope.jpg')))
    # Someone set Pillow's global switch that decodes truncated files to
    # grey: refused rather than trained on.
    monkeypatch.setattr(ImageFile, 'LOAD_TRUNCATED_IMAGES', True)
    with pytest.raises(BadImageError, match='LOAD_TRUNCATED_IMAGES'):
        loader(dict(img_path=osp.join(directory, 'truncated.jpg')))


def test_loader_options(messy):
    directory, _ = messy
    red = SafeLoadImageFromFile(background=(255, 0, 0)).read_rgb(
        osp.join(directory, 'rgba.png'))
    assert (red[:, -1] == (255, 0, 0)).all()
    assert SafeLoadImageFromFile(min_size=1).check(
        osp.join(directory, 'tracking_pixel.gif')) is None
    assert 'max_pixels=1000' in SafeLoadImageFromFile(max_pixels=1000).check(
        osp.join(directory, 'rgb.jpg'))
    assert SafeLoadImageFromFile(to_float32=True)(dict(
        img_path=osp.join(directory, 'rgb.jpg')))['img'].dtype == np.float32


# ---- datasets with bad files -------------------------------------------


@pytest.fixture(scope='module')
def dirty_data(tmp_path_factory, messy):
    """Toy Animals-10 whose train and val lists include four bad files."""
    root = make_toy_data(tmp_path_factory.mktemp('dirty'), 4, 64)
    directory, _ = messy
    bad = ['empty.jpg', 'truncated.jpg', 'html_page.jpg', 'tracking_pixel.gif']
    os.makedirs(osp.join(root, 'bad'))
    for name in bad:
        shutil.copy(osp.join(directory, name), osp.join(root, 'bad', name))
    for split, names in (('train', bad[:3]), ('val', bad[3:] + bad[:1])):
        with open(osp.join(root, 'meta', f'{split}.txt')) as f:
            lines = f.read().splitlines()
        # Bad files among good ones (2nd, 5th, ... line).
        for i, name in enumerate(names):
            lines.insert(1 + 3 * i, f'bad/{name} {i}')
        with open(osp.join(root, 'meta', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
    return root, bad


PIPELINE = [
    dict(type='SafeLoadImageFromFile'),
    dict(type='Resize', scale=(64, 64)),
    dict(type='PackInputs')
]


def test_bad_file_stops_with_name_and_fix(dirty_data):
    root, _ = dirty_data
    dataset = Animals10(data_root=root, split='train', pipeline=PIPELINE)
    with pytest.raises(BadImageError) as info:
        dataset[1]
    assert osp.join(root, 'bad', 'empty.jpg') in str(info.value)
    assert 'skip_bad_images=True' in str(info.value)


def test_training_set_skips_to_next_readable_sample(dirty_data):
    root, bad = dirty_data
    dataset = Animals10(
        data_root=root, split='train', pipeline=PIPELINE, skip_bad_images=True)
    data = dataset[1]  # bad -> the next one, with its own label
    sample = data['data_samples']
    assert sample.metainfo['skipped_bad_images'] == [
        osp.join(root, 'bad', 'empty.jpg')
    ]
    assert sample.img_path == dataset.get_data_info(2)['img_path']
    assert int(sample.gt_label) == dataset.get_data_info(2)['gt_label']
    assert 'skipped_bad_images' not in dataset[0]['data_samples'].metainfo


def test_evaluation_set_leaves_bad_files_out(dirty_data):
    root, bad = dirty_data
    full = Animals10(data_root=root, split='val', pipeline=PIPELINE)
    skipping = Animals10(
        data_root=root, split='val', pipeline=PIPELINE, skip_bad_images=True)
    assert len(skipping) == len(full) - 2
    assert sorted(map(osp.basename, skipping.bad_images)) == sorted(
        ['tracking_pixel.gif', 'empty.jpg'])
    for i in range(len(skipping)):  # every remaining sample loads
        assert skipping[i]['inputs'].shape == (3, 64, 64)


def test_training_with_skip_counts_in_the_log(dirty_data, tmp_path):
    root, _ = dirty_data
    config = write_config(
        tmp_path, root, epochs=1, batch_size=11, skip_bad_images=True)
    runner = train_api.train([config, '--work-dir', str(tmp_path / 'w')])
    log = open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()
    assert 'Epoch 1: skipped 3 bad image(s)' in log
    assert 'bad/truncated.jpg' in log
    assert 'left 2 of' in log  # validation set
    assert runner.message_hub.get_info('skipped_bad_images') == 3


def test_training_without_skip_stops_naming_the_file(dirty_data, tmp_path):
    root, _ = dirty_data
    config = write_config(tmp_path, root, epochs=1)
    with pytest.raises(BadImageError, match='bad/(empty|truncated|html)'):
        train_api.train([config, '--work-dir', str(tmp_path / 'w')])


def test_verify_dataset_lists_every_bad_file(dirty_data, tmp_path, capsys):
    root, bad = dirty_data
    config = write_config(tmp_path, root)
    from ci2p_mm.datasets import verify
    out_file = str(tmp_path / 'bad.tsv')
    assert verify.main([config, '--workers', '2', '--out', out_file]) == 1
    out = capsys.readouterr().out
    for name in bad:
        assert f'bad/{name}: ' in out, name
    assert 'empty file (0 bytes)' in out and 'not an image' in out
    assert 'train Animals10: 33 images, 3 bad, 30 good' in out
    assert 'val   Animals10: 12 images, 2 bad, 10 good' in out
    assert 'same dataset as [val]' in out  # test = val, checked once
    assert len(open(out_file).read().splitlines()) == 5
    # A clean data set passes.
    clean = make_toy_data(tmp_path / 'clean', 2, 32, 0.5)
    assert verify.main(
        [write_config(tmp_path, clean, name='clean.py'), '--split',
         'train']) == 0
    assert 'All images decode.' in capsys.readouterr().out


# ---- augmentation that does not depend on workers or resume -----------


def test_seeded_index_survives_pickling():
    index = pickle.loads(pickle.dumps(SeededIndex(7, 1234)))
    assert index == 7 and index.seed == 1234 and isinstance(index, int)


def _flips(dataset, num_workers, skip=0):
    sampler = ResumableSampler(dataset, shuffle=True, seed=3)
    sampler.set_epoch(1)
    sampler.skip(skip)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=4,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=lambda batch: batch)
    return [(s['data_samples'].img_path, s['data_samples'].flip)
            for batch in loader for s in batch]


def test_augmentation_is_per_sample_not_per_worker(tmp_path):
    root = make_toy_data(tmp_path, 2, 32, 0.5)
    pipeline = [
        dict(type='SafeLoadImageFromFile'),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackInputs', meta_keys=('img_path', 'flip'))
    ]
    dataset = Animals10(data_root=root, split='train', pipeline=pipeline)
    single = _flips(dataset, 0)
    assert len({flip for _, flip in single}) == 2  # both happen
    assert _flips(dataset, 2) == single
    # Starting mid-epoch gives the tail of the same epoch, same flips.
    assert _flips(dataset, 0, skip=4) == single[4:]


def test_robust_imagenet_skips_too(messy, tmp_path):
    from ci2p_mm.datasets import RobustImageNet
    directory, _ = messy
    os.makedirs(tmp_path / 'val')
    os.makedirs(tmp_path / 'meta')
    for name in ('rgb.jpg', 'cmyk.jpg', 'truncated.jpg'):
        shutil.copy(osp.join(directory, name), tmp_path / 'val' / name)
    (tmp_path / 'meta' /
     'val.txt').write_text('rgb.jpg 0\ncmyk.jpg 1\ntruncated.jpg 2\n')
    dataset = RobustImageNet(
        data_root=str(tmp_path),
        split='val',
        pipeline=PIPELINE,
        skip_bad_images=True)
    assert len(dataset) == 2 and list(
        dataset.bad_images) == [str(tmp_path / 'val' / 'truncated.jpg')]
