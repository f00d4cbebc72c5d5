"""The image folder a codec trains on (``tools/train_codec.py``)."""
from typing import Optional

from mmengine.dataset import BaseDataset
from mmpretrain.registry import DATASETS

from ci2p_mm.utils.image_files import split_images
from .robust import SkipBadImagesMixin


@DATASETS.register_module()
class CodecImageFolder(SkipBadImagesMixin, BaseDataset):
    """The images under a folder, searched recursively
    (:func:`~ci2p_mm.utils.image_files.split_images`), without labels.

    A training run is one pass over ``num_samples`` draws: the images
    repeated (draw ``i`` is image ``i % len(images)``), in the order the
    :class:`~ci2p_mm.datasets.ResumableSampler` shuffles, which resumes
    inside the pass and seeds each draw's random crop.

    Args:
        image_dir (str): The training images' folder.
        split (str): ``'train'`` or ``'val'``. Defaults to ``'train'``.
        val_dir (str, optional): Validation images. Defaults to None: a
            ``val_ratio`` share of ``image_dir``'s, drawn with ``seed``.
        val_ratio (float): Defaults to 0.1.
        seed (int): Defaults to 0.
        num_samples (int, optional): The dataset's length. Defaults to
            None (each image once).
        **kwargs: ``BaseDataset``'s (``pipeline``, ...) and
            ``skip_bad_images``.
    """

    def __init__(self,
                 image_dir: str,
                 split: str = 'train',
                 val_dir: Optional[str] = None,
                 val_ratio: float = 0.1,
                 seed: int = 0,
                 num_samples: Optional[int] = None,
                 **kwargs):
        self.image_dir, self.split, self.val_dir = image_dir, split, val_dir
        self.val_ratio, self.seed = val_ratio, seed
        self.num_samples = num_samples
        super().__init__(test_mode=split != 'train', **kwargs)

    def load_data_list(self):
        train, val = split_images(self.image_dir, self.val_dir, self.val_ratio,
                                  self.seed)
        files = train if self.split == 'train' else val
        return [dict(img_path=path) for path in files]

    def __len__(self) -> int:
        return self.num_samples or super().__len__()

    def get_data_info(self, idx: int) -> dict:
        return super().get_data_info(idx % super().__len__())
