"""Training from stored codec latents (issue 16): encode once, then the ViT.

One store is encoded per session from the toy Animals-10 at 64 px, with a
codec file the tests write (no download); the tests train from it with
tools/train.py, evaluate the checkpoint on images with tools/test.py, and
check equivalence, refusals, staleness, resume and bad files.
"""
import json
import os.path as osp
import shutil

import numpy as np
import pytest
import torch
from conftest import REPO, TINY_ARCH, free_port, run_tool

import ci2p_mm.apis.training as train_api
import ci2p_mm.latents.encoding as encode_module
from ci2p_mm.datasets import BadImageError
from ci2p_mm.latents import LatentStore, LatentStoreError
from ci2p_mm.utils import read_config
from ci2p_mm.utils.io import load_torch_file

SIZE = 64
PIPELINE = ("[dict(type='SafeLoadImageFromFile'),"
            "dict(type='Resize',scale=({0},{0})),"
            "{1}dict(type='PackInputs')]")
FLIP = "dict(type='RandomFlip',prob=0.5,direction='horizontal'),"
STORE = 'latents/test-store'


def write_configs(directory, data_root, codec_file):
    """(image config, latent config): the tiny model on the toy data."""
    model = (f"model = dict(backbone=dict(arch={TINY_ARCH}, img_size={SIZE},"
             f" patch_cfg=dict(pretrained={codec_file!r})),"
             f" head=dict(in_channels=64))\n"
             "train_cfg = dict(max_epochs=1)\n"
             "default_hooks = dict(logger=dict(interval=1))\n")
    train_pipe = PIPELINE.format(SIZE, FLIP)
    test_pipe = PIPELINE.format(SIZE, '')
    image = osp.join(str(directory), 'image.py')
    with open(image, 'w') as f:
        f.write(
            f"_base_ = [{osp.join(REPO, 'configs/ci2p_vit_animals10.py')!r}]\n"
            + model + f"train_dataloader = dict(batch_size=16, num_workers=0, "
            f"dataset=dict(data_root={data_root!r}, pipeline={train_pipe}))\n"
            f"val_dataloader = dict(batch_size=16, num_workers=0, "
            f"dataset=dict(data_root={data_root!r}, pipeline={test_pipe}))\n"
            "test_dataloader = val_dataloader\n")
    latent = osp.join(str(directory), 'latent.py')
    base = osp.join(REPO, 'configs', 'ci2p_vit_animals10_latents.py')
    with open(latent, 'w') as f:
        f.write(f"_base_ = [{base!r}]\n" + model +
                f"train_dataloader = dict(batch_size=16, num_workers=0, "
                f"dataset=dict(store={STORE!r}, source=dict("
                f"data_root={data_root!r}, pipeline={train_pipe})))\n"
                f"val_dataloader = dict(batch_size=16, num_workers=0, "
                f"dataset=dict(store={STORE!r}, source=dict("
                f"data_root={data_root!r}, pipeline={test_pipe})))\n"
                "test_dataloader = val_dataloader\n")
    return image, latent


def encode(config, cfg_options=None, **options):
    """:func:`ci2p_mm.latents.encode` on a config file, in small chunks."""
    options = dict(
        dict(chunk_size=8, num_workers=0, progress=False), **options)
    return encode_module.encode(read_config(config, cfg_options), **options)


@pytest.fixture(scope='module')
def codec_file(tmp_path_factory):
    from ci2p_mm.codec import build_codec
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp('latent_codec') / 'codec.pth')
    torch.save(build_codec('bmshj2018-factorized', 5).state_dict(), path)
    return path


@pytest.fixture(scope='module')
def encoded(toy_animals10, codec_file, tmp_path_factory):
    """(image config, latent config, store folder) on the shared toy set."""
    image, latent = write_configs(
        tmp_path_factory.mktemp('latent_cfgs'), toy_animals10, codec_file)
    store = encode(latent)  # the latent config names its store
    assert store == osp.join(toy_animals10, STORE)
    return image, latent, store


def build_model(config, latent_input=False):
    from mmpretrain.registry import MODELS

    from ci2p_mm.utils import load_model_config
    cfg = load_model_config(config)
    cfg.model.backbone.patch_cfg.latent_input = latent_input
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval()


