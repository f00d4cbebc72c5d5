from ci2p_mm.utils.image_files import BadImageError, decode_image
from .animals10 import (ITALIAN_TO_ENGLISH, Animals10, DatasetNotPreparedError,
                        make_split)
from .codec_images import CodecImageFolder
from .isic import ISICLayoutError, convert_isic2017
from .robust import (ResumableSampler, RobustImageNet, SeededIndex,
                     SkipBadImagesMixin)
from .synthetic import make_toy_animals10
from .transforms import LoadImageRGB, SafeLoadImageFromFile

__all__ = [
    'Animals10', 'CodecImageFolder', 'ITALIAN_TO_ENGLISH',
    'DatasetNotPreparedError', 'make_split', 'make_toy_animals10',
    'SafeLoadImageFromFile', 'LoadImageRGB', 'BadImageError', 'decode_image',
    'ResumableSampler', 'RobustImageNet', 'SeededIndex', 'SkipBadImagesMixin',
    'convert_isic2017', 'ISICLayoutError'
]
