"""A non-finite loss stops training, giving the iteration and the value,
and the recovery it advises works.

Issue 6, point 5: NonFiniteLossHook (in configs/_base_/default_runtime.py).
Issue 21, point 6: no checkpoint of a diverged state (``best`` included),
and ``--resume`` with a lowered learning rate continues with it.
"""
import os
import os.path as osp
import re
import shlex
from types import SimpleNamespace

import pytest
import torch
from _reliability import REPO, make_toy_data, write_config
from mmengine.config import Config

import ci2p_mm.apis.training as train_api
from ci2p_mm.engine import NonFiniteLossHook
from ci2p_mm.utils.io import load_torch_file


def fake_runner(iteration, epoch=0, batches=6, last_ckpt=None):
    hub = SimpleNamespace(get_info=lambda key, default=None: last_ckpt)
    cfg = Config(
        dict(optim_wrapper=dict(optimizer=dict(lr=0.001))),
        cfg_text='# read from cfg.py',
        filename='cfg.py')
    return SimpleNamespace(
        iter=iteration,
        epoch=epoch,
        message_hub=hub,
        train_dataloader=[None] * batches,
        model=torch.nn.Linear(2, 2),
        cfg=cfg,
        work_dir='work')


@pytest.mark.parametrize('value', [float('nan'), float('inf'), -float('inf')])
def test_hook_names_iteration_and_value(value):
    hook = NonFiniteLossHook()
    outputs = dict(
        loss=torch.tensor(value),
        loss_cls=torch.tensor(value),
        accuracy=torch.tensor(1.0))
    with pytest.raises(FloatingPointError) as info:
        hook.after_train_iter(
            fake_runner(6, epoch=1, last_ckpt='e1.pth'), 0, outputs=outputs)
    message = str(info.value)
    assert message.startswith('Non-finite loss at iteration 7 (epoch 2, '
                              'batch 1 of 6): ')
    assert f'loss={value}' in message and f'loss_cls={value}' in message
    assert 'the last one, e1.pth, is from before it' in message
    assert ('python tools/train.py cfg.py --work-dir work --resume '
            '--cfg-options optim_wrapper.optimizer.lr=0.0001') in message


def test_hook_passes_finite_losses():
    NonFiniteLossHook().after_train_iter(
        fake_runner(0), 0, outputs=dict(loss=torch.tensor(2.3), loss_x=1.0))


def test_default_runtime_has_the_hook():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'ci2p_vit_animals10.py'))
    assert dict(type='NonFiniteLossHook') in cfg.custom_hooks


def test_training_stops_at_the_first_non_finite_loss(tmp_path):
    root = make_toy_data(tmp_path / 'data', 2, 64, 0.5)
    config = write_config(
        tmp_path,
        root,
        epochs=1,
        extra=("model['head']['loss'] = dict(type='CrossEntropyLoss', "
               "loss_weight=float('inf'))\n"))
    work_dir = str(tmp_path / 'work')
    with pytest.raises(
            FloatingPointError,
            match=r'Non-finite loss at iteration 1 \(epoch 1, '
            r'batch 1 of 2\): loss=inf'):
        train_api.train([config, '--work-dir', work_dir])
    assert not [n for n in os.listdir(work_dir) if n.endswith('.pth')]


def test_hook_refuses_to_save_non_finite_weights():
    hook = NonFiniteLossHook()
    runner = fake_runner(3)
    state = dict(
        state_dict={
            'a': torch.ones(2),
            'b': torch.tensor([1.0, float('nan')]),
            'n': torch.tensor([3])
        })
    with pytest.raises(
            FloatingPointError,
            match=r'Refusing to save a checkpoint at iteration 3 '
            r'\(epoch 1\): its weights b hold NaN or inf'):
        hook.before_save_checkpoint(runner, state)
    state['state_dict']['b'] = torch.ones(2)
    hook.before_save_checkpoint(runner, state)  # finite: saved


def _pth_files(work_dir):
    return sorted(n for n in os.listdir(work_dir) if n.endswith('.pth'))


