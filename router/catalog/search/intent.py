"""A question asks to read: a task asked as a question wants a tool that reads, not one that
changes something.

"what did people reply in the thread" is `get_thread_replies`, not `reply_to_thread`; "how many
orders are pending" is `count`, not `delete_many`; "which versions have we released" lists
versions, it does not create one. Words alone rank such siblings by the words they share with the
task, so the one that writes often comes first. In the re-scoring of the best candidates
(`SearchIndex.search`), a tool whose name's verb changes something (its first word, or a later
one when the first names no action: `dns_create`; see `name_verb`) scores a
little less (`Weights.question_write`) when the task is a question: by its first word in English,
by its question word in another language (welche, ¿qué, сколько) or by a question mark at its end,
unless it is a request put politely ("can you ...?", "¿puedes ...?", "...もらえますか").

A task that asks how to do something ("how do I create a branch") is not a question in this
sense: the user wants the doing.

Likewise a task that names one item by its identifier ("close issue #301", "order
recXy12AbCdEf9", "PROJ-1432") is about that item: a tool whose name starts with a verb that lists
scores a little less (`Weights.one_item_list`), so `update_issue` or `get_record` is not ranked
behind `list_issues` or `list_records` for sharing the task's words.

The other way round, a request that starts with a verb that changes something ("update the
prices in the products table", "resolve sentry issue MOBILE-4XZ", "open a PR") wants a tool that
writes: a tool whose name starts with a verb that reads (get, list, search) scores a little less
(`Weights.change_read`), so `list_tables` or `search_issues` does not come before `write_query`
or `update_issue` for sharing the task's nouns.

A task's nouns say one or many as tool names do: "read that paper" is `read_paper`, "the latest
messages" a channel's history, not `post_message` (`nouns_by_number`, `Weights.number_agree`).

And a task may dictate text: "post in #eng saying the checkout issue is fixed" asks for a message
to be posted; "the checkout issue is fixed" is the message, and its words (issue, fix) would find
the tools they name. Quoted text and what follows "saying", "that says", "with the message"...
counts for less (`Weights.dictated`), and the sentence model does not read it (`dictated`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .text import stem, words

if TYPE_CHECKING:
    from .lexicon import Lexicon

__all__ = [
    "dictated",
    "is_question",
    "leading_change",
    "leading_verb",
    "lists",
    "name_verb",
    "nouns_by_number",
    "reads",
    "writes",
]

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
ACTIONS = _CHANGES | _READS
"""The tags of a verb that names what a tool does (a name's first word, mostly)."""


def _changes(alts: frozenset[str] | set[str]) -> bool:
    """Whether a word's tags say it changes something, and not that it reads."""
    return not alts.isdisjoint(_CHANGES) and alts.isdisjoint(_READS)


def _reads(alts: frozenset[str] | set[str]) -> bool:
    """Whether a word's tags say it reads, and not that it changes something."""
    return not alts.isdisjoint(_READS) and alts.isdisjoint(_CHANGES)


# a question in another language: its question word first, or a question mark at its end
_FOREIGN_QUESTION = re.compile(
    r"\s*(?:¿|qu[eé]|cu[aá]l(?:es)?|cu[aá]nt[oa]s?|qui[eé]n(?:es)?|d[oó]nde|cu[aá]ndo|"
    r"quel(?:le)?s?|combien|o[uù]|quand|welche[rsmn]?|wie viele|wieviele|wer|wo|wann|was|"
    r"quais|qual|quant[oa]s?|quem|onde|quando|quali|quale|quant[ie]|chi|dove|"
    r"как(?:ие|ой|ая|ое)|сколько|кто|где|когда|что|ile|jakie|który|czy)(?=\s|$)",
    re.I,
)
# a request asked politely as a question: "can you ...?", "¿puedes ...?", "...もらえますか"
_ASKS_TO_DO = re.compile(
    r"\b(?:can|could|would|will) (?:you|we|u)\b|^\s*mind\b|\b(?:kannst|könntest|können sie|könnten sie|"
    r"peux-tu|pourrais-tu|pouvez-vous|pourriez-vous|puedes|podrías|podrias|puede|podes|pode|"
    r"poderia|puoi|potresti|можешь|можете|могли бы)\b|(?:もらえ|くれ|いただけ)ますか|ください|"
    r"能不能|可以.*吗|请|해\s*줄래|해\s*주세요",
    re.I,
)


def is_question(task: str) -> bool:
    """Whether a task is asked as a question (what, which, who, how many, is, did...; in another
    language its question word, or a question mark that ends it), not a request put politely."""
    if _QUESTION.match(task) is not None:
        return True
    asked = _FOREIGN_QUESTION.match(task) is not None or task.rstrip().endswith(("?", "？"))
    return asked and _ASKS_TO_DO.search(task) is None


# verbs that a tool name may put after its object (dns_create, crashes_list, malware_get) and
# that are seldom nouns there; "messages", "history" or "access" after a noun name no action
_LATE_VERBS = frozenset(
    {"creat", "updat", "delet", "remov", "get", "add", "fetch", "retriev", "upsert", "edit",
     "cancel", "enabl", "disabl", "approv", "insert", "modifi", "find", "send", "stop", "start",
     "list"}
)  # fmt: skip


def name_verb(
    name_units: Iterable[tuple[str, frozenset[str]]], server_terms: frozenset[str]
) -> frozenset[str]:
    """The tags of a tool name's verb: its first word that is not its server's name, or when that
    word names no action, a later word that can only be a verb (`_LATE_VERBS`). `name_units`: the
    name's words up to a linking word (to, from, by ...), each with the word and its tags. Made
    once per tool; `lists`, `writes` and `reads` then say what the verb does."""
    units = [(word, alts) for word, alts in name_units if word not in server_terms]
    if not units:
        return frozenset()
    first = units[0][1]
    if first.isdisjoint(ACTIONS):
        for word, alts in units[1:]:
            if word in _LATE_VERBS and not alts.isdisjoint(ACTIONS):
                return alts
    return first


def lists(verb: frozenset[str]) -> bool:
    """Whether a tool name's verb (`name_verb`) lists (list, enumerate, browse)."""
    return "@list" in verb


def writes(verb: frozenset[str]) -> bool:
    """Whether a tool name's verb (`name_verb`) changes something (create, update, send...): the
    verb of the usual verb_object names, by its capability tags."""
    return _changes(verb)


_QUOTED = re.compile(r'"[^"]{3,}"|“[^”]{3,}”|«[^»]{3,}»|「[^」]+」|『[^』]+』')
_DICTATION = re.compile(
    r"\b(?:saying|that says|which says|that reads|telling (?:\w+ )?(?:that )?|"
    r"with the (?:message|text|note|body|caption)|to say|"
    r"mit der nachricht|mit dem text|en disant|disant|avec le message|diciendo|con el mensaje|"
    r"dizendo|com a mensagem|dicendo|con il messaggio|с сообщением|с текстом|со словами)\b",
    re.I,
)


_NAME_ENDS = r"(?:in|on|to|into|for|from|with|and|under|at|so|that|which|as|by)\b"
# the name a task gives a thing ("a folder called build", "the page titled 'Q3 OKRs'"): the name
# (quoted, or up to four words before a preposition or a mark) is dictated, and the word that
# introduces it says that the thing is found or made by its title
_NAMED_AS = re.compile(
    r"\b(?:called|named|titled|entitled)\s+((?:'[^']+'|\"[^\"]+\"|“[^”]+”|(?!"
    + _NAME_ENDS
    + r")[^\s,;:.!?]+)"
    r"(?:\s+(?!" + _NAME_ENDS + r")[^\s,;:.!?'\"]+){0,3})",
    re.I,
)


def dictated(task: str) -> tuple[str, str]:
    """Split a task into what it asks and what it dictates: "post in #eng saying the deploy is
    done" asks to post a message; "the deploy is done" is the message, and its words say nothing
    about which tool posts it. Quoted text, what follows "saying", "that says", "telling her
    that"..., and the name after "called", "named" or "titled" (read as the word title) are
    dictated. Returns (the rest, the dictated text); a task that is all quotes is
    returned as it is, for what it quotes is what it asks."""
    parts: list[str] = []

    def title(match: re.Match[str]) -> str:
        parts.append(match.group(1))
        return " title "

    task = _NAMED_AS.sub(title, task)
    parts += [m.group() for m in _QUOTED.finditer(task)]
    rest = _QUOTED.sub(" ", task)
    m = _DICTATION.search(rest)
    if m is not None:
        parts.append(rest[m.end() :])
        rest = rest[: m.start()]
    if not words(rest):
        return task, ""
    return rest, " ".join(parts)


_POLITE = re.compile(
    r"\s*(?:(?:please|pls|plz|kindly|can you|could you|would you|will you|i need to|i want to|"
    r"i'd like to|i would like to|help me|let's|lets|go ahead and|quickly|just|now)\b[\s,]*)*",
    re.I,
)


_VERB_LAST = re.compile("[\u3040-\u30ff\uac00-\ud7af]")  # kana or Hangul


def leading_verb(task: str, lexicon: Lexicon) -> frozenset[str]:
    """The action tags of the verb a request starts with, after "please", "can you" and the like
    ("open a PR" -> @create; "show me" -> @read), or in Japanese and Korean, which put the verb
    last, of the last action it names; empty if its first word is no verb the lexicon
    knows, or reads as a noun: a keyword-style search ("deployment status", "updates from the
    team", "created issues", "run history of ci", "copy of the invoice") starts with no request."""
    if _VERB_LAST.search(task):
        # Japanese and Korean put the verb last: the last action the task names is its request
        actions = [t for t in lexicon.tags(task) if t in ACTIONS]
        return frozenset(actions[-1:])
    match = _POLITE.match(task)
    raw = words(task[match.end() if match else 0 :])[:3]
    if not raw or raw[0].endswith(_NOUN_ENDINGS) or "of" in raw[1:3]:
        return frozenset()
    first = [stem(w) for w in raw[:2]]
    phrase = lexicon.phrases.get((first[0], first[1]), ()) if len(first) == 2 else ()
    alts = phrase if not ACTIONS.isdisjoint(phrase) else lexicon.single.get(first[0], ())
    return ACTIONS.intersection(alts)


# the endings of a noun, a participle or a third person made of a verb: not an imperative
_NOUN_ENDINGS = ("ment", "ments", "tion", "tions", "sion", "sions", "ed", "ing", "ings", "es", "ers")


def leading_change(lead: frozenset[str]) -> bool:
    """Whether a request's leading verb (`leading_verb`) changes something ("update the prices",
    "please close issue 4", "open a PR"): it wants a tool that writes, not one that reads."""
    return _changes(lead)


def reads(verb: frozenset[str]) -> bool:
    """Whether a tool name's verb (`name_verb`) reads (get, list, search, show)."""
    return _reads(verb)


def nouns_by_number(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """The stems of an English text's plural words ("issues", "files") and of its other words.

    A tool named in the plural (`list_issues`, `search_papers`) acts on many, one in the singular
    (`get_issue`, `read_paper`) on one; a task says which it wants the same way.
    Stemming folds the two together, so re-scoring compares them here (`Weights.number_agree`)."""
    plural: set[str] = set()
    singular: set[str] = set()
    for raw in text.lower().split():
        word = raw.strip(".,;:!?()[]'\"")
        if not word.isascii() or not word.isalpha() or len(word) < 4:
            continue
        s = stem(word)
        if word.endswith("s") and not word.endswith(("ss", "us", "is")) and s != word:
            plural.add(s)
        else:
            singular.add(s)
    return frozenset(plural), frozenset(singular - plural)
