"""Helpers for tests/test_security.py: hostile pickles and zoo files.

A hostile checkpoint is a real torch file whose pickle also holds an object
that, when unpickled without torch's safe loading, creates a marker file
(``open(marker, 'w')`` through ``__reduce__``). If the marker exists after
a run, code from the file ran.
"""
import hashlib
import os
import os.path as osp
import re
import shutil

import torch


class CreatesMarker:
    """Unpickling this calls ``open(marker, 'w')``: a visible side effect."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def write_hostile_checkpoint(path, marker, state_dict=None):
    """A torch file: ``state_dict``'s tensors plus the payload."""
    obj = dict(state_dict or {'g_a.0.weight': torch.zeros(1)})
    obj['payload'] = CreatesMarker(marker)
    torch.save(obj, str(path))
    return str(path)


def sha256_of(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def zoo_url(codec='bmshj2018-factorized', quality=5, metric='mse'):
    from compressai.zoo import image as zoo_image
    return zoo_image.model_urls[codec][metric][quality]


def plant_zoo_file(hub_dir, source, codec='bmshj2018-factorized', quality=5,
                   metric='mse', monkeypatch=None):
    """Put ``source`` into ``hub_dir/checkpoints`` as the zoo file.

    Without ``monkeypatch`` it takes the name CompressAI publishes (so its
    hash cannot match the prefix in the name). With ``monkeypatch``,
    CompressAI's ``model_urls`` entry is pointed at a name carrying the
    file's own SHA-256 prefix: the hash check passes, as it would for an
    attacker who found a 32-bit prefix collision. Returns the cached path.
    """
    from compressai.zoo import image as zoo_image
    url = zoo_url(codec, quality, metric)
    name = osp.basename(url)
    if monkeypatch is not None:
        digest = sha256_of(source)
        name = re.sub(r'-[a-f0-9]{8,}\.', f'-{digest[:8]}.', name)
        monkeypatch.setitem(zoo_image.model_urls[codec][metric], quality,
                            url.rsplit('/', 1)[0] + '/' + name)
    cache = osp.join(str(hub_dir), 'checkpoints')
    os.makedirs(cache, exist_ok=True)
    shutil.copyfile(str(source), osp.join(cache, name))
    return osp.join(cache, name)