def test_one_iteration_per_epoch_saves_no_diverged_checkpoint(tmp_path):
    """The update of iteration 1 leaves finite weights whose next forward
    pass is NaN: no epoch_1.pth, no best_*.pth (they were written)."""
    root = make_toy_data(tmp_path / 'data', 2, 64, 0.5)
    config = write_config(tmp_path, root, epochs=2, batch_size=20)
    work_dir = str(tmp_path / 'work')
    with pytest.raises(FloatingPointError) as info:
        train_api.train([
            config, '--work-dir', work_dir, '--cfg-options',
            'optim_wrapper.optimizer.lr=1e12'
        ])
    message = str(info.value)
    assert message.startswith('Non-finite loss at the end of epoch 1: the '
                              'weights now give loss=nan on the last '
                              'training batch')
    assert 'there is none yet, so --resume starts from the beginning' in \
        message
    assert _pth_files(work_dir) == []
    assert not osp.exists(osp.join(work_dir, 'last_checkpoint'))


WARMUP_INTO_A_TOO_HIGH_LR = """
# Warmup to a peak that diverges: epoch 1 trains at lr * 1e-16 (1e-4),
# epoch 2 at lr (mmengine's LinearLR reaches end_factor at step end - 1).
param_scheduler = [dict(type='LinearLR', start_factor=1e-16, by_epoch=True,
                        begin=0, end=2)]
optim_wrapper = dict(optimizer=dict(lr=1e12))
"""


@pytest.mark.slow  # end to end (pytest.ini)
def test_lowering_the_lr_and_resuming_recovers(tmp_path, capsys):
    """The advised recovery, as a user follows it: the run diverges in
    epoch 2 (nothing of it saved), the message's command with a lower
    learning rate resumes from epoch_1.pth with that rate and finishes.
    mmengine alone resumed with the checkpoint's rate and diverged again."""
    root = make_toy_data(tmp_path / 'data', 2, 64, 0.5)
    config = write_config(
        tmp_path, root, epochs=3, extra=WARMUP_INTO_A_TOO_HIGH_LR)
    work_dir = str(tmp_path / 'work')
    with pytest.raises(FloatingPointError) as info:
        train_api.train([config, '--work-dir', work_dir])
    message = str(info.value)
    assert 'epoch 2' in message, message
    assert _pth_files(work_dir) == [
        'best_accuracy_top1_epoch_1.pth', 'epoch_1.pth'
    ]
    assert osp.join(work_dir, 'epoch_1.pth') in message
    command = re.search(r'run: (python tools/train\.py .*?) \(with your',
                        message).group(1)
    args = shlex.split(command)[2:]
    assert args == [
        config, '--work-dir', work_dir, '--resume', '--cfg-options',
        'optim_wrapper.optimizer.lr=1e+11'
    ]
    # The user lowers it further than the example (1e11 still diverges).
    args[-1] = 'optim_wrapper.optimizer.lr=0.0001'
    capsys.readouterr()
    runner = train_api.train(args)
    out = capsys.readouterr().out
    assert ('--resume: the config\'s learning rate differs from that of the '
            f'checkpoint {osp.join(work_dir, "epoch_1.pth")}: 0.0001 '
            '(checkpoint: 1e+12)') in out
    assert 'Epoch(train) [3]' in out and 'Epoch(train) [1]' not in out
    # The warmup continued from the new base: epoch 3 at the full 1e-4.
    assert runner.optim_wrapper.get_lr()['lr'] == [pytest.approx(1e-4)]
    assert runner.param_schedulers[0].base_values == [pytest.approx(1e-4)]
    final = load_torch_file(osp.join(work_dir, 'epoch_3.pth'))
    assert all(
        torch.isfinite(v).all() for v in final['state_dict'].values()
        if v.is_floating_point())


def test_advice_gives_a_finite_learning_rate(tmp_path):
    """An lr of inf (or 0, NaN) has no useful tenth: the paper's 1e-4."""
    runner = fake_runner(3)
    runner.cfg.optim_wrapper.optimizer.lr = float('inf')
    advice = NonFiniteLossHook.advice(runner)
    assert '--cfg-options optim_wrapper.optimizer.lr=0.0001 ' in advice
    assert 'lr=inf' not in advice


