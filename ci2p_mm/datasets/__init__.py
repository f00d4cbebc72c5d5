from .animals10 import ITALIAN_TO_ENGLISH, Animals10, make_split
from .synthetic import make_toy_animals10

__all__ = ['Animals10', 'ITALIAN_TO_ENGLISH', 'make_split',
           'make_toy_animals10']
