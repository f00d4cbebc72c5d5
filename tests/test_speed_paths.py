"""Fast paths: the frozen encoder costs no autograd, and every speed option
(inference_mode, in-place GDN, channels_last, bf16 autocast, torch.compile)
gives the same shapes and close values. Correctness only: no timings."""
import json
import os.path as osp
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from compressai.layers import GDN, GDN1
from conftest import REPO, TINY_ARCH, run_tool, write_tiny_config
from mmpretrain.models import ImageClassifier
from mmpretrain.structures import DataSample

import ci2p_mm.analysis.benchmark as benchmark
import ci2p_mm.apis.training as train_api
from ci2p_mm.models import CI2PPatchEmbed, CI2PViT, DualScaleViT
from ci2p_mm.models.utils import InplaceGDN, use_inplace_gdn

NO_DOWNLOAD = dict(pretrained=False)
TINY_DS = dict(
    stage1=dict(
        embed_dims=192, num_layers=1, num_heads=3, feedforward_channels=96),
    stage2=dict(
        embed_dims=64, num_layers=1, num_heads=2, feedforward_channels=128))


def tiny_ci2p_vit(**patch_cfg):
    return CI2PViT(
        'deit-t', img_size=64, patch_cfg=dict(NO_DOWNLOAD, **patch_cfg))


def tiny_dual_scale(**patch_cfg):
    return DualScaleViT(
        TINY_DS, img_size=64, patch_cfg=dict(NO_DOWNLOAD, **patch_cfg))


def classifier(backbone, channels):
    return ImageClassifier(
        backbone=backbone,
        head=dict(
            type='LinearClsHead',
            num_classes=10,
            in_channels=channels,
            loss=dict(type='CrossEntropyLoss')))


def encoder_of(backbone):
    """The CI2PEncoder module of either backbone."""
    embed = backbone.patch_embed
    return getattr(embed, 'ci2p_encoder', embed)


def samples(n):
    return [DataSample().set_gt_label(i % 10) for i in range(n)]


@contextmanager
def saved_tensors_inside(module):
    """Count tensors autograd saves for backward while ``module`` runs."""
    state = dict(inside=False, saved=0, total=0)

    def pack(t):
        state['total'] += 1
        state['saved'] += state['inside']
        return t

    handles = [
        module.register_forward_pre_hook(
            lambda *_: state.__setitem__('inside', True)),
        module.register_forward_hook(
            lambda *_: state.__setitem__('inside', False)),
    ]
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            yield state
    finally:
        for handle in handles:
            handle.remove()


# ---------------------------------------------------------------------------
# Training does not pay for the frozen encoder
# ---------------------------------------------------------------------------


@pytest.mark.parametrize('make,channels', [(tiny_ci2p_vit, 192),
                                           (tiny_dual_scale, 64)])
def test_frozen_encoder_has_no_graph_saved_tensors_or_grads(make, channels):
    torch.manual_seed(0)
    model = classifier(make(), channels).train()
    encoder = encoder_of(model.backbone)
    outputs = []
    encoder.register_forward_hook(lambda m, i, o: outputs.append(o))
    x = torch.rand(2, 3, 64, 64)
    assert torch.is_grad_enabled()
    with saved_tensors_inside(encoder) as count:
        loss = model(x, samples(2), mode='loss')['loss']
    (latent, ) = outputs
    assert not latent.requires_grad and latent.grad_fn is None
    assert count['saved'] == 0 < count['total']  # the rest does save
    assert encoder.encoder.training is False  # frozen: always eval
    loss.backward()
    assert all(p.grad is None for p in encoder.parameters())
    # ...while everything after the encoder trains.
    trainable = [(n, p) for n, p in model.named_parameters()
                 if p.requires_grad]
    assert trainable and all(p.grad is not None for _, p in trainable)
    assert not any('encoder' in n for n, _ in trainable)


def test_unfrozen_encoder_keeps_its_graph():
    """The CNN-ViT control: the hooks above do see an encoder that trains."""
    model = classifier(tiny_ci2p_vit(frozen=False), 192).train()
    encoder = encoder_of(model.backbone)
    with saved_tensors_inside(encoder) as count:
        loss = model(torch.rand(2, 3, 64, 64), samples(2), mode='loss')
    assert count['saved'] > 0
    loss['loss'].backward()
    assert all(p.grad is not None for p in encoder.parameters())


