"""Annotation files (``<image path> <label>`` per line): read strictly,
written whole.

mmpretrain's ``CustomDataset`` reads them with ``int(label)`` and a tuple
unpacking, so an empty file trains on nothing, a stray blank line or a
label like ``²`` (``str.isdigit`` accepts it, ``int`` does not) stops with a
bare ``ValueError``, and a file that is not UTF-8 with a bare
``UnicodeDecodeError``: none says which file or line. Here every such
problem is an :class:`AnnotationError` naming the file, the line and the
fix. Writers check that every path can be written as one UTF-8 line first
(:func:`annotation_problem`) and then write each file atomically.
"""
import os
import re
from typing import List, Optional, Tuple

from mmengine.fileio import get_file_backend

from ci2p_mm.utils.errors import UserError
from ci2p_mm.utils.io import NotARegularFile, fdopen_regular

#: A line: ``<path> <label>``, split at the last space; the label ASCII
#: digits only (``'²'.isdigit()`` is True).
_LINE = re.compile(r'(.+) ([0-9]+)')
#: Larger annotation files are refused unread (ImageNet's train list is
#: about 40 MB).
MAX_ANNOTATION_BYTES = 1 << 30


class AnnotationError(UserError, ValueError):
    """An annotation file that cannot be read, naming file and line."""


def annotation_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be written as one line of an annotation file
    (its name is not UTF-8, or holds a line break), or None."""
    try:
        path.encode('utf-8')
    except UnicodeEncodeError:
        return 'its name is not UTF-8 text'
    if any(c in path for c in '\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029'):
        return 'its name holds a line break'
    return None


def read_annotations(ann_file: str,
                     num_classes: int = 0) -> List[Tuple[str, int]]:
    """``(path, label)`` per line of ``ann_file``, or
    :class:`AnnotationError` naming the file and line.

    Blank lines are skipped. Refused: a file that is not a regular file,
    not UTF-8, or holds no sample; a line without ``<path> <label>``; a
    label that is not ASCII digits, or not below ``num_classes`` (when
    given).
    """
    how = ('Rewrite it (for Animals-10: '
           'tools/dataset_converters/prepare_animals10.py RAW_IMG OUT_DIR).')
    try:
        fd = os.open(ann_file, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        raise AnnotationError(f'Annotation file {ann_file} cannot be opened '
                              f'({err.strerror}).') from None
    try:
        f, info = fdopen_regular(fd)
    except NotARegularFile:
        raise AnnotationError(
            f'Annotation file {ann_file} is not a regular file (a '
            f'folder, FIFO or device); not read. {how}') from None
    with f:
        if info.st_size > MAX_ANNOTATION_BYTES:
            raise AnnotationError(
                f'Annotation file {ann_file} has {info.st_size} bytes, more '
                f'than {MAX_ANNOTATION_BYTES}; not read. {how}')
        data = f.read(MAX_ANNOTATION_BYTES + 1)
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as err:
        line = data.count(b'\n', 0, err.start) + 1
        column = err.start - (data.rfind(b'\n', 0, err.start) + 1) + 1
        raise AnnotationError(
            f'{ann_file}, line {line}: not UTF-8 text (byte {column} of the '
            f'line cannot be decoded). Annotation files are UTF-8. {how}'
        ) from None
    if text.startswith('\ufeff'):
        text = text[1:]  # a byte-order mark some editors write
    labels = f'0-{num_classes - 1}' if num_classes else 'a number'
    samples = []
    for number, line in enumerate(text.split('\n'), 1):
        line = line.strip()
        if not line:
            continue
        match = _LINE.fullmatch(line)
        if not match or (num_classes and int(match[2]) >= num_classes):
            raise AnnotationError(
                f'{ann_file}, line {number}: expected "<path> <label '
                f'{labels}>" (ASCII digits), got {line[:200]!r}. {how}')
        samples.append((match[1], int(match[2])))
    if not samples:
        raise AnnotationError(
            f'Annotation file {ann_file} lists no samples (it is empty). '
            f'{how}')
    return samples


def annotation_data_list(dataset, num_classes: int = 0) -> List[dict]:
    """mmpretrain ``CustomDataset.load_data_list``'s result for an
    annotation file (``img_path`` joined to the image prefix, ``gt_label``),
    read by :func:`read_annotations`."""
    prefix = dataset.img_prefix
    backend = get_file_backend(prefix, enable_singleton=True)
    return [{
        'img_path': backend.join_path(prefix, path),
        'gt_label': label
    } for path, label in read_annotations(dataset.ann_file, num_classes)]
