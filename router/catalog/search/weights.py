"""The ranking's weights: how much each field of a tool counts, and the parameters of the
BM25F scoring and of the re-scoring of the best candidates. The defaults are what
bench/search.py measured on the evaluation set (docs/tool-search.md); tests and the bench pass
other weights to see what each one does."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Weights:
    """Field weights and ranking parameters."""

    name: float = 6.0  # what a tool does is said first in its name (with k1 low, the field counts less)
    # The ones marked 2026-12-06 were moved by coordinate ascent over 43 query sets in two folds of
    # sets (three passes), a step kept only when neither fold lost (docs/tool-search.md).
    title: float = 3.0  # 2.0 until 2026-12-06
    description: float = 0.6  # 1.0 until 2026-12-04 (night): the name and title say it first
    description_tail: float = 0.525  # description words past ``head_words`` (0.35 until 2026-12-06)
    head_words: int = 40
    max_description_words: int = 300  # longer descriptions are cut (they are manuals, not summaries)
    param_name: float = 0.6  # parameter names describe inputs (0.4 until 2026-12-06)
    max_param_words: int = 60
    param_description: float = 0.3
    server: float = 0.9  # 1.5 until 2026-12-06
    instructions: float = 0.1
    instructions_words: int = 72  # 200 until 2026-12-06 (120 after the first pass, 72 after a third)
    tag_name: float = 2.0  # capability tags inferred from the name and title
    tag_description: float = 0.5  # ... from the head of the description
    query_tag: float = 0.7  # weight of a query's inferred tags relative to its words
    pattern_tag: float = 1.0  # weight of a tag implied by a literal (a URL -> @web, a file name -> @file)
    expansion: float = 0.5  # weight of the words an abbreviation stands for (pr -> pull request)
    acronym: float = 3.0  # an acronym on one side, its words on the other (`acronyms.py`), as a field
    question_write: float = 0.35  # score *= 1 - this for a writing tool (by name or hint), if the task asks
    # score *= 1 - this when the name's nouns differ in number from the task's (0.1 until 2026-12-06)
    number_agree: float = 0.15
    change_read: float = 0.35  # score *= 1 - this for a reading tool (name or hint) if the task changes
    no_input: float = 0.4  # score *= 1 - this for a tool that takes no input, if the task gives a value
    one_item_list: float = 0.2  # score *= 1 - this for a tool that lists, if the task names one item
    dictated: float = 0.3  # weight of the words a task dictates (a message's text, a quoted title)
    brand_part: float = 0.4  # weight of a PascalCase product name's parts (WordPress: word, press)
    cognate: float = 1.0  # weight of the indexed stem a word of another language begins with
    server_prefix: float = 1.0  # weight of a server's name a longer name in the task begins with
    typo: float = 0.8  # weight of the indexed word one edit from a query word no visible tool has
    neighbour: float = 0.3  # x similarity: weight of a query word's neighbour in meaning (0: none)
    # score *= 1 + name_cover * (idf share of the name's words the query covers); 1.0 until 2026-12-06
    name_cover: float = 0.6
    server_mention: float = 0.5  # score *= 1 + server_mention when the query names the tool's server
    proper_mention: float = 1.0  # ... instead, when that word reads as a name ("in Notion", "hubspot")
    cover_flat: float = 0.5  # 0: name words weighted by idf in the coverage; 1: all words alike
    # score *= 1 + summary_cover * (idf share of the query in the summary); 0.5 until 2026-12-06
    summary_cover: float = 0.75
    summary_words: int = 30
    # score *= 1 + phrase * (pairs of the task's near words that are near in the tool's name, title
    # and first `phrase_words` of its description too; at most `phrase_pairs` of them)
    phrase: float = 0.15
    phrase_window: int = 3  # two words are near at most this many places apart (no stop words)
    phrase_words: int = 24
    phrase_pairs: int = 2
    rerank: int = 30  # size of the candidate pool re-scored by coverage and server mention
    common: float = 0.03  # terms in more than this share of visible tools only re-score candidates
    min_candidates: int = 200  # ... once at least this many candidates exist
    # early saturation: a word found again, or in a heavier field, counts for little more than
    # found once, so a tool is ranked mostly by how many of the task's words it has, each by its
    # rarity. 0.9 until 2026-12-04; 0.2 put more tasks in the first five on 14 of 20 sets
    k1: float = 0.2
    b: float = 1.125  # 0.75 until 2026-12-06: a long description's words count for less
    pivot: float = 50.0  # length normalisation pivot (a constant: no corpus statistic involved)
