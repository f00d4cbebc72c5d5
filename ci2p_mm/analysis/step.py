"""Inference and training-step throughput and peak memory of config models.

The default mode of ``tools/analysis_tools/benchmark.py`` (``--end-to-end``:
:mod:`ci2p_mm.analysis.end_to_end`; ``--latent-storage``:
:mod:`ci2p_mm.analysis.latent_storage`).

    python tools/analysis_tools/benchmark.py \
        configs/vit_b16_animals10.py configs/ci2p_vit_animals10.py \
        configs/ci2p_vit_ds_animals10.py --timm-baseline --no-pretrained \
        --batch-size 8 --repeats 7 --out work_dirs/benchmark/cpu_bs8.json

What is timed (one process, every model built up front, then warm-up and
repeats interleaved round-robin across models so that a change in machine
load hits all of them alike, by :func:`ci2p_mm.utils.timing.interleave`;
the median of the repeats is reported):

* ``infer``: ``model(inputs, mode='tensor')`` of the mmpretrain model, i.e.
  ``extract_feat`` + the head's forward (logits; no softmax, no
  ``DataSample`` post-processing), in eval mode under
  ``torch.inference_mode()`` (``torch.no_grad()`` with ``--compile``).
* ``train``: one training step as ``BaseModel.train_step`` does it *minus
  the data preprocessor*: ``model(inputs, data_samples, mode='loss')``,
  ``parse_losses``, then ``OptimWrapper.update_params`` (backward, the
  config's optimizer step, zero_grad), in train mode.

The data preprocessor (uint8 -> float, BGR -> RGB, normalisation) runs once
per model before timing, on random uint8 images, so each model gets the
input range it expects ([0, 1] for CI2P, mean/std-normalised for ViT).
It costs a few milliseconds per batch and is the same for every model.

Peak memory is measured in a fresh subprocess per model and mode (so one
model's allocations cannot hide another's): warm-up steps, then one
measured step, by :func:`.timing.peak_memory`: on CUDA the absolute peak
allocation; on the CPU the peak resident set minus the RSS the process had
before the model was built (weights, gradients, optimizer state,
activations and whatever freed memory the C allocator keeps, not the
Python/torch import footprint).

``--timm-baseline`` adds timm's ViT-B/16 (``vit_base_patch16_224`` at the
same input size, 10 classes, average pooling, no class token, in
mmpretrain's ``TimmClassifier``: mean/std-normalised input, cross-entropy),
trained with the first config's optimizer settings.
"""
import argparse
import copy
import datetime
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import partial
from typing import List

import timm
import torch
from mmengine.config import ConfigDict
from mmpretrain.structures import DataSample

from ci2p_mm.codec import ENCODER_STRIDE, LATENT_CHANNELS
from ci2p_mm.models import CI2PEncoder
from ci2p_mm.utils import is_ci2p_backbone, load_model_config
from ci2p_mm.utils.cli import at_least
from ci2p_mm.utils.timing import format_table, interleave, loadavg, write_json
from . import profile
from .timing import (MIB, autocast, build_model, build_optim_wrapper,
                     describe_machine, maybe_compile, peak_memory,
                     print_header, report_settings, rss_bytes, step_begin,
                     warn_slow_cpu_amp)

PROBE_TAG = '@@benchmark-probe '


def add_arguments(parser):
    group = parser.add_argument_group('model steps (the default mode)')
    add = group.add_argument
    add('--iters', type=at_least(1), default=1, help='steps per timed repeat')
    add('--mode', choices=['infer', 'train', 'both'], default='both')
    add('--timm-baseline',
        action='store_true',
        help="add timm's ViT-B/16 at the same input size")
    add('--no-memory',
        dest='memory',
        action='store_const',
        const='none',
        help='skip the peak-memory subprocesses (--memory none)')
    add('--probe', help=argparse.SUPPRESS)  # internal


@dataclass(eq=False)  # hashed by identity: a key of the timings
class Bench:
    """One model with its prepared batch and optimizer."""
    name: str
    source: str
    model: torch.nn.Module
    optim_wrapper: object
    inputs: torch.Tensor
    data_samples: list
    args: argparse.Namespace

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def prepare(self, mode):
        self.model.train(mode == 'train')

    def step(self, mode):
        step_begin(self.args)
        if mode == 'infer':
            # no_grad for compiled models (with torch 2.14 dynamo fails a
            # guard on mmcv's numpy ``drop_prob`` under inference_mode;
            # mmengine's val/test loops use no_grad anyway)
            with (torch.no_grad() if self.args.compile else
                  torch.inference_mode()), autocast(self.args):
                return self.model(self.inputs, mode='tensor')
        with self.optim_wrapper.optim_context(self.model), autocast(self.args):
            loss = self.model.parse_losses(
                self.model(self.inputs, self.data_samples, mode='loss'))[0]
        self.optim_wrapper.update_params(loss)
        return loss


