"""The import rules of docs/architecture.md, and the one shape of a tool.

Read from the source (``ast``), nothing imported: a package of ``ci2p_mm``
imports only packages on lower floors, nothing imports the top-level
modules, no import hides in a function unless its dependency is optional,
and every script under ``tools/`` is a shim over a package ``main``.
"""
import ast
import os
import os.path as osp
import re

import pytest
from conftest import REPO

#: ci2p_mm's packages from the ground floor up: each may import only the
#: packages before it (docs/architecture.md, "Import rules").
FLOORS = ('version', 'utils', 'codec', 'datasets', 'models', 'latents',
          'engine', 'downstream', 'model_converters', 'deployment', 'analysis',
          'apis')
#: Modules at the top of the package, which packages must not import.
TOP = ('demo', 'inference', 'model_index')
#: Dependencies that are not installed with the package: only these may be
#: imported inside a function (where they are needed).
OPTIONAL = ('mmdet', 'mmpose', 'mmseg', 'onnx', 'onnxruntime', 'onnxscript',
            'transformers', 'ci2p_mm.downstream')
#: Most code lines (not docstring, comments or blank) a tools/ shim has.
SHIM_LINES = 6


def python_files(folder):
    for root, _, files in os.walk(osp.join(REPO, folder)):
        for name in sorted(files):
            if name.endswith('.py'):
                yield osp.join(root, name)


