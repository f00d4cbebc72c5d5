"""Reading the config text a checkpoint records, without running it.

mmengine stores the training config in a checkpoint's ``meta['cfg']`` (old
versions: ``meta['config']``) as Python source, and ``Config.fromstring``
reads such text back by executing it. Text inside a checkpoint is as
foreign as the checkpoint, so a file that torch's safe loading accepts could
still run code that way. Here the text is only parsed: top-level
``name = value`` assignments whose values are literals or ``dict(...)``
calls of literals (``dict(a=1)``, ``dict({'.a': 1})``), which is what
mmengine writes (``cfg.pretty_text``).
Anything else becomes :data:`UNREADABLE`; nothing is executed.
"""
import ast
import math
import pprint
from typing import Any, Dict, List, Optional, Tuple


class _Unreadable:

    def __repr__(self) -> str:
        return '<not a literal>'


#: Stands for a value the reader does not evaluate (a call, a name, ...).
UNREADABLE = _Unreadable()


def _value(node: ast.AST, unreadable: Optional[list] = None) -> Any:
    """The value of a literal node; :data:`UNREADABLE` for each part that
    is not one, which is also appended to ``unreadable`` (innermost
    first)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = [_value(e, unreadable) for e in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    if isinstance(node, ast.Dict) and None not in node.keys:  # {**other}
        return {
            _value(k, unreadable): _value(v, unreadable)
            for k, v in zip(node.keys, node.values)
        }
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == 'dict' and len(node.args) <= 1 and all(
                isinstance(a, ast.Dict) and None not in a.keys
                for a in node.args) and all(k.arg for k in node.keywords)):
        # mmengine writes dict(key=...), and dict({'.key': ...}) for keys
        # that are not identifiers.
        value = _value(node.args[0], unreadable) if node.args else {}
        value.update(
            {k.arg: _value(k.value, unreadable)
             for k in node.keywords})
        return value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op,
                                                    (ast.USub, ast.UAdd)):
        operand = _value(node.operand)
        if type(operand) in (int, float):
            return -operand if isinstance(node.op, ast.USub) else operand
    if unreadable is not None:
        unreadable.append(node)
    return UNREADABLE


def read_config_text(text: str) -> Dict[str, Any]:
    """``{name: value}`` of a config's literal assignments (see above);
    ``{}`` for text that does not parse."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return {}
    values = {}
    for statement in tree.body:
        if (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                and isinstance(statement.targets[0], ast.Name)):
            values[statement.targets[0].id] = _value(statement.value)
    return values


# ---- writing config text that other libraries may execute ---------------

#: Packages a data-only config may still name in ``custom_imports``: this
#: plugin and OpenMMLab's own (mmengine imports them when it reads the text).
TRUSTED_IMPORT_PACKAGES = ('ci2p_mm', 'mmpretrain', 'mmengine', 'mmcv',
                           'mmdet', 'mmseg', 'mmpose')


class ConfigTextError(ValueError):
    """Config text whose data cannot be written as literals."""


class _LiteralPrinter(pprint.PrettyPrinter):
    """pprint's layout (``ast.literal_eval`` reads it back), with
    infinities as literals that overflow."""

    def format(self, obj, context, maxlevels, level):
        if isinstance(obj, float) and math.isinf(obj):
            return ('1e999' if obj > 0 else '-1e999'), True, False
        return super().format(obj, context, maxlevels, level)


def data_only_config_text(text: str) -> Tuple[str, List[str]]:
    """Config text rewritten as data: ``name = literal`` lines only.

    mmengine reads a checkpoint's config text (``meta['cfg']``, or
    ``message_hub``'s) with ``Config.fromstring``, which executes it, imports
    its ``custom_imports`` and loads the files its ``_base_`` names. What
    this returns holds literals only (``ast.literal_eval`` reads every
    value), so executing it builds those values and nothing else.

    Kept: every top-level ``name = value`` whose value is a literal or
    ``dict(...)`` of literals (all that mmengine's ``pretty_text`` writes),
    ``custom_imports`` limited to :data:`TRUSTED_IMPORT_PACKAGES`. Dropped,
    and listed in the returned notes: statements that are code (calls,
    imports, definitions...), ``_base_`` (it makes mmengine load other
    files), untrusted ``custom_imports``.

    Raises:
        ConfigTextError: text that does not parse, or an assignment whose
            value is not a literal (a lazy-import config's class, a
            ``lambda``...): dropping it would lose data.
    """
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError) as err:
        raise ConfigTextError(f'it is not valid Python ({err})') from None
    values, notes = {}, []

    def shown(node):
        segment = ast.get_source_segment(text, node) or ''
        segment = ' '.join(segment.split())
        return segment if len(segment) <= 60 else segment[:57] + '...'

    for statement in tree.body:
        if not (isinstance(statement, ast.Assign) and len(statement.targets)
                == 1 and isinstance(statement.targets[0], ast.Name)):
            notes.append(f'line {statement.lineno}: dropped `'
                         f'{shown(statement)}` (code, not a `name = value` '
                         f'assignment)')
            continue
        name, bad = statement.targets[0].id, []
        value = _value(statement.value, bad)
        if bad:
            raise ConfigTextError(
                f'line {statement.lineno}: `{name} = ...` holds '
                f'`{shown(bad[0])}`, which is not a literal')
        if name == '_base_':
            notes.append(f'line {statement.lineno}: dropped `_base_` (it '
                         f'makes mmengine load and run other files)')
            continue
        if name == 'custom_imports':
            value, dropped = _trusted_imports(value)
            if dropped:
                notes.append(f'line {statement.lineno}: dropped '
                             f'custom_imports {dropped} (only '
                             f'{", ".join(TRUSTED_IMPORT_PACKAGES)} are '
                             f'kept)')
            if value is None:
                continue
        values[name] = value
    printer = _LiteralPrinter(width=79, compact=True, sort_dicts=False)
    return ''.join(f'{name} = {printer.pformat(value)}\n'
                   for name, value in values.items()), notes


def _trusted_imports(value):
    """``custom_imports`` limited to trusted packages, and what was cut."""
    imports = value.get('imports') if isinstance(value, dict) else None
    if isinstance(imports, str):
        imports = [imports]
    if not isinstance(imports, list) or not all(
            isinstance(i, str) for i in imports):
        return None, [value]
    kept = [i for i in imports if i.split('.')[0] in TRUSTED_IMPORT_PACKAGES]
    dropped = [i for i in imports if i not in kept]
    return (dict(value, imports=kept) if kept else None), dropped
