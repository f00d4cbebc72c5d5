"""Building CompressAI codecs by zoo name and loading their weights.

CI2P only needs a codec's analysis transform ``g_a``, but the codec is always
built whole, with CompressAI's own classes, so that a checkpoint is checked
against the full architecture it was saved from (a hyperprior file has the
same ``g_a`` keys as a factorized-prior one: only the other keys tell them
apart).
"""
import os
import os.path as osp
from typing import Dict, Optional, Tuple, Union
from urllib.parse import urlparse

import torch
import torch.nn as nn
from compressai.models import CompressionModel
from compressai.zoo import image as zoo_image
from compressai.zoo.pretrained import load_pretrained

from ci2p_mm.utils.errors import UserError
from ci2p_mm.utils.io import file_sha256, load_torch_file
from ci2p_mm.utils.state_dicts import compare_state_dicts, extract_state_dict

# CompressAI's zoo spells one architecture two ways (``model_architectures``
# says 'bmshj2018_factorized_relu', ``cfgs`` says
# 'bmshj2018-factorized-relu'), and its ``bmshj2018_factorized_relu()``
# builder builds the GDN model. We accept both spellings and build the class.
_ALIASES = {'bmshj2018_factorized_relu': 'bmshj2018-factorized-relu'}
_ARCH_KEY = {'bmshj2018-factorized-relu': 'bmshj2018_factorized_relu'}

#: Channels and total stride of ``g_a`` that CI2P's reshape blocks expect.
LATENT_CHANNELS = 192
ENCODER_STRIDE = 16


class CodecWeightsError(UserError, RuntimeError):
    """A codec checkpoint is missing, unreadable or does not fit."""


class CodecSettingError(UserError, ValueError):
    """A codec name or quality that the zoo, or CI2P, does not have."""


def canonical_codec_name(codec: str) -> str:
    return _ALIASES.get(codec, codec)


def codec_class(codec: str) -> type:  # codec: canonical (callers made it)
    arch_key = _ARCH_KEY.get(codec, codec)
    if arch_key not in zoo_image.model_architectures:
        raise CodecSettingError(
            f'Unknown codec {codec!r}. CI2P supports these CompressAI zoo '
            f'codecs: {format_supported()}.')
    return zoo_image.model_architectures[arch_key]


def codec_args(codec: str, quality: int) -> Tuple[int, ...]:
    """The zoo's constructor arguments (N, M) or (N,) for a quality."""
    codec = canonical_codec_name(codec)
    codec_class(codec)  # validates the name
    qualities = zoo_image.cfgs[codec]
    if quality not in qualities:
        raise CodecSettingError(
            f'Codec {codec!r} has no quality {quality}; the zoo '
            f'defines qualities {sorted(qualities)}.')
    return tuple(qualities[quality])


def supported_codecs() -> Dict[str, Tuple[int, ...]]:
    """Zoo codecs and the qualities whose ``g_a`` ends in 192 channels."""
    supported = {}
    for codec, qualities in zoo_image.cfgs.items():
        fits = tuple(q for q, args in sorted(qualities.items())
                     if args[-1] == LATENT_CHANNELS)
        if fits:
            supported[codec] = fits
    return supported


def format_supported() -> str:
    return '; '.join(f'{name} (quality {", ".join(map(str, qs))})'
                     for name, qs in supported_codecs().items())


def check_supported(codec: str, quality: int) -> str:
    """Return the canonical name, or raise naming what CI2P supports."""
    codec = canonical_codec_name(codec)
    # g_a's output: M where the zoo gives (N, M), else N.
    channels = codec_args(codec, quality)[-1]
    if channels != LATENT_CHANNELS:
        raise CodecSettingError(
            f'{codec!r} at quality {quality} has a {channels}-channel latent; '
            f'CI2P needs {LATENT_CHANNELS} channels at stride '
            f'{ENCODER_STRIDE}. Supported: {format_supported()}.')
    return codec


def build_codec(codec: str = 'bmshj2018-factorized',
                quality: int = 5,
                pretrained: Union[bool, str] = False,
                metric: str = 'mse') -> CompressionModel:
    """Build a CompressAI zoo codec, optionally with weights.

    Args:
        codec (str): Zoo name, e.g. ``'bmshj2018-factorized'``.
        quality (int): Zoo quality level.
        pretrained (bool | str): ``True`` downloads CompressAI's published
            weights (cached by ``torch.hub``, verified against the hash in
            their name, see :func:`download_zoo_weights`); ``False``
            leaves the codec randomly initialised; a path loads a local
            checkpoint (see :func:`load_codec_state_dict`).
        metric (str): ``'mse'`` or ``'ms-ssim'``, for ``pretrained=True``.
    """
    codec = canonical_codec_name(codec)
    model = codec_class(codec)(*codec_args(codec, quality))
    if pretrained:
        load_codec_pretrained(model, codec, quality, pretrained, metric)
    return model


