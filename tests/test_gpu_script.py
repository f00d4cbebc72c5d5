"""tools/misc/gpu_benchmark.sh (issue 22, item 5) without a GPU.

Its plan (``GPU_BENCH_PLAN=1``): the essentials first, every part's command
line valid for benchmark.py as the GPU machine will parse it, and the
essentials within an 8-minute command. Then a real dry run of the
essentials on the CPU (``GPU_BENCH_DRY_RUN=1``, tiny configs and sizes).
"""
import json
import os
import shlex
import subprocess
import sys

import pytest
import torch
from conftest import REPO, TINY_ARCH

import ci2p_mm.analysis.benchmark as benchmark

SCRIPT = os.path.join(REPO, 'tools/misc/gpu_benchmark.sh')
ESSENTIALS = ['e2e_best_eager', 'e2e_best_compiled', 'e2e_latent_vs_image']


def run_script(out_dir, timeout=60, **env):
    proc = subprocess.run(['bash', SCRIPT, str(out_dir)],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=timeout,
                          env=dict(os.environ, PYTHON=sys.executable, **env))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def plan(tmp_path, **env):
    """``[(part, limit, min, argv)]`` the script would run."""
    out = run_script(tmp_path / 'plan', GPU_BENCH_PLAN='1', **env)
    parts = []
    for line in out.splitlines():
        if line.startswith('PLAN '):
            _, name, limit, least, command = line.split(' ', 4)
            parts.append((name, int(limit), int(least), shlex.split(command)))
    return parts


def test_plan_puts_the_essentials_first_and_parses(tmp_path, monkeypatch):
    parts = plan(tmp_path)
    names = [p[0] for p in parts]
    assert names[:3] == ESSENTIALS
    assert {
        'step_batch_sweep', 'step_compile_default',
        'step_compile_reduce-overhead',
        'step_compile_max-autotune-no-cudagraphs', 'step_levers_fused',
        'step_levers_foreach', 'step_levers_channels_last', 'profile_step_512',
        'profile_step_128', 'profile_e2e'
    } <= set(names)
    # One command of at most 8 minutes runs the essentials.
    assert sum(limit for name, limit, _, _ in parts
               if name in ESSENTIALS) <= 8 * 60 + 40
    essentials = plan(
        tmp_path, GPU_BENCH_PARTS='essentials', GPU_BENCH_BUDGET='480')
    assert [p[0] for p in essentials] == ESSENTIALS
    # Every command line is one benchmark.py accepts on the GPU machine.
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    for name, _, _, argv in parts:
        assert argv[0] == sys.executable, name
        assert argv[1] == 'tools/analysis_tools/benchmark.py', name
        for path in argv[2:]:
            if path.endswith('.py'):
                assert os.path.isfile(os.path.join(REPO, path)), path
        args = benchmark.parse_args(argv[2:])
        assert args.device == 'cuda' and args.amp == 'bf16', name
    by_name = {
        name: benchmark.parse_args(argv[2:])
        for name, _, _, argv in parts
    }
    best = by_name['e2e_best_compiled']
    assert best.end_to_end and best.compile and best.device_latents == 'on'
    assert best.optimizer_impl == 'fused' and best.batch_size == 512
    assert by_name['e2e_best_eager'].device_latents == 'both'
    assert by_name['e2e_latent_vs_image'].rounds == 3
    assert by_name['step_batch_sweep'].batch_sizes == [128, 256, 512, 1024]
    assert by_name['step_batch_sweep'].memory == 'in-process'
    assert by_name['step_compile_reduce-overhead'].compile_mode == \
        'reduce-overhead'
    assert by_name['profile_e2e'].profile


@pytest.mark.slow
def test_dry_run_of_the_essentials_on_cpu(tmp_path):
    configs = {}
    for key, name in (('VIT', 'vit_b16_animals10'), ('CI2P',
                                                     'ci2p_vit_animals10'),
                      ('CI2P_LAT', 'ci2p_vit_animals10_latents')):
        path = tmp_path / f'tiny_{name}.py'
        path.write_text(f"_base_ = ['{REPO}/configs/{name}.py']\n"
                        f'model = dict(backbone=dict(arch={TINY_ARCH}), '
                        'head=dict(in_channels=64))\n')
        configs[f'GPU_BENCH_{key}'] = str(path)
    out_dir = tmp_path / 'out'
    log = run_script(
        out_dir,
        timeout=1200,
        GPU_BENCH_DRY_RUN='1',
        GPU_BENCH_PARTS='essentials',
        GPU_BENCH_DATA=str(tmp_path / 'data'),
        **configs)
    for name in ESSENTIALS:
        assert f'<== {name}: exit 0' in log, log[-3000:]
    best = json.loads((out_dir / 'e2e_best_compiled.json').read_text())
    assert best['precision'] == 'fp32, compiled (backend=eager)'
    assert [r['name'] for r in best['results']] == [
        'tiny_vit_b16_animals10', 'tiny_ci2p_vit_animals10_latents [device]',
        'tiny_ci2p_vit_animals10'
    ]
    question = json.loads((out_dir / 'e2e_latent_vs_image.json').read_text())
    assert [len(r['rounds']) for r in question['results']] == [3, 3, 3]
    assert 'kept' in question['table']  # the store of the first part
