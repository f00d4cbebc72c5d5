"""Classifying one image file with mmpretrain's inferencer
(``demo/image_demo.py``).

    python demo/image_demo.py cat.jpg configs/ci2p_vit_animals10.py \
        work_dirs/ci2p_vit_animals10/epoch_300.pth --out cat_pred.png

The checkpoint is loaded as ``tools/test.py`` loads it: torch's safe
loading (:func:`~ci2p_mm.engine.read_checkpoint_file`), then every key and
shape and the CI2P codec checked against the model before a weight is
copied (:func:`~ci2p_mm.engine.load_checked_checkpoint`); mmpretrain alone
would load with ``strict=False`` and predict with a random head, warning
only. The image is read and decoded by :mod:`ci2p_mm.utils.image_files`
(a regular file, photo formats only, EXIF orientation, transparency,
16-bit, refusal of truncated or non-image files) and handed to mmpretrain's
``ImageClassificationInferencer`` as a decoded array; given a path, the
inferencer would decode it with OpenCV itself.
"""
from argparse import ArgumentParser
from typing import List, Optional, Tuple

import cv2
import numpy as np
from mmpretrain import ImageClassificationInferencer, get_model
from mmpretrain.visualization import UniversalVisualizer

from ci2p_mm.engine.checkpoint import (check_class_names, checked_class_names,
                                       head_num_classes,
                                       load_checked_checkpoint,
                                       read_checkpoint_file)
from ci2p_mm.utils.cli import at_least, torch_device
from ci2p_mm.utils.image_files import load_image_file
from ci2p_mm.utils.io import OutputError, check_output_path


def load_classifier(model: str, checkpoint: Optional[str] = None):
    """mmpretrain's ``get_model(model)`` with ``checkpoint``'s weights,
    loaded only when they fit it exactly; class names from the
    checkpoint's ``meta.dataset_meta`` when it has them, else the config's
    test set, either way one per output of the head."""
    classifier = get_model(model, pretrained=False)
    num_classes = head_num_classes(classifier)
    if checkpoint is not None:
        weights = read_checkpoint_file(checkpoint)
        load_checked_checkpoint(
            classifier, weights, checkpoint, f'the model of {model} '
            f'({type(classifier.backbone).__name__})')
        classes = checked_class_names(weights, num_classes, checkpoint)
        if classes:
            classifier._dataset_meta = dict(weights['meta']['dataset_meta'])
            return classifier
    classes = (getattr(classifier, '_dataset_meta', None) or {}).get('classes')
    if classes:
        check_class_names(classes, num_classes, f'The test set of {model}')
    return classifier


def classify_image(image: str,
                   model: str,
                   checkpoint: Optional[str] = None,
                   topk: int = 5,
                   device: Optional[str] = None,
                   out_file: Optional[str] = None) -> List[Tuple[str, float]]:
    """Top-``topk`` ``(class name, score)`` of ``image``.

    Args:
        image (str): Image file.
        model (str): Config file or model name from the model index.
        checkpoint (str, optional): Checkpoint of ``tools/train.py`` or
            ``publish_model.py``.
        out_file (str, optional): Save the image with the predicted label.
    """
    rgb = load_image_file(image)
    inferencer = ImageClassificationInferencer(
        load_classifier(model, checkpoint), device=device)
    sample = inferencer(
        np.ascontiguousarray(rgb[..., ::-1]), return_datasamples=True)[0]
    scores = sample.pred_score.detach().cpu()
    classes = inferencer.classes or [str(i) for i in range(len(scores))]
    top = scores.topk(min(topk, len(scores)))
    ranked = [(classes[int(i)], float(s))
              for s, i in zip(top.values, top.indices)]
    if out_file is not None:
        UniversalVisualizer().visualize_cls(
            rgb, sample, classes=classes, draw_gt=False, out_file=out_file)
    return ranked


def parse_args(argv=None):
    parser = ArgumentParser(description='Classify one image with a CI2P '
                            'checkpoint (mmpretrain\'s demo/image_demo.py)')
    parser.add_argument('img', help='image file')
    parser.add_argument(
        'model',
        help="config file or model name (mmpretrain.list_models('*ci2p*'))")
    parser.add_argument(
        'checkpoint',
        help='checkpoint file (it must fit the model exactly, as in '
        'tools/test.py)')
    parser.add_argument(
        '--topk',
        type=at_least(1),
        default=5,
        help='how many classes to print (default 5)')
    parser.add_argument('--out', help='save the image with its label here')
    parser.add_argument(
        '--device',
        type=torch_device,
        help='e.g. cuda:0 (default: cuda if available, else cpu)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """``demo/image_demo.py``: print the top classes of one image."""
    args = parse_args(argv)
    if args.out is not None:  # before the model is built and run
        check_output_path(args.out, args.img, args.checkpoint, what='--out')
        if not cv2.haveImageWriter(args.out):  # the visualizer's writer
            raise OutputError(f'--out {args.out}: OpenCV writes no image of '
                              f'this extension; use .png or .jpg.')
    ranked = classify_image(args.img, args.model, args.checkpoint, args.topk,
                            args.device, args.out)
    for rank, (name, score) in enumerate(ranked, 1):
        print(f'{rank}. {name:<20} {score:.4f}')
    if args.out:
        print(f'Saved {args.out}')
    return 0
