"""A task asked as a question wants a tool that reads (`intent.py`)."""

from __future__ import annotations

import json
from pathlib import Path

from router.catalog.search import SearchIndex
from router.catalog.search.intent import dictated, is_question, leading_change, leading_verb, nouns_by_number
from router.catalog.search.lexicon import LEXICON
from router.catalog.search.literals import names_one_item
from router.catalog.search.neighbours import default_neighbours
from router.catalog.search.query import QueryReader, pairs
from router.catalog.search.weights import Weights
from tests.support.search_data import index_of

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


def test_a_question_in_another_language_or_ending_in_a_question_mark() -> None:
    for question in ("Welche Umsatzsteuersätze sind hinterlegt", "¿Qué builds se están ejecutando?",
                     "quais processos estão comendo mais memória", "Сколько писем открыли",
                     "明天上海会下雨吗\uff1f", "sqlite events table columns?"):  # fmt: skip
        assert is_question(question), question
    # a request put politely as a question is still a request
    for request in ("We wrapped up the audit. Can you bill them for 10 hours?", "¿Puedes borrar el archivo?",
                    "Kannst du den Pod neu starten?", "BrowserStackで開いてもらえますか\uff1f",
                    "Crée une page Notion", "Cierra el ticket 7710"):  # fmt: skip
        assert not is_question(request), request


EVALSET = Path(__file__).resolve().parents[1] / "bench" / "toolsearch" / "evalset"


def test_words_that_read_as_names() -> None:
    reader = QueryReader(Weights(), LEXICON, default_neighbours())
    proper = reader.proper_names("Find the hiring plan in Notion, then ask hubspot. Email is fine")
    # capitalised inside a sentence, or no common English word; not a sentence's first word
    assert {"notion", "hubspot"} <= proper and not {"find", "hire", "email", "ask"} & proper


def _index(weights: Weights) -> SearchIndex:
    idx = SearchIndex(weights=weights)
    for path in sorted(EVALSET.glob("*.json")):  # the 35 servers of the evaluation set
        catalog = json.loads(path.read_text())
        idx.put_server(catalog["server"], catalog.get("instructions"), catalog["tools"])
    return idx


def test_a_server_named_by_a_name_weighs_more_than_one_named_by_a_common_word() -> None:
    # real catalogs: "sentry" and "postgres" name their servers; read like any other word, git's
    # `git_checkout` ("checkout") and desktop-commander's `get_file_info` ("read-only") came first
    strong, weak = _index(Weights()), _index(Weights(proper_mention=Weights().server_mention))
    cases = {
        "top unresolved errors in the checkout project in sentry this week": "sentry",
        "quick read-only check on the prod postgres: count of sessions created in the last hour": "postgres",
    }
    for query, server in cases.items():
        assert weak.search(query, 1)[0].key[0] != server, query  # a mention like any other: not enough
        assert strong.search(query, 1)[0].key[0] == server, query


def test_a_server_named_inside_quotes_or_dictated_text_is_no_server_the_task_means() -> None:
    # phrase=0: the two tasks put their words in different orders, and only the mention may differ
    idx = index_of(
        {
            "slack": [{"name": "post_message", "description": "Post a message to a Slack channel."}],
            "automation": [
                {
                    "name": "update_workflow",
                    "description": "Update a workflow: rename it, activate or deactivate it.",
                }
            ],
        },
        phrase=0.0,
    )

    def scores(query: str) -> dict[tuple[str, str], float]:
        return {h.key: h.score for h in idx.search(query, 5)}

    named = scores("deactivate the deploy alerts workflow in Slack")
    quoted = scores("deactivate the 'Deploy alerts to Slack' workflow")
    dictated = scores('deactivate the workflow "Deploy alerts to Slack"')
    post, update = ("slack", "post_message"), ("automation", "update_workflow")
    # "in Slack" names the server: its tool counts double; a workflow's name that says Slack does not
    assert named[post] > 1.9 * quoted[post]
    assert quoted[update] == named[update]
    assert post not in dictated or dictated[post] < quoted[post]


def test_a_task_that_names_one_item_by_its_identifier_wants_no_listing() -> None:
    assert names_one_item("close github issue #301 in acme/web")
    assert names_one_item("pull up order recXy12AbCdEf9 from the Orders table")
    assert names_one_item("log 2h on PROJ-1432") and names_one_item("show commit 3f2a9c1e")
    assert not names_one_item("list the open issues in acme/web")
    assert not names_one_item("bump the version to 1.2.3")
    # real catalogs: github's `list_issues` came before `update_issue`, which closes it
    query = "close github issue #301 in acme/web, it's fixed"
    plain = _index(Weights(one_item_list=0.0, change_read=0.0, number_agree=0.0)).search(query, 1)[0].key
    assert plain == ("github", "list_issues")
    assert _index(Weights(change_read=0.0, number_agree=0.0)).search(query, 1)[0].key == (
        "github",
        "update_issue",
    )


def test_what_a_task_dictates_is_set_apart() -> None:
    assert dictated("post in the eng channel saying the deploy is done") == (
        "post in the eng channel ",
        " the deploy is done",
    )
    asked, said = dictated('commit with the message "fix the login issue" please')
    assert "commit" in asked and "login" not in asked and "login" in said
    asked, said = dictated("Crée une page « Compte rendu de réunion » sous Projets")
    assert "Compte" in said and "Projets" in asked
    assert dictated("what did the last deploy say?") == ("what did the last deploy say?", "")
    assert dictated('"fix the login bug"') == ('"fix the login bug"', "")  # all quotes: as it is
    # the name a task gives a thing is dictated, up to a preposition; "called" says "title"
    asked, said = dictated("find the notion page called hiring plan")
    assert asked.split() == ["find", "the", "notion", "page", "title"] and said == "hiring plan"
    asked, said = dictated("add a toggle called beta-search to the web project in LaunchDarkly")
    assert said == "beta-search" and "LaunchDarkly" in asked
    asked, said = dictated("where's the notion doc titled 'Incident postmortem template'?")
    assert "Incident" in said and "Incident" not in asked


