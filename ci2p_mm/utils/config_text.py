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
from typing import Any, Dict, List, Tuple


class _Unreadable:

    def __repr__(self) -> str:
        return '<not a literal>'


#: Stands for a value the reader does not evaluate (a call, a name, ...).
UNREADABLE = _Unreadable()


def _value(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = [_value(e) for e in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):  # {**other}
            return UNREADABLE
        return {_value(k): _value(v) for k, v in zip(node.keys, node.values)}
    if _is_dict_call(node):
        # mmengine writes dict(key=...), and dict({'.key': ...}) for keys
        # that are not identifiers.
        value = _value(node.args[0]) if node.args else {}
        if not isinstance(value, dict):
            return UNREADABLE
        value.update({k.arg: _value(k.value) for k in node.keywords})
        return value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op,
                                                    (ast.USub, ast.UAdd)):
        operand = _value(node.operand)
        if isinstance(operand, (int, float)) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
    return UNREADABLE


def _is_dict_call(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == 'dict' and len(node.args) <= 1
            and all(isinstance(a, ast.Dict)
                    for a in node.args) and all(k.arg for k in node.keywords))


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


def _non_literal(node: ast.AST):
    """The first sub-node that :func:`read_config_text` cannot read."""
    if _value(node) is not UNREADABLE and not _holds_unreadable(_value(node)):
        return None
    children = []
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        children = node.elts
    elif isinstance(node, ast.Dict) and all(k is not None for k in node.keys):
        children = node.keys + node.values
    elif _is_dict_call(node):
        children = node.args + [k.value for k in node.keywords]
    for child in children:
        found = _non_literal(child)
        if found is not None:
            return found
    return node


def _holds_unreadable(value) -> bool:
    if value is UNREADABLE:
        return True
    if isinstance(value, dict):
        return any(
            _holds_unreadable(k) or _holds_unreadable(v)
            for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_holds_unreadable(v) for v in value)
    if isinstance(value, float) and value != value:
        return True  # NaN has no literal form
    return False


def _literal(value, indent: int = 0) -> str:
    """``value`` as Python literal text (``ast.literal_eval`` reads it
    back), wrapped when long."""
    if isinstance(value, float) and value in (float('inf'), float('-inf')):
        return '1e999' if value > 0 else '-1e999'  # literals that overflow
    if not isinstance(value, (dict, list, tuple)):
        return repr(value)
    if isinstance(value, dict):
        items = [
            f'{_literal(k)}: {_literal(v, indent + 4)}'
            for k, v in value.items()
        ]
        opening, closing = '{', '}'
    else:
        items = [_literal(v, indent + 4) for v in value]
        opening, closing = '()'
        if isinstance(value, list):
            opening, closing = '[]'
        if isinstance(value, tuple) and len(value) == 1:
            items[0] += ','
    flat = opening + ', '.join(items) + closing
    if len(flat) + indent <= 76 and '\n' not in flat:
        return flat
    pad = ' ' * (indent + 4)
    return (opening + '\n' + ''.join(f'{pad}{item},\n' for item in items) +
            ' ' * indent + closing)


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
        name = statement.targets[0].id
        bad = _non_literal(statement.value)
        if bad is not None:
            raise ConfigTextError(
                f'line {statement.lineno}: `{name} = ...` holds '
                f'`{shown(bad)}`, which is not a literal')
        value = _value(statement.value)
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
    lines = [f'{name} = {_literal(value)}\n' for name, value in values.items()]
    return ''.join(lines), notes


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
    if not kept:
        return None, dropped
    return dict(value, imports=kept), dropped
