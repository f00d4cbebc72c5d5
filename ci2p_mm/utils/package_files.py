"""Where the package's configs and model index are.

In a source checkout they are the repository's ``configs/`` and
``model-index.yml``; in an installed package, copies in ``ci2p_mm/.mim/``
(``setup.py`` puts them there at build time, as OpenMMLab packages do).
"""
import os.path as osp

_PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))
INDEX_FILE = 'model-index.yml'


def package_root() -> str:
    """The folder holding ``model-index.yml`` and ``configs/``."""
    checkout = osp.dirname(_PACKAGE_DIR)
    for root in (checkout, osp.join(_PACKAGE_DIR, '.mim')):
        if osp.isfile(osp.join(root, INDEX_FILE)) and osp.isdir(
                osp.join(root, 'configs')):
            return root
    raise FileNotFoundError(
        f'Neither {checkout} nor {osp.join(_PACKAGE_DIR, ".mim")} holds '
        f'{INDEX_FILE} and configs/: the package was installed without its '
        f'configs. Reinstall it with pip from the repository '
        f'(pip install .).')


def configs_root() -> str:
    """The ``configs/`` folder."""
    return osp.join(package_root(), 'configs')