def imports(path):
    """``(imported module, line, inside a function)`` of one file."""
    tree = ast.parse(open(path).read(), path)
    package = osp.relpath(osp.dirname(path), REPO).replace(os.sep, '.')
    local = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            local.update(
                id(n) for n in ast.walk(node)
                if isinstance(n, (ast.Import, ast.ImportFrom)))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parts = package.split('.')[:len(package.split('.')) -
                                           node.level + 1]
                base = '.'.join(parts + ([base] if base else []))
            # `from ci2p_mm import latents` imports ci2p_mm.latents
            names = [
                f'{base}.{alias.name}' if base == 'ci2p_mm' else base
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            yield name, node.lineno, id(node) in local


def floor_of(module):
    """The package (or top module) of ``ci2p_mm.<x>...``."""
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else None


def package_files():
    return [
        p for p in python_files('ci2p_mm')
        if osp.relpath(p, osp.join(REPO, 'ci2p_mm')).count(os.sep)
    ]


def test_every_package_has_a_floor():
    found = {
        osp.relpath(p, osp.join(REPO, 'ci2p_mm')).split(os.sep)[0]
        for p in package_files()
    }
    assert found <= set(FLOORS), sorted(found - set(FLOORS))


@pytest.mark.parametrize(
    'path', package_files(), ids=lambda p: osp.relpath(p, REPO))
def test_packages_import_only_lower_floors(path):
    own = osp.relpath(path, osp.join(REPO, 'ci2p_mm')).split(os.sep)[0]
    upward = []
    for module, line, _ in imports(path):
        if module != 'ci2p_mm' and not module.startswith('ci2p_mm.'):
            continue
        target = floor_of(module)
        if module == 'ci2p_mm' or target in TOP:
            upward.append(f'line {line}: {module} (the package top)')
        elif target != own and (target not in FLOORS
                                or FLOORS.index(target) > FLOORS.index(own)):
            upward.append(f'line {line}: {module} (floor {target} is above '
                          f'{own})')
    assert not upward, '\n'.join(upward)


@pytest.mark.parametrize(
    'path', list(python_files('ci2p_mm')), ids=lambda p: osp.relpath(p, REPO))
def test_imports_inside_functions_are_optional_dependencies(path):
    hidden = [
        f'line {line}: {module}' for module, line, local in imports(path)
        if local and not module.startswith(OPTIONAL)
    ]
    assert not hidden, ('import these at the top of the module (only '
                        f'optional dependencies wait): {hidden}')


def code_lines(path):
    tree = ast.parse(open(path).read())
    body = tree.body[1:] if (
        tree.body and isinstance(tree.body[0], ast.Expr)
        and isinstance(tree.body[0].value, ast.Constant)) else tree.body
    lines = set()
    for node in body:
        lines.update(range(node.lineno, node.end_lineno + 1))
    return len(lines)


@pytest.mark.parametrize(
    'path',
    list(python_files('tools')) + list(python_files('demo')),
    ids=lambda p: osp.relpath(p, REPO))
def test_every_tool_is_a_shim_over_a_package_main(path):
    source = open(path).read()
    assert 'from ci2p_mm.utils.cli import run' in source, (
        'a command line runs its package main through ci2p_mm.utils.cli.run')
    assert "if __name__ == '__main__':\n    run(main)" in source
    assert code_lines(path) <= SHIM_LINES, (
        f'{code_lines(path)} code lines: the logic belongs in the package')


# ---- config names ----------------------------------------------------------
#: mmpretrain's rule: {model}_{N}xb{B}[-{schedule}]_{data}[-{size}]; fields
#: joined by '_', words within a field by '-'.
CLASSIFIER_NAME = re.compile(
    r'^[a-z0-9]+(-[a-z0-9]+)*_\d+xb\d+(-[a-z0-9.]+)*_[a-z0-9]+(-[a-z0-9]+)*'
    r'\.py$')
#: mmdet/mmpose/mmseg's: {algorithm}_{backbone}[_{neck}]_{schedule}_{data}.
DOWNSTREAM_NAME = re.compile(
    r'^(?P<algorithm>[a-z0-9-]+)_((?P<backbone>[a-z0-9.-]+)_)?'
    r'([a-z0-9-]+_)?(\d+xb\d+-[0-9a-z]+|\d+x)_[a-z0-9]+(-[a-z0-9x]+)*\.py$')
#: Backbone fields of downstream names: model names of the model index.
BACKBONE_FIELDS = ('ci2p-vit-b', 'ci2p-vit-ds-b', 'cvt-13',
                   'mobile-former-508m')
ALIAS = re.compile(r"^(#[^\n]*\n)+_base_ = \[\s*'(?P<target>[^']+)'\s*\]\n$")


def config_files():
    for path in python_files('configs'):
        rel = osp.relpath(path, osp.join(REPO, 'configs'))
        if not rel.startswith('_base_'):
            yield rel


def test_every_config_follows_the_naming_rule_or_is_an_alias():
    broken = []
    for rel in config_files():
        text = open(osp.join(REPO, 'configs', rel)).read()
        alias = ALIAS.match(text)
        name = osp.basename(rel)
        if alias:
            target = osp.normpath(osp.join(osp.dirname(rel), alias['target']))
            assert osp.isfile(osp.join(REPO, 'configs', target)), rel
            assert not ALIAS.match(
                open(osp.join(REPO, 'configs', target)).read()), rel
            continue
        if rel.startswith('downstream'):
            match = DOWNSTREAM_NAME.match(name)
            ok = match and (match['backbone'] in BACKBONE_FIELDS
                            or match['backbone'] is None)
        else:
            ok = CLASSIFIER_NAME.match(name) and osp.dirname(rel)
        if not ok:
            broken.append(rel)
    assert not broken, broken


@pytest.mark.parametrize(
    'name',
    [
        # '_' inside the backbone field
        'retinanet_ci2p_vit_ds_fpn_1x_coco.py',
        'segnetr_isic2017-224x224.py',  # no schedule
        'upernet_ci2p_vit_ds_isic2017-224x224.py',
    ])
def test_the_downstream_rule_refuses_the_old_names(name):
    match = DOWNSTREAM_NAME.match(name)
    assert not (match and match['backbone'] in BACKBONE_FIELDS + (None, ))


def test_the_classifier_rule_refuses_the_old_names():
    for name in ('ci2p_vit_animals10_latents.py', 'vit_tiny_toy.py',
                 'ci2p_vit_tiny_toy_latents.py'):
        assert not CLASSIFIER_NAME.match(name), name
