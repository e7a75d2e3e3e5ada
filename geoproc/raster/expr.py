"""Band-math expressions: parsed against an allow-list, evaluated lazily on xarray, never by ``eval``.

The syntax is the one users know from rio-tiler / titiler and ``rio calc``: band or input names
(``b1``, ``nir``), numbers, ``+ - * / **``, unary minus, one comparison at a time (``< <= > >= == !=``),
and the functions of :data:`FUNCTIONS` (``where``, ``sqrt``, ``log``, ``abs``, ``clip``, ``nanmean``,
...). ``;`` separates output bands: ``"b3; b2; b1"`` is a three-band result.

Everything else is refused before anything runs, with the construct named: attribute access
(``red.values``), subscripts, lambdas, comprehensions, conditional expressions, names that are not
bands or inputs, calls to anything outside the allow-list (``__import__``, ``open``), keyword
arguments, strings and booleans. Length and nesting are capped, so a hostile expression cannot
exhaust the parser's recursion.

Evaluation works on whatever the names are bound to (xarray objects backed by Dask: the result stays
lazy). Missing values propagate as NaN; :meth:`Expression.evaluate` turns every non-finite result
(nodata in, division by zero, ``log(0)``) into the declared nodata.
"""

from __future__ import annotations

import ast
import operator as op
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import EXPR_FORBIDDEN, EXPR_SYNTAX, EXPR_UNKNOWN_NAME, InvalidExpression

MAX_LENGTH = 4000
MAX_DEPTH = 60


def _where(cond: Any, a: Any, b: Any) -> Any:
    import xarray as xr

    return xr.where(cond, a, b, keep_attrs=True)


def _nanmean(*xs: Any) -> Any:
    import xarray as xr

    return xr.concat(xs, dim="__k").mean("__k", skipna=True)


#: the functions an expression may call, by name
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "where": _where, "sqrt": np.sqrt, "log": np.log, "log10": np.log10, "exp": np.exp, "abs": np.abs,
    "clip": lambda x, lo, hi: x.clip(lo, hi), "minimum": np.minimum, "maximum": np.maximum,
    "nanmean": _nanmean, "isnan": np.isnan,
}
_BINARY = {ast.Add: op.add, ast.Sub: op.sub, ast.Mult: op.mul, ast.Div: op.truediv, ast.Pow: op.pow,
           ast.BitAnd: op.and_, ast.BitOr: op.or_}
_UNARY = {ast.USub: op.neg, ast.UAdd: op.pos, ast.Invert: op.invert}
_COMPARE = {ast.Lt: op.lt, ast.LtE: op.le, ast.Gt: op.gt, ast.GtE: op.ge, ast.Eq: op.eq, ast.NotEq: op.ne}
_SYMBOLS = {ast.BitAnd: "&", ast.BitOr: "|", ast.Invert: "~"}


