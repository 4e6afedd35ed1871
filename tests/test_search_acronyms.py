"""Acronyms on one side, their words on the other (router/catalog/search/acronyms.py)."""

from __future__ import annotations

from router.catalog.search.acronyms import INITIALS, SPELLED_OUT, name_terms, task_terms
from tests.support.search_data import index_of


def _no_verb(word: str) -> bool:
    return word in {"get", "create", "search", "update", "swiss", "ip"}


def test_a_name_gives_the_initials_of_its_object_and_its_acronyms_written_in_capitals() -> None:
    terms = name_terms("get_trial_balance", "Get the Trial Balance report.", _no_verb)
    assert SPELLED_OUT + "tb" in terms
    assert SPELLED_OUT + "gt" not in terms  # the verb is no part of the object
    # two words make an acronym only as the whole object
    assert SPELLED_OUT + "ke" not in name_terms("update_key_entry_progress", "", _no_verb)
    assert SPELLED_OUT + "kep" in name_terms("update_key_entry_progress", "", _no_verb)
    spc = name_terms("swiss_ip_search_spc", "Search supplementary protection certificates (SPC).", _no_verb)
    assert INITIALS + "spc" in spc
    # a short word the text never writes in capitals is no acronym (docs, tags)
    assert not {t for t in name_terms("search_docs", "Search the docs.", _no_verb) if t[0] == INITIALS}


def test_a_task_gives_its_words_in_capitals_and_the_initials_of_its_english_runs() -> None:
    terms = task_terms("TB as at 31 March for the Pune branch", lambda word: False)
    assert SPELLED_OUT + "tb" in terms
    assert SPELLED_OUT + "pb" in task_terms("what are cheese05's PBs", lambda word: False)
    # a short form the lexicon already expands is left to it
    assert SPELLED_OUT + "pr" not in task_terms("merge PR 12", lambda word: word == "pr")
    spelled = task_terms("any supplementary protection certificates covering semaglutide?", lambda w: False)
    assert INITIALS + "spc" in spelled
    # initials are English ones: a Portuguese task's runs make none
    assert not {
        t for t in task_terms("Consigo fazer a receita de lasanha", lambda w: False) if t[0] == INITIALS
    }


CATALOG = {
    "tally": [
        {
            "name": "get_trial_balance",
            "description": "Get the Trial Balance report. Returns group-wise balances.",
        },
        {"name": "get_balance_sheet", "description": "Get the Balance Sheet report."},
        {
            "name": "create_journal_entry",
            "description": "Create a journal entry with debit and credit lines.",
        },
        {"name": "list_branches", "description": "List the branches."},
    ],
    "ip": [
        {"name": "swiss_ip_search_spc", "description": "Search SPC records by active ingredient."},
        {"name": "swiss_ip_search_patents", "description": "Search Swiss patents by keyword."},
        {"name": "swiss_ip_get_trademark", "description": "Get one trademark."},
    ],
    "web": [
        {"name": "get_rum_page_performance", "description": "Page load metrics from RUM."},
        {"name": "get_page_screenshot", "description": "Take a screenshot of a page."},
    ],
}

TASKS = [
    ("TB as at 31 March 2026 please", "get_trial_balance"),
    (
        "Post a JE dated 12/31/2024 moving $2,300 from Office Supplies to Computer Equipment",
        "create_journal_entry",
    ),
    ("Are there any supplementary protection certificates covering semaglutide?", "swiss_ip_search_spc"),
    ("LCP for /pricing from real user monitoring", "get_rum_page_performance"),
]


def test_an_acronym_finds_the_tool_that_spells_it_out_and_back() -> None:
    idx = index_of(CATALOG)
    plain = index_of(CATALOG, acronym=0.0)  # the rule off: the same tasks miss
    for task, tool in TASKS:
        assert idx.search(task, 1)[0].key[1] == tool, task
        best = plain.search(task, 1)
        assert not best or best[0].key[1] != tool or best[0].score == 0.0, task