def dataset(config, split, **overrides):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import DATASETS
    init_default_scope('mmpretrain')  # as the Runner does, for transforms
    cfg = Config.fromfile(config)[f'{split}_dataloader'].dataset
    cfg.update(overrides)
    return DATASETS.build(cfg)


@pytest.mark.slow
def test_encode_train_from_latents_then_test_on_images(encoded, tmp_path):
    image, latent, store = encoded
    record = LatentStore(store).record
    assert record['img_size'] == [SIZE, SIZE]
    assert record['splits']['train']['views'] == ['original', 'hflip']
    assert record['splits']['val']['views'] == ['original']
    out = run_tool('tools/train.py', latent, '--work-dir', str(tmp_path))
    assert 'Epoch(train) [1][3/3]' in out and 'accuracy/top1' in out
    checkpoint = str(tmp_path / 'epoch_1.pth')
    # The checkpoint is the image model's: same keys, the codec included.
    state = load_torch_file(checkpoint)['state_dict']  # safe loading
    assert set(state) == set(build_model(image).state_dict())
    out = run_tool('tools/test.py', image, checkpoint, '--work-dir',
                   str(tmp_path / 'test'))
    assert 'accuracy/top1' in out


def test_latent_logits_match_image_logits(encoded):
    """Same weights: logits from images and from stored fp16 latents agree
    to fp16 precision; the stored flip is the flipped image's latent."""
    image, latent, store = encoded
    model = build_model(image)
    images, latents = dataset(image, 'val'), dataset(latent, 'val')
    batch = [images[i] for i in range(8)]
    batch_latent = [latents[i] for i in range(8)]
    with torch.no_grad():
        data = model.data_preprocessor(
            dict(inputs=[b['inputs'] for b in batch]))
        y = model.backbone.patch_embed.ci2p_encoder(data['inputs'])
        logits_image = model(data['inputs'], mode='tensor')
        lat_model = build_model(latent, latent_input=True)
        lat_model.load_state_dict(model.state_dict())
        lat_data = lat_model.data_preprocessor(
            dict(inputs=[b['inputs'] for b in batch_latent]))
        logits_latent = lat_model(lat_data['inputs'], mode='tensor')
    stored = lat_data['inputs']
    assert stored.dtype == torch.float32 and stored.shape == y.shape
    # fp16 rounding: relative 2**-11, plus fp16's subnormal spacing near 0
    assert ((stored - y).abs() <= y.abs() * 2**-11 + 2**-24 + 1e-6).all()
    assert not torch.equal(stored, y)  # really rounded to fp16
    scale = logits_image.abs().max()
    assert (logits_latent - logits_image).abs().max() <= 2e-3 * scale

    # The flipped view of a training sample is the flipped image's latent.
    train_images = dataset(image, 'train')
    store_array = LatentStore(store).array('train')
    train_images.pipeline.transforms = [
        t for t in train_images.pipeline.transforms
        if type(t).__name__ != 'RandomFlip'
    ]
    with torch.no_grad():
        x = model.data_preprocessor(
            dict(inputs=[train_images[3]['inputs']]))['inputs']
        y_flip = model.backbone.patch_embed.ci2p_encoder(x.flip(-1))[0]
    stored_flip = torch.from_numpy(np.array(store_array[3, 1])).float()
    assert torch.allclose(stored_flip, y_flip, rtol=2**-10, atol=1e-5)


def test_flip_is_seeded_per_sample(encoded):
    from ci2p_mm.datasets import SeededIndex
    _, latent, _ = encoded
    train = dataset(latent, 'train')
    flips = [
        train[SeededIndex(0, seed)]['data_samples'].flip for seed in range(16)
    ]
    again = [
        train[SeededIndex(0, seed)]['data_samples'].flip for seed in range(16)
    ]
    assert flips == again and 0 < sum(flips) < 16


