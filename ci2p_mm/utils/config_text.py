"""Reading the config text a checkpoint records, without running it.

mmengine stores the training config in a checkpoint's ``meta['cfg']`` (old
versions: ``meta['config']``) as Python source, and ``Config.fromstring``
reads such text back by executing it. Text inside a checkpoint is as
foreign as the checkpoint, so a file that torch's safe loading accepts could
still run code that way. Here the text is only parsed: top-level
``name = value`` assignments whose values are literals or ``dict(...)``
calls of literals, which is what mmengine writes (``cfg.pretty_text``).
Anything else becomes :data:`UNREADABLE`; nothing is executed.
"""
import ast
from typing import Any, Dict


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
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == 'dict' and not node.args
            and all(k.arg for k in node.keywords)):
        return {k.arg: _value(k.value) for k in node.keywords}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op,
                                                    (ast.USub, ast.UAdd)):
        operand = _value(node.operand)
        if isinstance(operand, (int, float)) and not isinstance(
                operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
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
