"""A task asked as a question wants a tool that reads (`intent.py`)."""

from __future__ import annotations

from router.catalog.search import SearchIndex
from router.catalog.search.intent import is_question
from router.catalog.search.weights import Weights

SLACK = [
    {"name": "slack_reply_to_thread", "description": "Reply to a specific message thread in Slack."},
    {"name": "slack_get_thread_replies", "description": "Get all replies in a message thread."},
    {"name": "slack_post_message", "description": "Post a new message to a Slack channel."},
]


def _first(query: str, question_write: float) -> str:
    idx = SearchIndex(weights=Weights(question_write=question_write))
    idx.put_server("slack", None, SLACK)
    return idx.search(query, 1)[0].key[1]


def test_a_question_ranks_the_sibling_that_reads_first() -> None:
    query = "what did people reply in the launch thread?"
    assert _first(query, 0.0) == "slack_reply_to_thread"  # words alone: the one that writes
    assert _first(query, Weights().question_write) == "slack_get_thread_replies"
    # asked as a request, the task is the writing
    assert _first("reply in the launch thread that we ship on Monday", Weights().question_write) == (
        "slack_reply_to_thread"
    )


def test_what_counts_as_a_question() -> None:
    for question in ("what did people reply", "How many orders are pending?", "is CI green on PR 4",
                     "which versions have we released", "any open bugs about checkout"):  # fmt: skip
        assert is_question(question), question
    for request in ("how do I create a branch", "how to rename a file", "reply to the thread",
                    "create a ticket, what a day", "whatsapp the team"):  # fmt: skip
        assert not is_question(request), request