@pytest.mark.slow
def test_store_refuses_a_model_of_another_codec(encoded, codec_file, tmp_path):
    from mmpretrain.registry import MODELS

    from ci2p_mm.codec import build_codec
    from ci2p_mm.models.utils import set_latent_input
    from ci2p_mm.utils import load_model_config
    image, latent, store = encoded
    store = LatentStore(store)
    model = build_model(latent, latent_input=True)
    store.check_model(model)  # its own codec: accepted

    torch.manual_seed(1)
    other = str(tmp_path / 'other.pth')
    torch.save(build_codec('bmshj2018-factorized', 5).state_dict(), other)
    cases = [
        (dict(pretrained=other), 'sha256'),
        (dict(pretrained=False, quality=4), 'quality 4'),
        (dict(codec='bmshj2018-hyperprior',
              pretrained=False), 'bmshj2018-hyperprior'),
    ]
    for patch_cfg, named in cases:
        cfg = load_model_config(latent)
        cfg.model.backbone.patch_cfg.update(patch_cfg)
        with pytest.raises(LatentStoreError) as err:
            store.check_model(MODELS.build(cfg.model))
        message = str(err.value)
        assert named in message and 'bmshj2018-factorized quality 5' in message
        assert store.root in message

    cfg = load_model_config(latent)
    cfg.model.backbone.img_size = 128  # same codec weights, bigger images
    with pytest.raises(LatentStoreError, match='images 128x128'):
        store.check_model(MODELS.build(cfg.model))
    with pytest.raises(LatentStoreError, match='latent_input=True'):
        store.check_model(set_latent_input(build_model(image), False))

    # Through tools/train.py: the config's hook stops the run naming both.
    with pytest.raises(LatentStoreError, match='another codec'):
        train_api.train([
            latent, '--work-dir',
            str(tmp_path / 'w'), '--cfg-options',
            f'model.backbone.patch_cfg.pretrained={other}'
        ])


def copy_data(toy_animals10, tmp_path):
    root = str(tmp_path / 'data')
    shutil.copytree(
        toy_animals10, root, ignore=shutil.ignore_patterns('latents'))
    return root


@pytest.mark.slow
def test_stale_annotations_are_named(toy_animals10, codec_file, tmp_path):
    root = copy_data(toy_animals10, tmp_path)
    image, latent = write_configs(tmp_path, root, codec_file)
    encode(latent, splits=['val'])
    assert len(dataset(latent, 'val')) == 20
    ann = osp.join(root, 'meta', 'val.txt')
    with open(ann) as f:
        lines = f.readlines()
    with open(ann, 'w') as f:
        f.writelines(lines[:-1])  # one image fewer
    with pytest.raises(LatentStoreError, match='stale') as err:
        dataset(latent, 'val')
    assert ann in str(err.value)
    with pytest.raises(LatentStoreError, match='stale'):
        encode(latent, splits=['val'])
    encode(latent, splits=['val'], overwrite=True)
    assert len(dataset(latent, 'val')) == 19


def test_killed_encode_resumes(encoded, monkeypatch, tmp_path):
    """Interrupted after 2 chunks, a second run encodes only the rest and
    ends with the same store as an uninterrupted run."""
    image, latent, full = encoded
    out = str(tmp_path / 'store')
    commits = []
    real_commit = encode_module.commit_chunk

    def commit_then_die(path, entry):
        if len(commits) == 2:
            raise KeyboardInterrupt  # as if killed here
        commits.append(entry['chunk'])
        real_commit(path, entry)

    monkeypatch.setattr(encode_module, 'commit_chunk', commit_then_die)
    with pytest.raises(KeyboardInterrupt):
        encode(image, out=out, splits=['train'])
    with pytest.raises(LatentStoreError, match='incomplete'):
        LatentStore(out).check_complete('train')
    with open(osp.join(out, 'train.done.0'), 'a') as f:
        f.write('{"chunk": 4, "ba')  # a line cut by the kill is ignored

    encoded_again = []
    monkeypatch.setattr(
        encode_module, 'commit_chunk', lambda path, entry:
        (encoded_again.append(entry['chunk']), real_commit(path, entry)))
    encode(image, out=out, splits=['train'])
    assert commits == [0, 1] and encoded_again == [2, 3, 4]
    resumed, whole = LatentStore(out), LatentStore(full)
    resumed.check_complete('train')
    assert np.array_equal(resumed.array('train'), whole.array('train'))
    assert resumed.record['codec'] == whole.record['codec']