def test_advice_names_the_schedule_that_raised_the_lr():
    runner = fake_runner(3)
    optimizer = torch.optim.SGD(runner.model.parameters(), lr=1e9)
    from mmengine.optim import OptimWrapper
    runner.optim_wrapper = OptimWrapper(optimizer)
    advice = NonFiniteLossHook.advice(runner)
    assert ('lr=0.0001 (with your other options; the param_scheduler raised '
            'the learning rate to 1e+09: fix it, or drop it with '
            'param_scheduler=[] in --cfg-options;') in advice


def _resumed_groups(saved_lr, saved_initial, configured, scheduled):
    """An optimizer as ``resume`` leaves it (the checkpoint's state loaded),
    then the config's learning rate applied."""
    from mmengine.optim import OptimWrapper
    from mmengine.optim.scheduler import ExponentialParamScheduler

    from ci2p_mm.engine.runner import apply_configured_lr
    wrapper = OptimWrapper(
        torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=configured))
    schedulers = [
        ExponentialParamScheduler(wrapper, 'lr', gamma=1e14, by_epoch=True)
    ] if scheduled else None
    group = wrapper.optimizer.param_groups[0]
    group.update(lr=saved_lr, initial_lr=saved_initial)  # the checkpoint's
    for scheduler in schedulers or []:
        scheduler.base_values = [saved_initial]  # its state, loaded
    change = apply_configured_lr(wrapper, schedulers, [[configured]])
    return group, schedulers, change


def test_config_lr_runs_once_the_raising_scheduler_is_dropped():
    """Round three's hole: a scheduler raised 1e-5 to 1e9; lowering the lr
    (or not) and dropping the scheduler resumed at 1e9 (its factor
    survived in the scaled lr)."""
    group, _, change = _resumed_groups(1e9, 1e-5, 1e-5, scheduled=False)
    assert group['lr'] == 1e-5 and 'initial_lr' not in group
    assert change == '1e-05 (checkpoint: 1e+09; no learning-rate schedule ' \
        'now)'
    group, _, _ = _resumed_groups(1e9, 1e-5, 1e-6, scheduled=False)
    assert group['lr'] == 1e-6
    # The scheduler kept: the schedule continues from the new base.
    group, schedulers, change = _resumed_groups(
        1e9, 1e-5, 1e-6, scheduled=True)
    assert group['lr'] == pytest.approx(1e8)
    assert group['initial_lr'] == 1e-6
    assert schedulers[0].base_values == [pytest.approx(1e-6)]
    assert change == '1e-06 (checkpoint: 1e-05)'
    # Same config: exact resume, nothing changes.
    group, _, change = _resumed_groups(1e9, 1e-5, 1e-5, scheduled=True)
    assert (group['lr'], change) == (1e9, '')


@pytest.mark.slow  # two trainings
def test_dropping_the_scheduler_and_resuming_trains_at_the_config_lr(tmp_path):
    """The advised recovery from a schedule that raised the lr, as a user
    follows it, ends at the config's rate."""
    root = make_toy_data(tmp_path / 'data', 2, 64, 0.5)
    config = write_config(
        tmp_path,
        root,
        epochs=3,
        extra=("param_scheduler = [dict(type='ExponentialLR', gamma=1e14, "
               "by_epoch=True)]\n"
               "optim_wrapper = dict(optimizer=dict(lr=1e-5))\n"))
    work_dir = str(tmp_path / 'work')
    with pytest.raises(FloatingPointError) as info:
        train_api.train([config, '--work-dir', work_dir])
    assert 'the param_scheduler raised the learning rate to 1e+09' in str(
        info.value)
    runner = train_api.train([
        config, '--work-dir', work_dir, '--resume', '--cfg-options',
        'param_scheduler=[]'
    ])
    assert runner.optim_wrapper.get_lr()['lr'] == [1e-5]
    assert osp.isfile(osp.join(work_dir, 'epoch_3.pth'))
