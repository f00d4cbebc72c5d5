"""The speed levers of benchmark.py (issue 22) on the CPU: profile
summaries (the CUDA arithmetic on events made here), batch-size sweeps,
optimizer implementations, compile settings, latent-input models in the
step mode, and the lever table. Correctness only: no timings."""
import json
import os.path as osp
from argparse import Namespace

import pytest
import torch
from conftest import REPO, TINY_ARCH
from torch.autograd import DeviceType
from torch.autograd.profiler_util import EventList, FunctionEvent
from torch.utils.benchmark import Measurement

import ci2p_mm.analysis.benchmark as benchmark
from ci2p_mm.analysis import lever_table, profile
from ci2p_mm.analysis.timing import (InputSizeError, build_optim_wrapper,
                                     check_input_size, compile_kwargs,
                                     set_optimizer_impl, uses_cudagraphs)
from ci2p_mm.utils.timing import interleave


def event(name, start, end, device=False, thread=1, annotation=False):
    """A profiler event as ``prof.events()`` holds them (kineto's kernels
    are events on the device)."""
    return FunctionEvent(
        id=0,
        name=name,
        thread=thread,
        start_us=start,
        end_us=end,
        use_device='cuda',
        device_type=DeviceType.CUDA if device else DeviceType.CPU,
        stack=[],
        input_shapes=[],
        is_user_annotation=annotation)


def test_cuda_summary_from_events():
    """Two iterations of 100 us: kernels overlapping on two streams, a gap,
    launch and sync calls, an SDPA operator, work on the autograd
    thread, a data wait, and a kernel outside the iterations; summarised
    through torch's own ``key_averages()``."""
    events = EventList([
        event(profile.STEP_RANGE, 0, 100),
        event(profile.STEP_RANGE, 100, 200),
        event(profile.DATA_RANGE, 0, 10),
        event('aten::_scaled_dot_product_flash_attention', 10, 20),
        event('aten::addmm', 20, 30),
        event('aten::addmm_backward', 40, 50, thread=2),
        event(
            'autograd::engine::evaluate_function: AddmmBackward0',
            40,
            55,
            thread=2),
        event('aten::pin_memory', 0, 90, thread=3),  # another thread
        event('cudaLaunchKernel', 12, 14),
        event('cudaLaunchKernel', 22, 24),
        event('cudaStreamSynchronize', 80, 98),
        event('pytorch_flash::flash_fwd_kernel', 15, 45, device=True),
        event('gemm', 30, 60, device=True),  # overlaps: busy 15..60
        event('gemm', 120, 150, device=True),
        event('late', 300, 310, device=True),  # after the iterations
        # kineto's GPU-timeline copy of a range: spans gaps, not a kernel
        event(profile.STEP_RANGE, 15, 98, device=True),
        event('user range', 15, 98, device=True, annotation=True),
    ])
    events._build_tree()  # as the profiler does for prof.events()
    s = profile.summarize(events, 2, 'cuda', top=2)
    assert s['wall_ms_per_step'] == pytest.approx(0.1)
    assert s['device_busy_ms_per_step'] == pytest.approx(0.0375)  # 75 us
    assert s['device_busy_share'] == pytest.approx(0.375)
    assert s['device_idle_share'] == pytest.approx(0.625)
    assert s['kernels_per_step'] == 1.5
    assert s['launch_calls_per_step'] == 1
    assert s['launch_ms_per_step'] == pytest.approx(0.002)
    assert s['sync_wait_ms_per_step'] == pytest.approx(0.009)
    assert s['data_wait_ms_per_step'] == pytest.approx(0.005)
    # ATen operators of every thread, as key_averages() counts them
    assert s['aten_ops_per_step'] == 2
    assert s['sdpa'] == ['flash (CUDA)']
    assert s['sdpa_device_kernels'] == ['pytorch_flash::flash_fwd_kernel']
    assert [t['name'] for t in s['top']
            ] == ['gemm', 'pytorch_flash::'
                  'flash_fwd_kernel']
    assert s['top'][0]['ms_per_step'] == pytest.approx(0.03)
    text = profile.format_summary('model', s)
    assert 'GPU busy 38%' in text and 'flash (CUDA)' in text
    assert 'Self CUDA' in text and 'gemm' in text  # torch's table
    assert profile.union_us([(0, 10), (5, 20), (30, 40)]) == 30
    assert profile.sdpa_kernels([
        'aten::_scaled_dot_product_attention_math',
        'aten::_scaled_dot_product_efficient_attention'
    ]) == ['math (unfused matmul + softmax)', 'memory-efficient (CUDA)']


def test_sweep_strips_per_run_options():
    argv = [
        'a.py', '--batch-sizes', '2', '4', '--out=x.json', '--profile',
        '--batch-size', '8', '--amp', 'bf16', '--out', 'y.json'
    ]
    assert benchmark.without_options(argv, benchmark.PER_RUN_OPTIONS) == [
        'a.py', '--profile', '--amp', 'bf16'
    ]