@dataclass(frozen=True)
class Expression:
    """A checked band-math program: one syntax tree per output band, and the names it reads."""

    text: str
    bands: tuple[ast.Expression, ...]
    names: frozenset[str]

    @classmethod
    def parse(cls, text: str, names: set[str] | frozenset[str] | None) -> Expression:
        """Parse ``text`` and check it against the allow-list and the available ``names`` (None: any name).

        Raises:
            InvalidExpression: with code ``EXPR_SYNTAX``, ``EXPR_FORBIDDEN`` or ``EXPR_UNKNOWN_NAME``.
        """
        if not text or not text.strip():
            raise InvalidExpression("the expression is empty; write e.g. (b4 - b3) / (b4 + b3)", code=EXPR_SYNTAX)
        if len(text) > MAX_LENGTH:
            raise InvalidExpression(f"the expression is {len(text)} characters long; at most {MAX_LENGTH} are "
                                    "allowed", code=EXPR_FORBIDDEN)
        trees = []
        used: set[str] = set()
        for part in (p.strip() for p in text.split(";")):
            if not part:
                raise InvalidExpression(f"empty output band in {text!r} (two ';' in a row, or one at the end)",
                                        code=EXPR_SYNTAX)
            try:
                tree = ast.parse(part, mode="eval")
            except SyntaxError as exc:
                raise InvalidExpression(f"{part!r} is not an expression: {exc.msg}", code=EXPR_SYNTAX) from None
            _check(tree.body, None if names is None else set(names), used, part, 0)
            trees.append(tree)
        return cls(text, tuple(trees), frozenset(used))

    def evaluate(self, values: Mapping[str, Any], *, nodata: float | None = None) -> Any:
        """The result on ``values`` (name -> DataArray): one array, or bands stacked along ``band``.

        Non-finite results become ``nodata`` when one is given.
        """
        import xarray as xr

        with np.errstate(divide="ignore", invalid="ignore"):
            outs = [_eval(t.body, values) for t in self.bands]
        outs = [o if isinstance(o, xr.DataArray) else xr.full_like(next(iter(values.values())), o, dtype="float64")
                for o in outs]
        if nodata is not None:
            outs = [o.where(np.isfinite(o), nodata) if o.dtype.kind == "f" else o for o in outs]
        if len(outs) == 1:
            return outs[0]
        names = [f"b{i}" for i in range(1, len(outs) + 1)]
        stacked = xr.concat([o.drop_vars("band", errors="ignore") for o in outs], dim="band")
        return stacked.assign_coords(band=names)


def _refuse(node: ast.AST, part: str, why: str) -> InvalidExpression:
    return InvalidExpression(f"{why} in {part!r}: expressions allow band and input names, numbers, arithmetic, "
                             f"one comparison at a time and the functions {', '.join(sorted(FUNCTIONS))}",
                             code=EXPR_FORBIDDEN)


def _check(node: ast.AST, names: set[str] | None, used: set[str], part: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise InvalidExpression(f"the expression nests deeper than {MAX_DEPTH} levels", code=EXPR_FORBIDDEN)
    kids: list[ast.AST]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        kids = [node.left, node.right]
    elif isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        kids = [node.operand]
    elif isinstance(node, ast.Compare):
        if len(node.ops) != 1 or type(node.ops[0]) not in _COMPARE:
            raise _refuse(node, part, "a chained comparison")
        kids = [node.left, node.comparators[0]]
    elif isinstance(node, ast.Name):
        if names is not None and node.id not in names:
            raise InvalidExpression(f"unknown name {node.id!r} in {part!r}; the names are "
                                    f"{', '.join(sorted(names)) or '(none)'}", code=EXPR_UNKNOWN_NAME)
        used.add(node.id)
        return
    elif isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise _refuse(node, part, f"the constant {node.value!r} (only numbers)")
        return
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            what = node.func.id if isinstance(node.func, ast.Name) else type(node.func).__name__
            raise _refuse(node, part, f"a call to {what!r}")
        if node.keywords:
            raise _refuse(node, part, f"keyword arguments to {node.func.id}")
        kids = list(node.args)
    else:
        label = {ast.Attribute: "attribute access", ast.Subscript: "a subscript", ast.Lambda: "a lambda",
                 ast.IfExp: "a conditional expression", ast.ListComp: "a comprehension",
                 ast.GeneratorExp: "a comprehension", ast.SetComp: "a comprehension",
                 ast.DictComp: "a comprehension", ast.Starred: "a starred argument",
                 ast.NamedExpr: "an assignment"}.get(type(node), f"the construct {type(node).__name__}")
        raise _refuse(node, part, label)
    for kid in kids:
        _check(kid, names, used, part, depth + 1)


def _eval(node: ast.AST, values: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_eval(node.left, values), _eval(node.right, values))
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_eval(node.operand, values))
    if isinstance(node, ast.Compare):
        return _COMPARE[type(node.ops[0])](_eval(node.left, values), _eval(node.comparators[0], values))
    if isinstance(node, ast.Name):
        return values[node.id]
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return FUNCTIONS[node.func.id](*[_eval(a, values) for a in node.args])
    raise TypeError(f"unchecked node {type(node).__name__}")  # parse() refused it already
