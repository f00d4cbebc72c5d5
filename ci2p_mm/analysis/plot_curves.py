"""``tools/analysis_tools/plot_curves.py``: top-1 and loss per epoch of
one or more training runs.

    python tools/analysis_tools/plot_curves.py work_dirs/ci2p_vit_animals10 \
        work_dirs/vit_b16_animals10 --labels CI2P-ViT ViT-B/16 --out curves.png

The paper's main figure is such a plot: accuracy over epochs, CI2P-ViT
against ViT-B/16.
"""
import argparse
import os.path as osp

from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.figure import Figure

from ci2p_mm.utils import load_curves
from ci2p_mm.utils.cli import output_file
from ci2p_mm.utils.errors import UserError
from ci2p_mm.utils.io import atomic_output


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Plot training curves')
    parser.add_argument(
        'work_dirs', nargs='+', help='tools/train.py work dirs')
    parser.add_argument('--labels', nargs='+', help='one label per work dir')
    parser.add_argument('--metric', default='accuracy/top1')
    parser.add_argument(
        '--out',
        type=output_file,
        default='curves.png',
        help='image to write (PNG; also PDF, SVG, JPEG, ...)')
    parser.add_argument('--title', default='')
    args = parser.parse_args(argv)
    if args.labels and len(args.labels) != len(args.work_dirs):
        parser.error('give one --labels entry per work dir')
    kinds = FigureCanvasBase.get_supported_filetypes()
    kind = osp.splitext(args.out)[1][1:].lower()
    if kind not in kinds:  # matplotlib's own list, before any log is read
        parser.error(f'--out {args.out}: matplotlib writes '
                     f'{", ".join(sorted(kinds))}, not "{kind}"')
    return args


def main(argv=None) -> int:
    """Plot and write the PNG."""
    args = parse_args(argv)
    labels = args.labels or [
        osp.basename(osp.normpath(d)) for d in args.work_dirs
    ]
    # A Figure of its own (no pyplot): no global backend switch, no GUI.
    fig = Figure(figsize=(11, 4))
    ax_acc, ax_loss = fig.subplots(1, 2)
    # Runs can coincide (a model trained from images and from their exact
    # fp16 latents does): a line style per run keeps each one visible.
    styles = ['-', '--', ':', '-.']
    for i, (work_dir, label) in enumerate(zip(args.work_dirs, labels)):
        try:
            curves = load_curves(work_dir, args.metric)
        except FileNotFoundError as err:
            raise UserError(str(err)) from None
        style = dict(
            linestyle=styles[i % len(styles)],
            linewidth=2.2 - 0.4 * (i % len(styles)))
        ax_acc.plot(
            curves['val_epochs'],
            curves['val'],
            marker='o',
            markersize=3,
            label=label,
            **style)
        ax_loss.plot(
            curves['loss_epochs'], curves['loss'], label=label, **style)
        if curves['val']:
            print(f'{label}: best {args.metric} {max(curves["val"]):.2f} '
                  f'over {len(curves["val_epochs"])} evaluations')
    ax_acc.set(xlabel='epoch', ylabel=args.metric, title='validation')
    ax_loss.set(xlabel='epoch', ylabel='mean train loss', title='training')
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
        ax.legend()
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    with atomic_output(args.out) as tmp:  # the format from --out's name
        fig.savefig(tmp, dpi=120, format=osp.splitext(args.out)[1][1:] or None)
    print(f'Wrote {args.out}')
    return 0