def test_inference_mode_runs_the_whole_model():
    model = classifier(tiny_ci2p_vit(), 192).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(x, mode='tensor')
    with torch.inference_mode():
        logits = model(x, mode='tensor')
        preds = model(x, mode='predict')
    assert logits.is_inference()
    torch.testing.assert_close(logits, expected)
    assert len(preds) == 2 and preds[0].pred_score.shape == (10, )


# ---------------------------------------------------------------------------
# In-place GDN
# ---------------------------------------------------------------------------


def test_encoder_gdns_are_inplace_and_keep_their_state_dict():
    encoder = encoder_of(tiny_ci2p_vit()).encoder
    gdns = [m for m in encoder.modules() if isinstance(m, GDN)]
    assert len(gdns) == 3 and all(type(m) is InplaceGDN for m in gdns)
    keys = set(encoder.state_dict())
    assert {'1.beta', '1.gamma', '3.beta', '5.gamma'} <= keys
    # GDN1 (a subclass with its own forward) is left alone.
    gdn1 = torch.nn.Sequential(GDN1(8))
    assert type(use_inplace_gdn(gdn1)[0]) is GDN1


@pytest.mark.parametrize('inverse', [False, True])
def test_inplace_gdn_equals_compressai_gdn(inverse):
    torch.manual_seed(0)
    plain = GDN(16, inverse=inverse)
    with torch.no_grad():  # non-trivial gamma and beta
        plain.gamma.add_(0.05 * torch.rand_like(plain.gamma))
        plain.beta.add_(0.1 * torch.rand_like(plain.beta))
    fast = use_inplace_gdn(torch.nn.Sequential(GDN(16, inverse=inverse)))[0]
    fast.load_state_dict(plain.state_dict())
    x = torch.randn(2, 16, 8, 8)
    for ctx in (torch.no_grad, torch.inference_mode):
        with ctx():
            assert torch.equal(fast(x), plain(x))  # bit for bit
        with ctx():
            xc = x.contiguous(memory_format=torch.channels_last)
            torch.testing.assert_close(fast(xc), plain(x))
    # With autograd on, CompressAI's own forward runs: same gradients.
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    fast(xa).square().sum().backward()
    plain(xb).square().sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad)
    torch.testing.assert_close(fast.gamma.grad, plain.gamma.grad)


# ---------------------------------------------------------------------------
# channels_last
# ---------------------------------------------------------------------------