def entries(args) -> List[tuple]:
    """``(name, config, source)`` of what the run measures: the configs,
    then timm's ViT-B/16 with ``--timm-baseline`` (the first config's
    optimizer)."""
    found = [(osp.splitext(osp.basename(path))[0],
              load_model_config(path, args.cfg_options, args.no_pretrained,
                                args.channels_last), path)
             for path in args.configs]
    if args.timm_baseline:
        cfg = copy.deepcopy(found[0][1])
        cfg.model = ConfigDict(
            type='TimmClassifier',
            model_name='vit_base_patch16_224',
            pretrained=False,
            img_size=args.img_size,
            num_classes=10,
            global_pool='avg',
            class_token=False,
            data_preprocessor=dict(
                type='mmpretrain.ClsDataPreprocessor',
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375]))
        found.append((f'timm vit_base_patch16 @{args.img_size}', cfg,
                      f'timm {timm.__version__} '
                      'vit_base_patch16_224(img_size=%d, num_classes=10, '
                      "global_pool='avg', class_token=False)" % args.img_size))
    return found


def build_bench(name: str, cfg, source: str, args) -> Bench:
    """The model with its random batch through its data preprocessor:
    uint8 images, or fp16 codec latents (as a store holds them) for a
    model that takes latents."""
    generator = torch.Generator().manual_seed(args.seed)
    model = build_model(cfg, args.device, args.channels_last, source)
    if any(m.latent_input for m in model.modules()
           if isinstance(m, CI2PEncoder)):
        side = args.img_size // ENCODER_STRIDE
        images = torch.randn((args.batch_size, LATENT_CHANNELS, side, side),
                             generator=generator).half()
    else:
        shape = (args.batch_size, 3, args.img_size, args.img_size)
        images = torch.randint(
            0, 256, shape, dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (args.batch_size, ), generator=generator)
    samples = [DataSample().set_gt_label(int(i)) for i in labels]
    with torch.no_grad():
        data = model.data_preprocessor(
            dict(inputs=images, data_samples=samples), training=True)
    inputs = data['inputs']
    if args.channels_last and not is_ci2p_backbone(cfg.model.get('backbone')):
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    return Bench(name, source, maybe_compile(model, args),
                 build_optim_wrapper(model, cfg.optim_wrapper, args), inputs,
                 data['data_samples'], args)


def run_probe(args):
    """Child process: build one model, warm up, measure one step's peak."""
    index, mode = args.probe.split(':')
    rss_before = rss_bytes()
    bench = build_bench(*entries(args)[int(index)], args)
    rss_model = rss_bytes() - rss_before
    bench.prepare(mode)
    for _ in range(max(1, args.warmup)):
        bench.step(mode)
    with peak_memory(args.device) as result:
        bench.step(mode)
    if args.device == 'cpu':
        result['peak_bytes'] -= rss_before
        result['how'] += ' - RSS before build'
        result['model_rss_bytes'] = rss_model
    print(PROBE_TAG + json.dumps(result))


