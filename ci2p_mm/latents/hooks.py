"""The check that a run's latent store was written by its model's codec."""
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

    def before_train(self, runner) -> None:
        self._check(runner, 'train_loop')

    def before_val(self, runner) -> None:
        self._check(runner, 'val_loop')

    def before_test(self, runner) -> None:
        self._check(runner, 'test_loop')
