"""A non-finite loss stops training, giving the iteration and the value.

Issue 6, point 5: NonFiniteLossHook (in configs/_base_/default_runtime.py).
"""
import os
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from _reliability import REPO, make_toy_data, write_config
from mmengine.config import Config

import ci2p_mm.apis.training as train_api
from ci2p_mm.engine import NonFiniteLossHook


def fake_runner(iteration, epoch=0, batches=6, last_ckpt=None):
    hub = SimpleNamespace(get_info=lambda key, default=None: last_ckpt)
    return SimpleNamespace(iter=iteration, epoch=epoch, message_hub=hub,
                           train_dataloader=[None] * batches)


@pytest.mark.parametrize('value', [float('nan'), float('inf'),
                                   -float('inf')])
def test_hook_names_iteration_and_value(value):
    hook = NonFiniteLossHook()
    outputs = dict(loss=torch.tensor(value), loss_cls=torch.tensor(value),
                   accuracy=torch.tensor(1.0))
    with pytest.raises(FloatingPointError) as info:
        hook.after_train_iter(fake_runner(6, epoch=1, last_ckpt='e1.pth'),
                              0, outputs=outputs)
    message = str(info.value)
    assert message.startswith('Non-finite loss at iteration 7 (epoch 2, '
                              'batch 1 of 6): ')
    assert f'loss={value}' in message and f'loss_cls={value}' in message
    assert 'the last one is e1.pth' in message


def test_hook_passes_finite_losses():
    NonFiniteLossHook().after_train_iter(
        fake_runner(0), 0, outputs=dict(loss=torch.tensor(2.3), loss_x=1.0))


def test_default_runtime_has_the_hook():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'ci2p_vit_animals10.py'))
    assert dict(type='NonFiniteLossHook') in cfg.custom_hooks


def test_training_stops_at_the_first_non_finite_loss(tmp_path):
    root = make_toy_data(tmp_path / 'data', 2, 64, 0.5)
    config = write_config(tmp_path, root, epochs=1, extra=(
        "model['head']['loss'] = dict(type='CrossEntropyLoss', "
        "loss_weight=float('inf'))\n"))
    work_dir = str(tmp_path / 'work')
    with pytest.raises(FloatingPointError,
                       match=r'Non-finite loss at iteration 1 \(epoch 1, '
                       r'batch 1 of 2\): loss=inf'):
        train_api.train([config, '--work-dir', work_dir])
    assert not [n for n in os.listdir(work_dir) if n.endswith('.pth')]
