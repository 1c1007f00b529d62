"""A command line made from a dataclass: one ``--flag`` per field, its help the docstring written under it.

Both training scripts (``python -m vae.train``, ``train_policy.py``) keep every setting of a run in one
dataclass and build their parser here, so the documentation, the defaults and the flags cannot drift apart.
Field ``num_envs`` is the flag ``--num-envs``; booleans get ``--flag`` / ``--no-flag``; ``tuple[int, ...]``
fields take several values; ``X | None`` fields take an ``X``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import typing


def field_docs(cls) -> dict[str, str]:
    """{field name: the docstring written under it} of a dataclass, read from its source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, after in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def dataclass_parser(cls, *, prog: str | None = None, description: str | None = None,
                     choices: dict[str, tuple] | None = None) -> argparse.ArgumentParser:
    """An argparse parser with one flag per field of ``cls``, its docstring as help, its default shown.

    ``choices`` maps field names to their allowed values (argparse checks them and lists them in --help).
    """
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    choices = choices or {}
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        hint, help_text = hints[f.name], docs.get(f.name, "")
        args = typing.get_args(hint)
        if hint is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=f.default,
                                help=help_text)
        elif typing.get_origin(hint) is tuple:
            parser.add_argument(flag, dest=f.name, type=args[0], nargs="+", default=f.default, help=help_text)
        else:
            kind = next((a for a in args if a is not type(None)), hint) if args else hint
            parser.add_argument(flag, dest=f.name, type=kind, default=f.default, help=help_text,
                                choices=choices.get(f.name))
    return parser
