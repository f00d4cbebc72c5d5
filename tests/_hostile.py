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


class FakeZoo:
    """CompressAI's zoo served from this machine, for tests without network.

    ``torch.hub``'s cache moves to ``tmp_path/hub`` and its downloader is
    replaced: after :meth:`serve` a download delivers the given weights
    under a zoo URL that carries their own SHA-256 prefix (so the project's
    hash check passes as it would for the published file); after
    :meth:`offline` (the start) a download fails as it does without
    network. ``calls`` lists the URLs asked for.
    """

    OFFLINE = '<urlopen error [Errno -2] Name or service not known>'

    def __init__(self, tmp_path, monkeypatch):
        self.tmp_path, self.monkeypatch = tmp_path, monkeypatch
        self.calls, self.source = [], None
        hub_dir = torch.hub.get_dir()
        torch.hub.set_dir(str(tmp_path / 'hub'))
        self.restore = lambda: torch.hub.set_dir(hub_dir)
        monkeypatch.setattr(torch.hub, 'download_url_to_file', self._download)

    def serve(self, state_dict, codec='bmshj2018-factorized', quality=5,
              metric='mse'):
        from compressai.zoo import image as zoo_image
        self.source = self.tmp_path / f'served-{codec}-{quality}.pth'
        torch.save(state_dict, str(self.source))
        url = zoo_url(codec, quality, metric)
        name = re.sub(r'-[a-f0-9]{8,}\.',
                      f'-{sha256_of(self.source)[:8]}.', osp.basename(url))
        self.monkeypatch.setitem(zoo_image.model_urls[codec][metric],
                                 quality, url.rsplit('/', 1)[0] + '/' + name)

    def offline(self):
        self.source = None

    def _download(self, url, dst, hash_prefix=None, progress=True):
        self.calls.append(url)
        if self.source is None:
            raise OSError(self.OFFLINE)
        shutil.copyfile(str(self.source), dst)
