# Animals-10 from codec latents: the samples of animals10_bs128.py, with the
# encoder's output for each image (and its horizontal flip) read from the
# store that tools/dataset_converters/encode_latents.py wrote once. The
# random flip picks the stored flipped latent with p=0.5, seeded per sample
# by ResumableSampler like the image path's RandomFlip.
# The image datasets below are the encoder's source (loading and resizing);
# override their data_root with
#   --cfg-options train_dataloader.dataset.source.data_root=DIR
#   (and val_dataloader.dataset.source.data_root=DIR).
_base_ = ['./animals10_bs128.py']

# Relative to the source's data_root; written by encode_latents.py.
latent_store = 'latents/bmshj2018-factorized-q5-256'

# The DataLoader path (workers read the memory-mapped store) is the
# default. On a GPU, device_resident=True (or tools/train.py
# --device-latents) loads the training store into device memory once
# (Animals-10: ~4 GB in fp16 with the flips) and draws every batch there,
# without workers: same batches, flips and exact resume
# (ci2p_mm/latents/device.py). A store larger than half the free device
# memory is refused (device_resident=dict(max_memory_fraction=...)).
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='LatentDataset',
        source={{_base_.train_dataloader.dataset}},
        store=latent_store,
        skip_bad_images=False,
        pipeline=[
            dict(type='LoadLatent', flip_prob=0.5),
            dict(type='PackInputs'),
        ]))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='LatentDataset',
        source={{_base_.val_dataloader.dataset}},
        store=latent_store,
        skip_bad_images=False,
        pipeline=[dict(type='LoadLatent'),
                  dict(type='PackInputs')]))
test_dataloader = val_dataloader