def load_codec_pretrained(model: CompressionModel,
                          codec: str,
                          quality: int,
                          pretrained: Union[bool, str],
                          metric: str = 'mse') -> None:
    """Load ``pretrained`` weights (``True``: CompressAI's, or a path; see
    :func:`build_codec`) into ``model``, a ``codec``/``quality`` codec."""
    if pretrained is True:
        state_dict = download_zoo_weights(codec, quality, metric)
        source = f'CompressAI zoo ({codec}, {metric}, quality {quality})'
    else:
        source = os.fspath(pretrained)
        state_dict = load_codec_state_dict(source, codec, quality)
    load_into_codec(model, state_dict, source, codec, quality)


def zoo_url(codec: str, quality: int, metric: str = 'mse') -> str:
    """The URL of CompressAI's published weights (its ``model_urls``)."""
    codec = canonical_codec_name(codec)
    urls = zoo_image.model_urls.get(codec, {}).get(metric, {})
    if quality not in urls:
        raise CodecWeightsError(
            f'CompressAI publishes no {metric} weights for {codec!r} quality '
            f'{quality}. Train them with tools/train_codec.py and pass the '
            f'file as pretrained=PATH.')
    return urls[quality]


def zoo_cache_file(url: str) -> str:
    """Where torch.hub keeps ``url``: ``<hub dir>/checkpoints/<file name>``."""
    name = osp.basename(urlparse(url).path)
    return osp.join(torch.hub.get_dir(), 'checkpoints', name)


def zoo_hash_prefix(url: str) -> str:
    """The SHA-256 prefix in a zoo file name (``...-866ba797.pth.tar``),
    found as torch.hub's ``check_hash`` finds it."""
    name = osp.basename(urlparse(url).path)
    found = torch.hub.HASH_REGEX.search(name)
    if not found or len(found.group(1)) < 8:
        raise CodecWeightsError(
            f'The zoo file name {name} carries no SHA-256 prefix, so its '
            f'content cannot be verified; CI2P-MM does not load unverified '
            f'zoo files. Download it yourself and pass it as '
            f'pretrained=PATH if you trust it.')
    return found.group(1)


def download_zoo_weights(codec: str,
                         quality: int,
                         metric: str = 'mse',
                         progress: bool = True) -> Dict[str, torch.Tensor]:
    """CompressAI's published weights, verified and safely unpickled.

    The file is fetched into torch.hub's cache (``torch.hub.get_dir()``)
    when absent, by torch.hub's own downloader, which refuses a download
    whose SHA-256 does not start with the prefix in CompressAI's file name.
    A file already in the cache is checked against the same prefix, so a
    damaged, partial or planted file is refused before anything in it is
    unpickled; then it is read with torch's safe loading, like every other
    file (:func:`~ci2p_mm.utils.io.load_torch_file`). CompressAI's own
    loader switches torch's safe unpickling off and checks no hash.
    """
    codec = canonical_codec_name(codec)
    url = zoo_url(codec, quality, metric)
    cached = zoo_cache_file(url)
    expected = zoo_hash_prefix(url)
    what = (f'CompressAI weights for {codec!r} quality {quality} in '
            f'torch.hub\'s cache, {cached}')
    advice = ('Nothing in it was loaded. Delete the file to download it '
              'again.')
    if not osp.exists(cached):
        os.makedirs(osp.dirname(cached), exist_ok=True)
        try:
            torch.hub.download_url_to_file(
                url, cached, expected, progress=progress)
        except OSError as err:  # URLError, socket errors, ... are OSErrors
            raise CodecWeightsError(
                f'Could not download CompressAI weights for {codec!r} '
                f'quality {quality} from {url} ({err}). Offline? Copy the '
                f'file into {osp.dirname(cached)} or pass a local '
                f'checkpoint with patch_cfg=dict(pretrained='
                f'"/path/to/codec.pth") (tools/train_codec.py trains one).'
            ) from err
        except RuntimeError as err:  # torch.hub: 'invalid hash value'
            raise CodecWeightsError(
                f'The download of {url} does not match the SHA-256 prefix '
                f'{expected} in its name ({err}); it was not kept. A proxy '
                f'or mirror altered it, or the server sent another file.'
            ) from err
    digest = file_sha256(cached)
    if not digest.startswith(expected):
        raise CodecWeightsError(
            f'{what}, are not the published file: its SHA-256 is '
            f'{digest[:16]}..., but CompressAI\'s file name says it starts '
            f'with {expected} (damaged, partly downloaded or replaced). '
            f'{advice}')
    try:
        state_dict = extract_state_dict(
            load_torch_file(cached, CodecWeightsError, what=what),
            cached,
            error=CodecWeightsError,
            what='Codec checkpoint')
    except CodecWeightsError as err:
        raise CodecWeightsError(f'{err} {advice}') from err
    return load_pretrained(state_dict)