def test_a_message_s_words_do_not_choose_the_tool() -> None:
    # real catalogs: a Slack message about issues and merges found the tools its text names
    query = "tell the team in slack that the jira migration finished, saying all issues were moved"
    assert _index(Weights(dictated=1.0)).search(query, 1)[0].key != ("slack", "slack_post_message")
    assert _index(Weights()).search(query, 1)[0].key == ("slack", "slack_post_message")


def test_a_request_that_starts_by_changing_something_wants_a_tool_that_writes() -> None:
    for task in ("update prices in the products table", "please close issue 4", "open a PR for it",
                 "can you delete the branch", "spin up a vm"):  # fmt: skip
        assert leading_change(leading_verb(task, LEXICON)), task
    for task in ("show me the logs", "open the page", "list all repos", "find the ticket", "what changed"):
        assert not leading_change(leading_verb(task, LEXICON)), task
    # Japanese and Korean put the verb last
    for task in ("GitHubでプルリクエストを作成して", "Neon에 새 프로젝트 하나 만들어줘"):
        assert leading_change(leading_verb(task, LEXICON)), task
    for task in ("作成したプルリクエストを表示して", "새로 만든 이슈들 보여줘"):
        assert not leading_change(leading_verb(task, LEXICON)), task
    # real catalogs: a sprint's issues listed, a page read, a PR listed came first without the rule
    plain, ruled = _index(Weights(change_read=0.0)), _index(Weights())
    for query, (read, write) in {
        "put these issues into the next sprint": ("jira_get_sprint_issues", "jira_add_issues_to_sprint"),
        "duplicate the onboarding wiki page into another space": (
            "confluence_get_page",
            "confluence_copy_page",
        ),
        "open a PR from feature/auth into main on acme/webapp": ("list_pull_requests", "create_pull_request"),
    }.items():
        assert plain.search(query, 1)[0].key[1] == read, query
        assert ruled.search(query, 1)[0].key[1] == write, query


def test_a_tool_whose_name_differs_in_number_from_the_task_scores_less() -> None:
    assert nouns_by_number("read the latest messages in general") == (
        frozenset({"messag"}),
        frozenset({"read", "latest", "general"}),
    )
    assert nouns_by_number("get_issue list issues status access") == (
        frozenset({"issu"}),
        frozenset({"status", "access", "list"}),
    )
    # real catalogs: messages are read from a channel's history, not posted as one message; one
    # user's profile is read, not the list of users
    plain, agreeing = _index(Weights(number_agree=0.0)), _index(Weights())
    for query, tool in {
        "read the latest messages in #general": ("slack", "slack_get_channel_history"),
        "get the job title and timezone for slack user U02ABC123": ("slack", "slack_get_user_profile"),
    }.items():
        assert plain.search(query, 1)[0].key != tool, query
        assert agreeing.search(query, 1)[0].key == tool, query


def test_words_that_stand_together_in_the_task_and_the_tool_count_more() -> None:
    assert pairs(["credit", "note"], 3) == {frozenset({"credit", "note"})}
    assert frozenset({"credit", "note"}) in pairs(["note", "list", "credit"], 3)  # in either order
    assert frozenset({"a", "d"}) not in pairs(["a", "b", "c", "d"], 2)
    assert frozenset({"a", "d"}) in pairs(["a", "b", "c", "d"], 3)
    assert pairs(["page", "page"], 3) == frozenset()  # a word is no pair with itself
    # real catalogs: the same words scattered over another tool's text came first without the rule
    plain, near = _index(Weights(phrase=0.0)), _index(Weights())
    for query, tool in {
        "add a new section to the onboarding wiki page in confluence": "confluence_update_page_section",
        "create a local branch hotfix/login based on develop in my repo checkout": "git_create_branch",
        "stop the terminal session that's hanging": "force_terminate",
    }.items():
        assert plain.search(query, 1)[0].key[1] != tool, query
        assert near.search(query, 1)[0].key[1] == tool, query


def test_a_name_that_puts_its_verb_after_its_object_still_says_whether_it_writes() -> None:
    # dns_create writes and dns_list reads, though their first word names no action
    dns = {
        "cloudflare": [
            {"name": "dns_create", "description": "Add a DNS record to a domain."},
            {"name": "dns_list", "description": "List DNS records."},
        ]
    }
    query = "which DNS records does the example.org domain have?"
    assert index_of(dns, question_write=0.0).search(query, 1)[0].key[1] == "dns_create"
    assert index_of(dns).search(query, 1)[0].key[1] == "dns_list"
    # real catalog: jira_get_project_versions ("jira" is no verb, "get" is) came fourth
    first = _index(Weights()).search("which versions have we released for the project in Jira", 1)[0]
    assert first.key[1] == "jira_get_project_versions"
    # a noun after a linking word is no verb: subscribe_contact_to_list does not list
    lists = {
        "crm": [
            {"name": "subscribe_contact_to_list", "description": "Subscribe a contact to a mailing list."},
            {"name": "tag_contact", "description": "Tag a contact on a mailing list."},
        ]
    }
    assert index_of(lists).search("put contact 3391 on the newsletter list 14", 1)[0].key[1] == (
        "subscribe_contact_to_list"
    )