@pytest.mark.slow
def test_two_processes_encode_the_same_store(encoded, tmp_path):
    """``--launcher pytorch`` with 2 CPU processes (gloo), as
    ``torchrun --nproc_per_node N`` runs it on N GPUs: the ranks take
    chunks round-robin and write disjoint rows of the same files; the
    store equals the one-process store row for row (to fp16 rounding)."""
    import os
    import subprocess
    import sys
    image, latent, whole_root = encoded
    out = str(tmp_path / 'two_ranks')
    proc = subprocess.run([
        sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
        '--master_port',
        str(free_port()),
        osp.join(REPO, 'tools/dataset_converters/encode_latents.py'), latent,
        '--launcher', 'pytorch', '--out', out, '--chunk-size', '8',
        '--num-workers', '0', '--no-progress'
    ],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    two, whole = LatentStore(out), LatentStore(whole_root)
    for split in ('train', 'val'):
        two.check_complete(split)
        # Same rows in the same places; values equal up to fp16 rounding
        # (one thread per rank here: float32 sums in another order can
        # round to the neighbouring fp16 value). A misplaced row would be
        # off by ~0.1.
        np.testing.assert_allclose(
            np.asarray(two.array(split), np.float32),
            np.asarray(whole.array(split), np.float32),
            rtol=1e-3,
            atol=1e-4,
            err_msg=split)
        assert np.array_equal(two.labels(split), whole.labels(split))
        for rank in (0, 1):  # both ranks did part of the work
            with open(two.done_log(split, rank)) as f:
                assert f.read().strip(), (split, rank)
    assert two.record['codec'] == whole.record['codec']


@pytest.mark.slow
def test_bad_files_as_the_image_path(toy_animals10, codec_file, tmp_path):
    root = copy_data(toy_animals10, tmp_path)
    image, latent = write_configs(tmp_path, root, codec_file)
    with open(osp.join(root, 'meta', 'val.txt')) as f:
        bad = osp.join(root, f.readline().split()[0])
    with open(bad, 'wb') as f:
        f.write(b'<html>not an image</html>')
    with pytest.raises(
            BadImageError, match='Bad image .*' + osp.basename(bad)):
        encode(latent, splits=['val'])
    skip = {'val_dataloader.dataset.source.skip_bad_images': True}
    encode(latent, skip, splits=['val'], overwrite=True)
    assert len(dataset(latent, 'val')) == 20
    with pytest.raises(BadImageError):
        dataset(latent, 'val')[0]
    left_out = dataset(latent, 'val', skip_bad_images=True)
    assert len(left_out) == 19 and list(left_out.bad_images) == [bad]


def test_wrong_inputs_are_refused(encoded):
    from mmengine.config import ConfigDict

    from ci2p_mm.latents import LatentDataPreprocessor
    from ci2p_mm.latents.encoding import encoding_pipeline
    image, latent, _ = encoded
    with pytest.raises(ValueError, match='codec latents'):
        LatentDataPreprocessor()(dict(inputs=torch.zeros(2, 3, 64, 64)))
    with pytest.raises(ValueError, match='looks like images'):
        build_model(
            latent, latent_input=True)(
                torch.rand(2, 3, 64, 64), mode='tensor')
    with pytest.raises(ValueError, match='RandomResizedCrop'):
        encoding_pipeline([
            dict(type='SafeLoadImageFromFile'),
            dict(type='RandomResizedCrop', scale=64)
        ], 'train')
    with pytest.raises(ValueError, match='right before'):
        encoding_pipeline([
            ConfigDict(type='RandomFlip', prob=0.5),
            dict(type='Resize', scale=64)
        ], 'train')
    resize_flip = [
        dict(type='Resize', scale=64),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackInputs')
    ]
    assert encoding_pipeline(resize_flip,
                             'train') == ([resize_flip[0],
                                           resize_flip[2]], True)
    resize_flip[1]['prob'] = 0
    assert encoding_pipeline(resize_flip, 'train')[1] is False
    for option in ('batch_size', 'chunk_size', 'num_workers'):
        with pytest.raises(LatentStoreError, match=f'{option}=-1: must be'):
            encode_module.encode(read_config(latent), **{option: -1})
    json.dumps(LatentStore(encoded[2]).record)  # plain JSON
