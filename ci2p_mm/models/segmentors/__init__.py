from .segnetr import (SegNetr, SegNetrBlock, SpatialInteraction,
                      global_partition, local_partition, patch_merge,
                      patch_reverse)

__all__ = [
    'SegNetr', 'SegNetrBlock', 'SpatialInteraction', 'patch_merge',
    'patch_reverse', 'local_partition', 'global_partition'
]
