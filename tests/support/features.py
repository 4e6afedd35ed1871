"""Which features are on this branch: parts of the stack come from issues that land one by one,
and tests of what needs them say so (skip with the reason) until they are here, then run in full."""

from __future__ import annotations

import argparse

from router.cli import _parser


def cli_has(command: str, option: str | None = None) -> bool:
    """Whether `toolmesh COMMAND [OPTION]` exists on this branch."""
    actions = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    sub = actions[0].choices.get(command) if actions else None
    return sub is not None and (option is None or any(option in a.option_strings for a in sub._actions))