def test_measuring_tools_bound_inputs_as_the_export_does():
    """The export's check with the measuring tools' batch bound (2048 x
    256 x 256), wording and error class (a ValueError too)."""
    check_input_size('--img-size 256 --batch-size 2048', (256, 256), 2048)
    with pytest.raises(
            InputSizeError,
            match=r'^--img-size 256 --batch-size 2049: a batch of 2049 at '
            r'256 x 256 is 134283264 pixels, more than the 134217728 '
            r'\(2048 x 256 x 256\) measured here; choose a smaller batch\.$'):
        check_input_size('--img-size 256 --batch-size 2049', (256, 256), 2049)
    with pytest.raises(
            ValueError,
            match=r'^--shape 4096 2048: 4096 x 2048 is 8388608 pixels, more '
            r'than the 4194304 \(2048 x 2048\) per image measured here; '
            r'choose a smaller size\.$'):
        check_input_size('--shape 4096 2048', (4096, 2048))


def test_optimizer_impls_and_compile_settings():
    model = torch.nn.Linear(4, 2)
    cfg = dict(optimizer=dict(type='Adam', lr=1e-3, foreach=True))
    for impl, key in (('fused', 'fused'), ('foreach', 'foreach')):
        args = Namespace(amp=None, device='cpu', optimizer_impl=impl)
        wrapper = build_optim_wrapper(model, cfg, args)
        assert wrapper.optimizer.defaults[key] is True
        model(torch.rand(3, 4)).sum().backward()
        wrapper.step()  # torch's fused Adam runs on the CPU too
    assert set_optimizer_impl(dict(foreach=True),
                              'config') == dict(foreach=True)
    with pytest.raises(ValueError, match='choose one of'):
        set_optimizer_impl({}, 'apex')
    args = Namespace(
        compile=True,
        compile_mode='default',
        device='cuda',
        compile_backend='inductor')
    assert compile_kwargs(args) == {} and not uses_cudagraphs(args)
    args.compile_mode = 'reduce-overhead'
    assert compile_kwargs(args) == dict(mode='reduce-overhead')
    assert uses_cudagraphs(args)
    args.device, args.compile_backend = 'cpu', 'eager'
    assert not uses_cudagraphs(args)
    assert compile_kwargs(args) == dict(
        mode='reduce-overhead', backend='eager')


@pytest.mark.filterwarnings('ignore::FutureWarning',
                            'ignore:torch.cuda.amp.GradScaler is enabled')
def test_cuda_amp_optim_wrapper_gets_the_amp_dtype(monkeypatch):
    """--amp on CUDA: mmengine's AmpOptimWrapper autocasts to --amp's dtype
    (built here on the CPU: only its CUDA assertion is patched)."""
    import mmengine.optim.optimizer.amp_optimizer_wrapper as amp
    monkeypatch.setattr(amp, 'is_cuda_available', lambda: True)
    cfg = dict(optimizer=dict(type='SGD', lr=0.1))
    for name, dtype in (('bf16', torch.bfloat16), ('fp16', torch.float16)):
        args = Namespace(amp=name, device='cuda', optimizer_impl='config')
        wrapper = build_optim_wrapper(torch.nn.Linear(2, 2), cfg, args)
        assert type(wrapper).__name__ == 'AmpOptimWrapper'
        assert wrapper.cast_dtype is dtype
    assert cfg == dict(optimizer=dict(type='SGD', lr=0.1))  # not changed


def test_interleave_rounds_warmup_setups_and_measurements():
    """The one timer: warm-up rounds of one call, then timed rounds of
    ``number`` calls, round-robin; setups before every block, untimed;
    torch's Measurement per statement; the report sees every block."""
    calls, blocks = [], []
    statements = {
        'a': lambda: calls.append('a'),
        'b': lambda: calls.append('b')
    }
    timings = interleave(
        statements,
        repeats=3,
        warmup=2,
        number=4,
        batch=8,
        setups={'b': lambda: calls.append('setup b')},
        report=lambda name, index, seconds, other: blocks.append(
            (name, index)))
    warm = ['a', 'setup b', 'b'] * 2
    timed = ['a'] * 4 + ['setup b'] + ['b'] * 4
    assert calls == warm + timed * 3
    assert blocks == [(n, i) for i in range(5) for n in 'ab']
    for name, t in timings.items():
        assert isinstance(t, Measurement)
        assert t.label == name
        assert t.num_threads == torch.get_num_threads()
        assert len(t.seconds) == 3 and len(t.other_cores) == 3
        assert t.img_per_s == pytest.approx(8 / t.median)
        assert t.spread == pytest.approx(
            (max(t.seconds) - min(t.seconds)) / t.median)
        assert t.iqr >= 0
    assert set(interleave(statements, 0, 1)) == {'a', 'b'}  # warm-up only


