"""Classifying one image file with mmpretrain's inferencer
(``demo/image_demo.py``).

The file is decoded by :class:`~ci2p_mm.datasets.LoadImageRGB`'s Pillow
path (EXIF orientation, transparency, 16-bit, refusal of truncated or
non-image files) and handed to mmpretrain's
``ImageClassificationInferencer`` as a decoded array; given a path, the
inferencer would decode it with OpenCV itself.
"""
from typing import List, Optional, Tuple

import numpy as np


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
    from ci2p_mm.datasets import LoadImageRGB

    rgb = LoadImageRGB().read_rgb(image)
    inferencer = ImageClassificationInferencer(
        model, pretrained=checkpoint or False, device=device)
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