def measure_memory(args, argv, index, mode):
    cmd = [sys.executable, '-m', 'ci2p_mm.analysis.benchmark'
           ] + list(argv) + ['--probe', f'{index}:{mode}', '--memory', 'none']
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(PROBE_TAG):
            return json.loads(line[len(PROBE_TAG):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    print('  memory probe failed: ' + ' | '.join(tail))
    return None


def in_process_peak(bench, mode):
    """CUDA: bytes a fresh process would peak at for one step of this
    model: what it holds between steps (weights, buffers, optimizer state,
    the batch) plus the step's rise above what is allocated before it.
    Memory kept in CUDA-graph pools (``reduce-overhead``) is not seen."""
    bench.prepare(mode)
    with peak_memory('cuda') as peak:
        before = torch.cuda.memory_allocated()
        bench.step(mode)
    state = [
        v for s in bench.optim_wrapper.optimizer.state.values()
        for v in s.values()
    ]
    held = sum(t.numel() * t.element_size() for t in [
        *bench.model.parameters(), *bench.model.buffers(), *state, bench.inputs
    ] if isinstance(t, torch.Tensor))
    return dict(
        peak_bytes=held + peak['peak_bytes'] - before,
        how='in-process: weights, buffers, '
        'optimizer state and batch + the step\'s rise')


def profile_step(bench, mode, args, texts):
    """``--report-sdpa`` and ``--profile`` of one model and mode: the
    entries of its row (their text is appended to ``texts``)."""
    bench.prepare(mode)
    entry = {}
    if args.report_sdpa:
        entry['sdpa'] = profile.report_sdpa(lambda: bench.step(mode))
        texts.append(f'SDPA {bench.name} {mode}: {", ".join(entry["sdpa"])}')
        print(texts[-1])
    if args.profile:
        entry['profile'] = profile.profile_iterations(lambda: bench.step(mode),
                                                      args, bench.name,
                                                      f'-{mode}')
        texts.append(
            profile.format_summary(
                f'{bench.name} {mode}, batch {args.batch_size}',
                entry['profile']))
        print(texts[-1])
    return entry


def run(args, argv):
    torch.manual_seed(args.seed)
    warn_slow_cpu_amp(args)
    modes = ['infer', 'train'] if args.mode == 'both' else [args.mode]
    meta = dict(
        date=datetime.datetime.now().isoformat(timespec='seconds'),
        **report_settings(args, argv),
        device=args.device,
        device_name=describe_machine(args.device),
        threads=torch.get_num_threads(),
        precision=args.amp or 'fp32',
        compile=args.compile,
        repeats=args.repeats,
        warmup=args.warmup,
        iters=args.iters,
        infer_timed="model(inputs, mode='tensor') under "
        f"{'no_grad' if args.compile else 'inference_mode'}",
        train_timed='loss forward + parse_losses + OptimWrapper.update_params'
        ' (data preprocessor excluded)',
        timer='torch.utils.benchmark.Timer',
        thp_mem_alloc=os.environ.get('THP_MEM_ALLOC_ENABLE'))
    meta['loadavg_start'] = print_header(
        args, f'batch {args.batch_size}, {args.img_size}x{args.img_size}, '
        f'{meta["precision"]}{", channels_last" if args.channels_last else ""}'
        f'{", compile" if args.compile else ""}')

    benches = []
    for entry in entries(args):
        start = time.perf_counter()
        benches.append(build_bench(*entry, args))
        print(
            f'built {benches[-1].name} ({benches[-1].num_params / 1e6:.1f} M '
            f'params) in {time.perf_counter() - start:.1f}s')

    def report(key, index, seconds, other):
        tag = (f'warm-up {index + 1}/{args.warmup}' if index < args.warmup else
               f'repeat {index - args.warmup + 1}/{args.repeats}')
        busy = '' if other is None else f'  (others: {other:.2f} cores)'
        print(f'[{tag}] {key[0].name:<34} {key[1]:<5} {seconds:7.3f} s/step  '
              f'{args.batch_size / seconds:7.2f} img/s{busy}')

    keys = [(b, m) for b in benches for m in modes]
    steps = {(b, m): partial(b.step, m) for b, m in keys}
    setups = {(b, m): partial(b.prepare, m) for b, m in keys}
    timings = interleave(steps, args.repeats, args.warmup, args.iters,
                         args.batch_size, setups, report)
    meta['loadavg_end'] = loadavg()
    measured = [
        c for t in timings.values() for c in t.other_cores if c is not None
    ]
    if measured:
        meta['other_cores_mean'] = statistics.mean(measured)
        meta['other_cores_max'] = max(measured)
    results, texts = [], []
    for bench in benches:
        results.append(
            dict(
                name=bench.name,
                source=bench.source,
                params_m=bench.num_params / 1e6))
        for mode in modes:
            t = timings.pop((bench, mode))
            row = results[-1][mode] = dict(
                seconds_per_step=t.seconds,
                median_s=t.median,
                iqr_s=t.iqr,
                img_per_s=t.img_per_s,
                spread=t.spread,
                other_cores=t.other_cores)
            row.update(profile_step(bench, mode, args, texts))
            if args.memory == 'in-process':
                row['memory'] = in_process_peak(bench, mode)
    # free the models (the statements hold them) before the memory probes
    del benches, bench, keys, steps, setups
    if args.memory == 'probe':
        for index, row in enumerate(results):
            for mode in modes:
                print(f'[memory] {row["name"]} {mode} (fresh process)')
                row[mode]['memory'] = measure_memory(args, argv, index, mode)
    meta['loadavg_after_memory'] = loadavg()

    table = results_table(results, modes, args)
    print(table)
    print(f'load average: start {meta["loadavg_start"]}, end of timing '
          f'{meta["loadavg_end"]}')
    if 'other_cores_mean' in meta:
        print(f'other processes during timed steps: '
              f'{meta["other_cores_mean"]:.2f} cores on average, '
              f'{meta["other_cores_max"]:.2f} at most (of '
              f'{os.cpu_count()})')
    report = dict(
        meta=meta, results=results, table=table, profile_text='\n'.join(texts))
    write_json(args.out, report)
    return report


def results_table(results, modes, args):
    first = results[0]

    def memory(row, mode):
        mem, base = row[mode].get('memory'), first[mode].get('memory')
        if mem is None:
            return ['-', '']
        return [
            f'{mem["peak_bytes"] / MIB:.0f}',
            f'{mem["peak_bytes"] / base["peak_bytes"]:.2f}x' if base else ''
        ]

    rows = [[row['name'], f'{row["params_m"]:.1f}'] + [
        cell for mode in modes for cell in
        (f'{row[mode]["img_per_s"]:.2f}',
         f'{row[mode]["img_per_s"] / first[mode]["img_per_s"]:.2f}x',
         f'{100 * row[mode]["spread"]:.0f}%')
    ] + [cell for mode in modes for cell in memory(row, mode)]
            for row in results]
    header = ['model', 'params M'] + [
        c for mode in modes for c in (f'{mode} img/s', 'x', 'spread')
    ] + [c for mode in modes for c in (f'{mode} MiB', 'x')]
    return format_table(header, rows) + (
        f'\nbatch {args.batch_size}, {args.img_size}x{args.img_size}, '
        f'{args.amp or "fp32"}, {args.device}; median of {args.repeats} '
        f'interleaved repeats ({args.iters} step(s) each); x = vs the first '
        'row; spread = (max - min) / median')