def test_channels_last_patch_embed_matches():
    torch.manual_seed(0)
    ref = CI2PPatchEmbed(input_size=64, **NO_DOWNLOAD).eval()
    fast = CI2PPatchEmbed(
        input_size=64, channels_last=True, **NO_DOWNLOAD).eval()
    fast.load_state_dict(ref.state_dict())
    assert fast.ci2p_encoder.encoder[0].weight.is_contiguous(
        memory_format=torch.channels_last)
    x = torch.rand(2, 3, 64, 96)
    with torch.inference_mode():
        (tokens, hw), (expected, hw_ref) = fast(x), ref(x)
    assert hw == hw_ref == (2, 3) and tokens.shape == expected.shape
    assert tokens.is_contiguous()  # NHWC flattens to contiguous tokens
    torch.testing.assert_close(tokens, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('make,channels', [(tiny_ci2p_vit, 192),
                                           (tiny_dual_scale, 64)])
def test_channels_last_backbones_match_and_train(make, channels):
    torch.manual_seed(0)
    ref = classifier(make(), channels)
    fast = classifier(make(channels_last=True), channels)
    fast.load_state_dict(ref.state_dict())
    x = torch.rand(2, 3, 64, 64)
    for model in (ref, fast):
        model.eval()
    with torch.inference_mode():
        torch.testing.assert_close(
            fast(x, mode='tensor'),
            ref(x, mode='tensor'),
            rtol=1e-4,
            atol=1e-5)
    fast.train()
    fast(x, samples(2), mode='loss')['loss'].backward()
    assert fast.head.fc.weight.grad is not None


def test_channels_last_unfrozen_encoder_trains():
    model = classifier(tiny_ci2p_vit(frozen=False, channels_last=True),
                       192).train()
    model(torch.rand(2, 3, 64, 64), samples(2), mode='loss')['loss'].backward()
    encoder = encoder_of(model.backbone)
    assert all(p.grad is not None for p in encoder.parameters())


def test_encoder_stages_with_channels_last():
    torch.manual_seed(0)
    ref = DualScaleViT(
        TINY_DS,
        img_size=64,
        patch_cfg=NO_DOWNLOAD,
        out_type='featmap',
        out_indices=['enc_s4', -1])
    fast = DualScaleViT(
        TINY_DS,
        img_size=64,
        patch_cfg=dict(NO_DOWNLOAD, channels_last=True),
        out_type='featmap',
        out_indices=['enc_s4', -1])
    fast.load_state_dict(ref.state_dict())
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        for a, b in zip(fast.eval()(x), ref.eval()(x)):
            assert a.shape == b.shape
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------
# AMP (bf16 autocast on CPU) and torch.compile
# ---------------------------------------------------------------------------


@pytest.mark.parametrize('make,channels', [(tiny_ci2p_vit, 192),
                                           (tiny_dual_scale, 64)])
def test_bf16_autocast_inference_and_training(make, channels):
    torch.manual_seed(0)
    model = classifier(make(), channels).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        expected = model.extract_feat(x)[0]
        with torch.autocast('cpu', dtype=torch.bfloat16):
            feats = model.extract_feat(x)[0]
    assert feats.shape == expected.shape
    assert torch.nn.functional.cosine_similarity(
        feats.float().flatten(), expected.flatten(), dim=0) > 0.98
    model.train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = model(x, samples(2), mode='loss')['loss']
    loss.backward()
    assert torch.isfinite(loss)
    assert model.head.fc.weight.grad is not None
    assert all(p.grad is None for p in encoder_of(model.backbone).parameters())


@pytest.mark.slow
def test_torch_compile_traces_the_model():
    """Dynamo runs CI2P's code (class-swapped GDN, range check, frozen
    encoder); the eager backend keeps the test fast. Compiled models are
    evaluated under no_grad as mmengine's loops do: with torch 2.14, dynamo
    fails a guard on mmcv's numpy ``drop_prob`` under inference_mode."""
    torch.manual_seed(0)
    model = classifier(tiny_ci2p_vit(channels_last=True), 192)
    compiled = torch.compile(model, backend='eager')
    x = torch.rand(2, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            compiled(x, mode='tensor'), model(x, mode='tensor'))
    model.train()
    compiled(x, samples(2), mode='loss')['loss'].backward()
    assert model.head.fc.weight.grad is not None


@pytest.mark.slow  # end to end (pytest.ini)
def test_runner_compile_keeps_names_and_refuses_bad_settings():
    """``cfg.compile``: CI2PRunner compiles the model (``Module.compile``:
    no ``_orig_mod.`` prefix), not mmengine's ``train_step``."""
    from types import SimpleNamespace

    from ci2p_mm.engine import CI2PRunner
    from ci2p_mm.utils.errors import ConfigError
    model = classifier(tiny_ci2p_vit(), 192)
    keys = list(model.state_dict())

    def compile_with(setting):
        runner = SimpleNamespace(
            cfg=dict(compile=setting),
            model=model,
            logger=SimpleNamespace(info=lambda message: None))
        CI2PRunner._maybe_compile(runner, 'train_step')

    compile_with(None)
    compile_with(False)
    assert model._compiled_call_impl is None
    compile_with(dict(backend='eager'))
    assert model._compiled_call_impl is not None
    assert list(model.state_dict()) == keys  # no _orig_mod. prefix
    assert 'train_step' not in vars(model)
    x = torch.rand(2, 3, 64, 64)
    model(x, samples(2), mode='loss')['loss'].backward()
    with pytest.raises(ConfigError, match='compile=.yes.: must be True'):
        compile_with('yes')


@pytest.mark.slow
def test_train_tool_compile_compiles_the_forward(tmp_path, toy_animals10):
    """`tools/train.py --compile` (mmengine's cfg.compile): CI2PRunner
    compiles the model's forward, not mmengine's train_step (whose trace
    through AmpOptimWrapper failed with torch 2.11 on a GPU); training
    runs and the checkpoint's keys are the uncompiled model's."""
    config = write_tiny_config(
        tmp_path,
        'configs/ci2p_vit_animals10.py',
        toy_animals10,
        epochs=1,
        extra="compile = dict(backend='eager')")
    runner = train_api.train([
        config, '--work-dir',
        str(tmp_path / 'work'), '--cfg-options', 'model.backbone.patch_cfg.'
        'pretrained=False'
    ])
    model = runner.model
    assert model._compiled_call_impl is not None
    assert 'train_step' not in vars(model)
    from ci2p_mm.utils.io import load_torch_file
    saved = load_torch_file(str(tmp_path / 'work' /
                                'epoch_1.pth'))['state_dict']
    assert not [k for k in saved if '_orig_mod' in k]
    assert set(saved) == set(model.state_dict())


# ---------------------------------------------------------------------------
# The benchmark tool runs (no timings are checked)
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_benchmark_tool_smoke(tmp_path):
    configs = [
        write_tiny_config(tmp_path, base, str(tmp_path))
        for base in ('configs/vit_b16_animals10.py',
                     'configs/ci2p_vit_animals10.py')
    ]
    out = tmp_path / 'bench.json'
    output = run_tool(
        osp.join(REPO, 'tools/analysis_tools/benchmark.py'), *configs,
        '--no-pretrained', '--batch-size', '2', '--img-size',
        '64', '--repeats', '2', '--warmup', '0', '--channels-last', '--out',
        str(out), '--cfg-options', 'optim_wrapper.optimizer.lr=0.001')
    assert 'infer img/s' in output and 'train img/s' in output
    result = json.loads(out.read_text())
    assert [r['name'] for r in result['results']
            ] == ['tiny_vit_b16_animals10', 'tiny_ci2p_vit_animals10']
    for row in result['results']:
        for mode in ('infer', 'train'):
            assert len(row[mode]['seconds_per_step']) == 2
            assert row[mode]['img_per_s'] > 0
            assert row[mode]['memory']['peak_bytes'] > 0
    assert result['meta']['channels_last'] is True


@pytest.mark.slow
def test_benchmark_end_to_end_mode(tmp_path):
    """--end-to-end: written JPEG folder, the configs' own loaders, the
    latent store encoded once, one row per config; with --device-latents
    both a device-resident row too, --rounds round-robin, --profile."""
    configs = []
    for base in ('configs/ci2p_vit_animals10.py',
                 'configs/ci2p_vit_animals10_latents.py'):
        path = tmp_path / ('tiny_' + osp.basename(base))
        path.write_text(f'_base_ = [{osp.join(REPO, base)!r}]\n'
                        f'model = dict(backbone=dict(arch={TINY_ARCH}), '
                        'head=dict(in_channels=64))\n')
        configs.append(str(path))
    out = tmp_path / 'e2e.json'
    args = [
        '--end-to-end', *configs, '--data-dir',
        str(tmp_path / 'data'), '--no-pretrained', '--batch-size', '4',
        '--img-size', '64', '--num-workers', '0', '--steps', '2', '--warmup',
        '1', '--num-images', '40', '--source-size', '80x60', '--out',
        str(out)
    ]
    output = run_tool(
        osp.join(REPO, 'tools/analysis_tools/benchmark.py'), *args,
        '--device-latents', 'both', '--rounds', '2', '--profile',
        '--profile-steps', '1', '--optimizer-impl', 'fused')
    assert 'once' in output and '-- profile: tiny_ci2p_vit_animals10' in output
    result = json.loads(out.read_text())
    assert result['precision'] == 'fp32' and result['batch_size'] == 4
    assert result['optimizer_impl'] == 'fused' and not result['partial']
    image_row, latent_row, device_row = result['results']
    assert image_row['name'] == 'tiny_ci2p_vit_animals10'
    assert 'encode_s' not in image_row and latent_row['encode_s'] > 0
    assert device_row['name'] == 'tiny_ci2p_vit_animals10_latents [device]'
    assert device_row['device_resident'] and device_row['workers'] == 0
    for row in (image_row, latent_row, device_row):
        assert len(row['iterations']) == 2 and row['img_per_s'] > 0
        assert len(row['rounds']) == 2 and row['spread'] >= 0
        assert row['peak_mib'] is None  # CPU: no CUDA peak
        summary = row['profile']
        assert summary['steps'] == 1 and summary['sdpa'] == ['flash (CPU)']
        assert 0 < summary['op_share'] <= 1 and summary['top']
    # The store holds every training JPEG of the split (3 of 4 per class).
    train = (tmp_path / 'data' / 'meta' / 'train.txt').read_text()
    assert train.count('\n') == 30
    labels = np.load(osp.join(latent_row['store'], 'train.labels.npy'))
    assert len(labels) == 30
    # --keep-store: a second run does not encode again.
    again = benchmark.run([args[0]] + args[2:] + ['--keep-store'])
    assert again['results'][0]['encode_s'] is None


@pytest.mark.slow
def test_benchmark_latent_storage_mode(tmp_path):
    """--latent-storage: both storages encoded (timed), loaded (timed by
    the shared timer) and compared with the float32 encoder."""
    config = tmp_path / 'tiny_ci2p_vit_animals10.py'
    config.write_text(
        f"_base_ = [{osp.join(REPO, 'configs/ci2p_vit_animals10.py')!r}]\n"
        f'model = dict(backbone=dict(arch={TINY_ARCH}), '
        'head=dict(in_channels=64))\n')
    rows = benchmark.run([
        '--latent-storage',
        str(config), '--data-dir',
        str(tmp_path / 'data'), '--no-pretrained', '--batch-size', '4',
        '--img-size', '64', '--num-workers', '0', '--num-images', '20',
        '--source-size', '80x60', '--compare', '4', '--device', 'cpu'
    ])
    assert [r['storage'] for r in rows] == ['fp16', 'quantized']
    for row in rows:
        assert row['encode_img_s'] > 0 and row['load_img_s'] > 0
        assert row['token_rel_rms'] < 1e-2 or row['storage'] == 'quantized'
    assert rows[1]['bytes_per_image'] < rows[0]['bytes_per_image']


def test_jpeg_folder_is_the_same_for_any_process_count(tmp_path, monkeypatch):
    from ci2p_mm.analysis import end_to_end
    end_to_end.write_jpeg_folder(str(tmp_path / 'pool'), 20, (40, 30))
    monkeypatch.setattr(end_to_end.os, 'cpu_count', lambda: 1)
    end_to_end.write_jpeg_folder(str(tmp_path / 'one'), 20, (40, 30))
    files = sorted(
        p.relative_to(tmp_path / 'one')
        for p in (tmp_path / 'one').rglob('*.jpeg'))
    assert len(files) == 20
    for rel in files:
        assert (tmp_path / 'one' / rel).read_bytes() == (tmp_path / 'pool' /
                                                         rel).read_bytes()


@pytest.mark.parametrize('size', ['0x0', '80x-1', '80', 'axb'])
def test_end_to_end_source_size_must_be_positive(size, tmp_path):
    """A --source-size that is not WxH of positive numbers is named before
    any image is written (0x0 reached Pillow's ValueError)."""
    from ci2p_mm.analysis.end_to_end import prepare_data
    from ci2p_mm.utils.errors import UserError
    args = benchmark.parse_args([
        '--end-to-end', 'configs/vit_b16_animals10.py', '--source-size', size,
        '--data-dir',
        str(tmp_path / 'data')
    ])
    with pytest.raises(UserError, match=f'--source-size {size}: give WxH'):
        prepare_data(args)
    assert not (tmp_path / 'data').exists()


@pytest.mark.parametrize('tool',
                         ['benchmark', 'benchmark_onnx', 'pytorch2onnx'])
def test_tool_help_states_each_default_once(tool, capsys):
    """argparse's defaults formatter added '(default: None)' to unset
    options and a second default to help texts that name their own."""
    from ci2p_mm.deployment import benchmark_onnx, pytorch2onnx
    parse = dict(
        benchmark=benchmark.parse_args,
        benchmark_onnx=benchmark_onnx.parse_args,
        pytorch2onnx=pytorch2onnx.parse_args)[tool]
    with pytest.raises(SystemExit):
        parse(['--help'])
    text = ' '.join(capsys.readouterr().out.split())  # argparse's wrapping
    assert '(default: None)' not in text
    assert "intra-op threads of torch (and onnxruntime) (default: torch's)" \
        in text and "(default: torch's) (default" not in text
    assert 'timed rounds (median) (default: 5)' in text  # still added