def test_downstream_step_timing_on_an_openmmlab_model():
    """downstream_timing's loss forward, backward and predict, on an
    mmpretrain classifier (mmdet, mmpose and mmseg models take the same
    calls; tests/downstream build those where full mmcv is installed)."""
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample

    from ci2p_mm.analysis.downstream_timing import time_steps
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            data_preprocessor=dict(type='ClsDataPreprocessor'),
            backbone=dict(
                type='VisionTransformer',
                arch=dict(
                    embed_dims=32,
                    num_layers=1,
                    num_heads=2,
                    feedforward_channels=64),
                img_size=32,
                patch_size=16),
            head=dict(
                type='VisionTransformerClsHead', num_classes=3,
                in_channels=32)))
    batch = dict(
        inputs=[torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)] * 2,
        data_samples=[DataSample().set_gt_label(1) for _ in range(2)])
    times = time_steps(model, batch, repeats=2, warmup=1)
    assert list(times) == ['loss_forward_s', 'backward_s', 'predict_s']
    assert all(v >= 0 for v in times.values())
    assert not model.training  # predict ran last, in eval mode
    assert all(p.grad is not None for p in model.head.parameters())


def test_lever_table_reads_the_committed_reports():
    """The measured history under docs/results/ (written by the earlier
    timers) stays readable: step, end-to-end and sweep reports."""
    results = osp.join(REPO, 'docs/results')
    table = lever_table.lever_table([
        osp.join(results, 'cpu-2026-12-01', name)
        for name in ('step_bs8_fp32_quiet.json',
                     'step_bs8_fp32_train_fused.json', 'e2e_cpu_bs8_fp32.json',
                     'gpu_script_dry_run/step_batch_sweep.json')
    ])
    assert '| baseline | ci2p_vit_animals10 | 4.5 | 1.00x | 11.4 | 1.00x |' \
        in table
    assert '| fused | ci2p_vit_animals10 | 4.6 | 1.02x | - |' in table
    assert '| end to end | ci2p_vit_animals10_latents [device] |' in table
    assert '| batch 4 | ci2p_vit_animals10 |' in table


def tiny_config(tmp_path, base):
    path = tmp_path / ('tiny_' + osp.basename(base))
    path.write_text(f'_base_ = [{osp.join(REPO, base)!r}]\n'
                    f'model = dict(backbone=dict(arch={TINY_ARCH}), '
                    'head=dict(in_channels=64))\n')
    return str(path)


@pytest.mark.slow  # end to end (pytest.ini)
def test_step_sweep_profile_sdpa_and_lever_table(tmp_path):
    """One in-process sweep over two batch sizes of ViT/16, CI2P-ViT and
    CI2P-ViT from latents (random fp16 latents), with profiles, the SDPA
    report and fused Adam; the lever table reads it."""
    configs = [
        tiny_config(tmp_path, f'configs/{name}.py')
        for name in ('vit_b16_animals10', 'ci2p_vit_animals10',
                     'ci2p_vit_animals10_latents')
    ]
    common = [
        *configs, '--no-pretrained', '--img-size', '64', '--repeats', '1',
        '--warmup', '0', '--memory', 'none', '--device', 'cpu'
    ]
    out = tmp_path / 'sweep.json'
    report = benchmark.run(common + [
        '--batch-sizes', '1', '2', '--profile', '--profile-steps', '1',
        '--report-sdpa', '--optimizer-impl', 'fused', '--out',
        str(out)
    ])
    assert json.loads(out.read_text())['table'] == report['table']
    assert [r['batch_size'] for r in report['runs']] == [1, 2]
    run = report['runs'][1]['report']
    assert '--batch-size' in report['runs'][1]['command']
    assert run['meta']['batch_size'] == 2
    assert run['meta']['optimizer_impl'] == 'fused'
    names = [row['name'] for row in run['results']]
    assert names == [osp.splitext(osp.basename(c))[0] for c in configs]
    for row in run['results']:
        for mode in ('infer', 'train'):
            assert row[mode]['img_per_s'] > 0
            assert row[mode]['sdpa'] == ['flash (CPU)']
            summary = row[mode]['profile']
            assert summary['aten_ops_per_step'] > 10 and summary['top']
            assert 0 < summary['op_share'] <= 1
        assert row['train']['profile']['top']  # backward ran
    assert '-- profile: tiny_ci2p_vit_animals10_latents train' in run[
        'profile_text']
    assert 'Self CPU' in run['profile_text']  # torch's key_averages table
    assert 'batch 1' in report['table'] and 'batch 2' in report['table']
    # A lever measured on its own: foreach against the sweep.
    foreach = tmp_path / 'foreach.json'
    benchmark.run(common + [
        '--batch-size', '2', '--mode', 'train', '--optimizer-impl', 'foreach',
        '--out',
        str(foreach)
    ])
    table = lever_table.lever_table([str(out), str(foreach)])
    assert '| baseline | tiny_vit_b16_animals10 |' in table  # batch 1
    assert '| batch 2 | tiny_ci2p_vit_animals10 |' in table  # vs batch 1
    # compared with the sweep's batch-2 run (fused): only the optimizer
    assert '| foreach | tiny_ci2p_vit_animals10_latents |' in table
    with pytest.raises(lever_table.LeverTableError, match='cannot read'):
        lever_table.lever_table([configs[0]])
    other = tmp_path / 'other.json'
    other.write_text('{"a": 1}')
    with pytest.raises(lever_table.LeverTableError, match='not a benchmark'):
        lever_table.lever_table([str(other)])
