"""CI2P-MM: CI2P-ViT for OpenMMLab (mmpretrain plugin)."""
import os
import os.path as osp
import shutil
from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

#: Shipped inside the package (ci2p_mm/.mim/), as OpenMMLab packages do, so
#: an installed ci2p_mm finds its configs and model index by name.
MIM_FILES = ('configs', 'model-index.yml')


class BuildWithConfigs(build_py):
    """``build_py`` that also copies the configs and the model index into
    the built package (``ci2p_mm/.mim/``). A source checkout reads them
    from the repository instead (see ci2p_mm/model_index.py)."""

    def run(self):
        super().run()
        mim = osp.join(self.build_lib, 'ci2p_mm', '.mim')
        for name in MIM_FILES:
            target = osp.join(mim, name)
            if osp.isdir(target):
                shutil.rmtree(target)
            os.makedirs(mim, exist_ok=True)
            if osp.isdir(name):
                shutil.copytree(
                    name, target, ignore=shutil.ignore_patterns('__pycache__'))
            else:
                shutil.copy(name, target)


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
    long_description=open('README.md').read()
    if osp.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['ci2p_mm', 'ci2p_mm.*']),
    cmdclass={'build_py': BuildWithConfigs},
    license='Apache License 2.0',
    python_requires='>=3.8',
    # mmcv is deliberately not required: full mmcv (with ops, for mmdet and
    # mmpose) and mmcv-lite both provide the `mmcv` module, and installing
    # one over the other breaks it. Choose with the extras below.
    install_requires=[
        'torch>=2.1',  # scaled_dot_product_attention(scale=) in CvT
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
        # transformers: the reference CvtForImageClassification that
        # tests/test_converters.py checks the CvT converter against. Below
        # 4.52: with pycocotools installed (mmdet brings it) mmpretrain
        # 1.2.0 imports its multimodal models, which need names that
        # transformers 4.52 and 5.x removed (GenerationMixin in
        # modeling_utils, apply_chunking_to_forward): mmdet would not
        # import. 4.40.2-4.51.3 checked with mmdet/mmpose/mmseg.
        'tests': ['pytest', 'transformers>=4.40,<4.52'],
        # tools/misc/lint.sh and .pre-commit-config.yaml pin the same.
        'lint': ['flake8==7.1.1', 'isort==5.13.2', 'yapf==0.40.2'],
        # ONNX export and onnxruntime checks (tools/deployment/). Resolved
        # together with numpy<2 above, pip picks ml_dtypes 0.5.x, the last
        # that runs on numpy 1.x; `pip install onnx onnxruntime` alone would
        # upgrade numpy to 2.x and break CompressAI's import.
        # onnxscript: torch.onnx's dynamo exporter (--exporter dynamo); 0.6
        # has the API of torch >= 2.11, onnxruntime 1.18 reads the IR
        # version 10 files that exporter writes.
        'deploy': ['onnx>=1.17', 'onnxruntime>=1.18', 'onnxscript>=0.6'],
    },
)
