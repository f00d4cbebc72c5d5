"""The check that a run's latent store was written by its model's codec."""
import functools

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from ci2p_mm.utils.model_config import bare_model
from .dataset import LatentDataset


@HOOKS.register_module()
class LatentStoreCheckHook(Hook):
    """Before training, validation and testing: every latent store feeding
    the run must have been written by the model's own codec (name,
    quality, encoder weights) at the model's image size."""

    priority = 'VERY_HIGH'

    def _check(self, runner, loop_name: str) -> None:
        loop = getattr(runner, loop_name, None)
        dataset = getattr(getattr(loop, 'dataloader', None), 'dataset', None)
        if isinstance(dataset, LatentDataset):
            dataset.store.check_model(bare_model(runner.model))

    before_train = functools.partialmethod(_check, loop_name='train_loop')
    before_val = functools.partialmethod(_check, loop_name='val_loop')
    before_test = functools.partialmethod(_check, loop_name='test_loop')
