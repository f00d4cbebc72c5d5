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


def plant_zoo_file(hub_dir,
                   source,
                   codec='bmshj2018-factorized',
                   quality=5,
                   metric='mse',
                   monkeypatch=None):
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

    def serve(self,
              state_dict,
              codec='bmshj2018-factorized',
              quality=5,
              metric='mse'):
        from compressai.zoo import image as zoo_image
        self.source = self.tmp_path / f'served-{codec}-{quality}.pth'
        torch.save(state_dict, str(self.source))
        url = zoo_url(codec, quality, metric)
        name = re.sub(r'-[a-f0-9]{8,}\.', f'-{sha256_of(self.source)[:8]}.',
                      osp.basename(url))
        self.monkeypatch.setitem(zoo_image.model_urls[codec][metric], quality,
                                 url.rsplit('/', 1)[0] + '/' + name)

    def offline(self):
        self.source = None

    def _download(self, url, dst, hash_prefix=None, progress=True):
        self.calls.append(url)
        if self.source is None:
            raise OSError(self.OFFLINE)
        shutil.copyfile(str(self.source), dst)


# ---- files that run programs, never end, or lie (issue 21) -------------

#: A small, valid Encapsulated PostScript file. Pillow's EPS plugin, if it
#: is ever tried, hands it to Ghostscript (an external program) to decode.
POSTSCRIPT = b"""%!PS-Adobe-3.0 EPSF-3.0
%%BoundingBox: 0 0 64 64
%%EndComments
newpath 0 0 moveto 64 64 lineto stroke
showpage
%%EOF
"""


class GhostscriptSpy:
    """Records every use of Pillow's EPS plugin: its header parser and its
    ``Ghostscript`` call (which would start the ``gs`` program); the latter
    raises instead of running anything."""

    def __init__(self, monkeypatch):
        from PIL import EpsImagePlugin
        self.opened, self.ran = [], []
        original_open = EpsImagePlugin.EpsImageFile._open

        def spy_open(image):
            self.opened.append(image)
            return original_open(image)

        def spy_ghostscript(*args, **kwargs):
            self.ran.append(args)
            raise OSError('Ghostscript would have run here')

        monkeypatch.setattr(EpsImagePlugin.EpsImageFile, '_open', spy_open)
        monkeypatch.setattr(EpsImagePlugin, 'Ghostscript', spy_ghostscript)

    @property
    def used(self):
        return bool(self.opened or self.ran)


def write_zip(path, records, extra_central=()):
    """A zip archive written by hand, so it can say what zipfile would not.

    ``records``: ``(name, data, method, declared_size, crc)``, ``data``
    already compressed for ``method`` 8 (DEFLATE). ``extra_central``:
    ``(name, index)`` central-directory entries that point at the local
    record ``index`` again (overlapping records).
    """
    import struct
    offsets, central = [], b''
    with open(path, 'wb') as f:
        for name, data, method, declared, crc in records:
            offsets.append(f.tell())
            encoded = name.encode()
            f.write(
                struct.pack('<IHHHHHIIIHH', 0x04034b50, 20, 0, method, 0, 0x21,
                            crc, len(data), declared, len(encoded), 0) +
                encoded)
            f.write(data)
        entries = [(name, method, declared, crc, len(data), offsets[i])
                   for i, (name, data, method, declared,
                           crc) in enumerate(records)]
        entries += [(name, records[i][2], records[i][3], records[i][4],
                     len(records[i][1]), offsets[i])
                    for name, i in extra_central]
        start = f.tell()
        for name, method, declared, crc, stored, offset in entries:
            encoded = name.encode()
            central += struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 20, 20, 0,
                                   method, 0, 0x21, crc, stored, declared,
                                   len(encoded), 0, 0, 0, 0, 0,
                                   offset) + encoded
        f.write(central)
        f.write(
            struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, len(entries),
                        len(entries), len(central), start, 0))
    return str(path)


def torch_records(path):
    """``(name, bytes)`` of every record of a small torch file."""
    import zipfile
    with zipfile.ZipFile(path) as archive:
        return [(i.filename, archive.read(i)) for i in archive.infolist()]


def write_inflating_checkpoint(path, declared_bytes=89 << 24):
    """A torch file of about 1.4 MB whose one tensor record is DEFLATE
    data of ``declared_bytes`` zeros (1.5 GB by default): what torch
    allocates when it loads it. Built from 16 MiB blocks compressed once
    (full flushes make them independent), so it takes well under a second.
    """
    import zipfile
    import zlib
    chunk = 16 << 20
    assert declared_bytes % chunk == 0
    # The pickle of a tensor that size, from a file whose data is skipped.
    template = f'{path}.template'
    with torch.serialization.skip_data():
        torch.save({'w': torch.empty(declared_bytes // 4)}, template)
    with zipfile.ZipFile(template) as archive:
        infos = archive.infolist()
        small = {
            i.filename: archive.read(i)
            for i in infos if not i.filename.endswith('/data/0')
        }
    os.remove(template)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(chunk)) + compressor.flush(
        zlib.Z_FULL_FLUSH)
    final = zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    deflated = block * (declared_bytes // chunk) + final
    records = []
    for info in infos:
        if info.filename.endswith('/data/0'):
            # CRC 0: records without a CRC are not checked (torch never is).
            records.append((info.filename, deflated, 8, declared_bytes, 0))
        else:
            data = small[info.filename]
            records.append(
                (info.filename, data, 0, len(data), zlib.crc32(data)))
    return write_zip(path, records)


# ---- decode stalls and metadata over Pillow's limits (issue 27) --------


def jpeg_with_repeated_scan(size=(256, 192), repeats=2000):
    """A flat progressive JPEG whose last scan (an AC refinement scan of
    26 bytes, a pass over every block) is written ``repeats`` more times.
    libjpeg decodes it, one pass per scan: at 4000x3000 and 2,000 repeats
    (a 123 KB file) Pillow takes 20 s."""
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.new('RGB', size, (120, 130, 140)).save(buf, 'JPEG', progressive=True)
    data = buf.getvalue()
    last, end = data.rindex(b'\xff\xda'), data.rindex(b'\xff\xd9')
    return data[:end] + data[last:end] * repeats + data[end:]


def png_with_chunk(kind=b'zTXt', payload_bytes=100 << 20, before_idat=True):
    """A 32x32 PNG carrying one ancillary chunk: zTXt or iCCP holding
    ``payload_bytes`` once decompressed (100 MB by default, stored in
    about 100 KB), or tEXt holding them as they are."""
    import io
    import struct
    import zlib

    from PIL import Image
    buf = io.BytesIO()
    Image.new('RGB', (32, 32), (1, 2, 3)).save(buf, 'PNG')
    data = buf.getvalue()
    if kind == b'tEXt':
        body = b'Comment\0' + b' ' * payload_bytes
    else:
        head = b'Comment\0\0' if kind == b'zTXt' else b'icc\0\0'
        body = head + zlib.compress(b' ' * payload_bytes, 9)
    chunk = (
        struct.pack('>I', len(body)) + kind + body +
        struct.pack('>I', zlib.crc32(kind + body)))
    pos = data.index(b'IDAT' if before_idat else b'IEND') - 4
    return data[:pos] + chunk + data[pos:]
