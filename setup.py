"""CI2P-MM: CI2P-ViT for OpenMMLab (mmpretrain plugin)."""
import os.path as osp

from setuptools import find_packages, setup


def read_version():
    namespace = {}
    with open(osp.join('ci2p_mm', 'version.py')) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


setup(
    name='ci2p-mm',
    version=read_version(),
    description='CI2P-ViT: Vision Transformers on learned-codec patches, as '
    'an OpenMMLab (mmpretrain) plugin',
    long_description=open('README.md').read() if osp.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['ci2p_mm', 'ci2p_mm.*']),
    python_requires='>=3.8',
    # mmcv is deliberately not required: full mmcv (with ops, for mmdet and
    # mmpose) and mmcv-lite both provide the `mmcv` module, and installing
    # one over the other breaks it. Choose with the extras below.
    install_requires=[
        'torch>=2.0',
        'torchvision',
        'mmengine>=0.10.0,<0.11',
        'mmpretrain>=1.2.0,<1.3',
        'compressai>=1.2.8,<1.3',
        'numpy<2',  # compressai needs it
        # mmengine reads `mmpretrain::` config bases with pkg_resources,
        # which setuptools 81 removed.
        'setuptools<81',
        'tqdm',
        'matplotlib',
        'timm>=1.0',  # CrossViT (ci2p_mm/models/backbones/crossvit.py)
    ],
    extras_require={
        # mmcv without compiled ops: enough for classification.
        'lite': ['mmcv-lite>=2.0.0,<2.2.0'],
        'tests': ['pytest'],
    },
)
