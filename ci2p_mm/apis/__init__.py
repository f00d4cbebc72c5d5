"""What ``tools/train.py`` and ``tools/test.py`` run, callable from Python.

``train(argv)`` returns the trained ``Runner``, ``test(argv)`` the metrics;
their ``main`` functions are the command lines (exit status). The argument
lists are exactly the tools' (mmpretrain's options plus CI2P's).
"""
from .testing import test
from .training import train

__all__ = ['train', 'test']
