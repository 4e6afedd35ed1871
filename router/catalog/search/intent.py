"""A question asks to read: a task asked as a question wants a tool that reads, not one that
changes something.

"what did people reply in the thread" is `get_thread_replies`, not `reply_to_thread`; "how many
orders are pending" is `count`, not `delete_many`; "which versions have we released" lists
versions, it does not create one. Words alone rank such siblings by the words they share with the
task, so the one that writes often comes first. In the re-scoring of the best candidates
(`SearchIndex.search`), a tool whose name starts with a verb that changes something scores a
little less (`Weights.question_write`) when the task is an English question.

A task that asks how to do something ("how do I create a branch") is not a question in this
sense: the user wants the doing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["is_question", "starts_with_a_change"]

_QUESTION = re.compile(
    r"\s*(?:what|what's|whats|which|who|who's|whose|when|where|why|is|are|was|were|does|do|did|"
    r"has|have|any|show me|how(?!\s+(?:do|can|should|would|could)\s+(?:i|we)\b|\s+to\b))\b",
    re.I,
)
_CHANGES = frozenset(
    {"@create", "@update", "@delete", "@send", "@write", "@run", "@stop", "@move", "@upload",
     "@deploy", "@install", "@assign", "@complete", "@copy", "@scale"}
)  # fmt: skip
_READS = frozenset({"@read", "@list", "@search", "@count", "@status", "@compare", "@summarize"})


def is_question(task: str) -> bool:
    """Whether an English task is asked as a question (what, which, who, how many, is, did...)."""
    return _QUESTION.match(task) is not None


def starts_with_a_change(
    name_units: Iterable[tuple[str, frozenset[str]]], server_terms: frozenset[str]
) -> bool:
    """Whether a tool's name starts with a verb that changes something (create, update, send...):
    its first word that is not its server's name, by its capability tags, is the verb in the usual
    verb_object names. `name_units`: the name's words, each with the word and its tags."""
    for word, alts in name_units:
        if word in server_terms:
            continue
        return not alts.isdisjoint(_CHANGES) and alts.isdisjoint(_READS)
    return False