def recorded_codec(checkpoint, path: str) -> Optional[Tuple[str, int]]:
    """(codec, quality) that a loaded codec checkpoint records
    (``tools/train_codec.py`` writes ``'codec'`` and ``'quality'``), or that
    ``path`` says when it keeps a zoo file's name; else None."""
    if isinstance(checkpoint, dict) and {'codec', 'quality'
                                         } <= set(checkpoint):
        return (canonical_codec_name(checkpoint['codec']),
                int(checkpoint['quality']))
    name = osp.basename(path)
    return next(
        ((codec, quality) for codec, metrics in zoo_image.model_urls.items()
         for urls in metrics.values()
         for quality, url in urls.items() if url.rsplit('/', 1)[-1] == name),
        None)


def read_checkpoint(path: str) -> dict:
    """``torch.load`` a file safely, turning every failure into one error."""
    return load_torch_file(
        path, CodecWeightsError, what=f'Codec checkpoint {path}')


def load_codec_state_dict(path: str,
                          codec: str,
                          quality: int,
                          checkpoint=None) -> Dict[str, torch.Tensor]:
    """Read a local codec checkpoint in CompressAI's formats.

    Accepted: a plain codec ``state_dict`` as the zoo ships it, or a dict
    with a ``'state_dict'`` entry as CompressAI's training example (and
    ``tools/train_codec.py``) save it. When the file records its codec and
    quality (``tools/train_codec.py`` writes ``'codec'`` and ``'quality'``),
    or keeps a zoo file's name, those must match the request.
    ``checkpoint``: the file as :func:`read_checkpoint` read it already.
    """
    if checkpoint is None:
        checkpoint = read_checkpoint(path)
    state_dict = extract_state_dict(
        checkpoint, path, error=CodecWeightsError, what='Codec checkpoint')
    recorded = recorded_codec(checkpoint, path)
    if recorded is not None and recorded != (codec, quality):
        raise CodecWeightsError(
            f'Codec checkpoint {path} is {recorded[0]!r} quality '
            f'{recorded[1]}, but {codec!r} quality {quality} was asked for.')
    return load_pretrained(state_dict)


def load_into_codec(model: CompressionModel, state_dict: Dict[str,
                                                              torch.Tensor],
                    source: str, codec: str, quality: int) -> None:
    """Load weights exactly; name what does not fit."""
    # Entropy-coder tables (_quantized_cdf, ..., and GaussianConditional's
    # scale_table) exist only after update() and vary in size: they say
    # nothing about the architecture. CompressionModel.load_state_dict
    # resizes exactly these buffers before loading.
    tables = ('_quantized_cdf', '_offset', '_cdf_length', 'scale_table')

    def architecture(items):
        return {k: v for k, v in items if not k.endswith(tables)}

    # g_a first: it is the part CI2P uses; the file's extra keys sorted.
    mismatch = compare_state_dicts(
        architecture(model.state_dict().items()),
        architecture(sorted(state_dict.items())),
        first=lambda k: k.startswith('g_a.'))
    if mismatch:
        raise CodecWeightsError(
            f'Weights from {source} do not fit {codec!r} quality {quality} '
            f'(N, M = {codec_args(codec, quality)}): {mismatch.describe()}. '
            f'Was it saved from another codec or quality?')
    # CompressionModel.load_state_dict resizes the entropy-coder buffers.
    model.load_state_dict(state_dict, strict=False)


def encoder_stages(encoder: nn.Sequential):
    """Split ``g_a`` into its resolution levels (strides 2, 4, 8, 16).

    A level ends just before the next strided module, so each returned
    slice's output is the last feature map at that resolution (for the
    factorized prior: conv+GDN at strides 2, 4, 8, and the final conv).
    """

    def downsamples(module):
        return any(
            getattr(m, 'stride', (1, ))[0] == 2 for m in module.modules()
            if isinstance(m, nn.Conv2d))

    children = list(encoder)
    starts = [i for i, m in enumerate(children) if downsamples(m)]
    if len(starts) != 4 or starts[0] != 0:
        raise ValueError(
            f'Expected g_a to downsample 4 times, starting at its first '
            f'module; found strided modules at {starts}.')
    bounds = starts + [len(children)]
    return [encoder[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
