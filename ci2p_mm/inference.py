"""Classifying one image file with mmpretrain's inferencer
(``demo/image_demo.py``).

The checkpoint is loaded as ``tools/test.py`` loads it: torch's safe
loading (:func:`~ci2p_mm.engine.read_checkpoint_file`), then every key and
shape and the CI2P codec checked against the model before a weight is
copied (:func:`~ci2p_mm.engine.check_checkpoint_fits`); mmpretrain alone
would load with ``strict=False`` and predict with a random head, warning
only. The image is read and decoded by :mod:`ci2p_mm.utils.image_files`
(regular file, photo formats only, EXIF orientation, transparency, 16-bit,
refusal of truncated or non-image files) and handed to mmpretrain's
``ImageClassificationInferencer`` as a decoded array; given a path, the
inferencer would decode it with OpenCV itself.
"""
from typing import List, Optional, Tuple

import numpy as np


def load_classifier(model: str, checkpoint: Optional[str] = None):
    """mmpretrain's ``get_model(model)`` with ``checkpoint``'s weights,
    loaded only when they fit it exactly; class names from the
    checkpoint's ``meta.dataset_meta`` when it has them."""
    from mmengine.runner.checkpoint import _load_checkpoint_to_model
    from mmpretrain import get_model

    from ci2p_mm.engine.checkpoint import (check_checkpoint_fits,
                                           read_checkpoint_file)
    classifier = get_model(model, pretrained=False)
    if checkpoint is None:
        return classifier
    weights = read_checkpoint_file(checkpoint)
    check_checkpoint_fits(classifier, weights, checkpoint,
                          f'the model of {model} '
                          f'({type(classifier.backbone).__name__})')
    _load_checkpoint_to_model(classifier, weights)
    meta = weights.get('meta') if isinstance(weights, dict) else None
    dataset_meta = meta.get('dataset_meta') if isinstance(meta, dict) else None
    if isinstance(dataset_meta, dict) and dataset_meta.get('classes'):
        classifier._dataset_meta = dataset_meta
    return classifier


def classify_image(image: str,
                   model: str,
                   checkpoint: Optional[str] = None,
                   topk: int = 5,
                   device: Optional[str] = None,
                   out_file: Optional[str] = None
                   ) -> List[Tuple[str, float]]:
    """Top-``topk`` ``(class name, score)`` of ``image``.

    Args:
        image (str): Image file.
        model (str): Config file or model name from the model index.
        checkpoint (str, optional): Checkpoint of ``tools/train.py`` or
            ``publish_model.py``.
        out_file (str, optional): Save the image with the predicted label.
    """
    from mmpretrain import ImageClassificationInferencer

    from ci2p_mm.utils.image_files import load_image_file

    rgb = load_image_file(image)
    inferencer = ImageClassificationInferencer(
        load_classifier(model, checkpoint), device=device)
    sample = inferencer(np.ascontiguousarray(rgb[..., ::-1]),
                        return_datasamples=True)[0]
    scores = sample.pred_score.detach().cpu()
    classes = inferencer.classes or [str(i) for i in range(len(scores))]
    top = scores.topk(min(topk, len(scores)))
    ranked = [(classes[int(i)], float(s))
              for s, i in zip(top.values, top.indices)]
    if out_file is not None:
        from mmpretrain.visualization import UniversalVisualizer
        UniversalVisualizer().visualize_cls(
            rgb, sample, classes=classes, draw_gt=False, out_file=out_file)
    return ranked
