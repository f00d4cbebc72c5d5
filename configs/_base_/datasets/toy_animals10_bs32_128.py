# The README demo's data: the generated toy Animals-10 at 128x128, batch 32,
# no worker processes (tools/run_demo.py writes it and sets the data root).
_base_ = ['./animals10_bs128.py']

train_pipeline = [
    dict(type='SafeLoadImageFromFile'),
    dict(type='Resize', scale=(128, 128)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='SafeLoadImageFromFile'),
    dict(type='Resize', scale=(128, 128)),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    dataset=dict(data_root='demo_runs/toy_animals10', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=0,
    dataset=dict(data_root='demo_runs/toy_animals10', pipeline=test_pipeline))
test_dataloader = val_dataloader
