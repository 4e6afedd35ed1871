"""Capability lexicon: general intents (verbs) and common software nouns, with synonyms.

A tool's name and description are mapped to capability tags (``@read``, ``@issue``...), and so is a
query; the tags are matched as extra terms, which lets "retrieve a ticket" meet ``get_issue``.
Entries are general-purpose vocabulary (with the most common German, French, Spanish,
Portuguese, Italian, Japanese, Chinese, Korean and Russian forms of the same words; more of
those, and Polish, Turkish, Vietnamese, Indonesian, Arabic and Hindi, are in ``languages.txt``),
not the wording of any evaluation query.

Surface forms are analysed with the same pipeline as documents, so inflections that stem alike
match. Two-word phrases (``pull request``) match consecutive words. Japanese, Chinese and Korean
forms match as substrings of the query's CJK text, the longest at each place.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from .glossary import GLOSSARY, sections
from .languages import FORMS
from .text import analyze, fold, has_cjk, stem, words

__all__ = ["ABBREVIATIONS", "CONCEPTS", "LEXICON", "Lexicon"]

_PARTICLES = frozenset({"up", "down", "off", "over", "back", "out", "away", "into", "offlin", "onlin"})
_SEPARABLE_GAP = 3  # words between a phrasal verb and its particle ("hand the Jira bug over")
# German separable verbs put their prefix at the end of the clause ("Leg ... ein Issue an" is
# anlegen, "brich ihn ab" abbrechen); a clause ends at a sentence mark, a colon, a quote or before
# "und" / "oder" ("Leite die Mail ... weiter und schreib dazu: ...")
_GERMAN_PARTICLES = frozenset(
    {"an", "ab", "auf", "aus", "ein", "hoch", "herunter", "hinzu", "zurück", "fest", "um", "vor",
     "zu", "weg", "los", "durch", "mit", "nach", "her", "hin", "weiter", "fort", "zusammen",
     "hinein", "heraus", "rein", "raus", "runter", "rauf"}
)  # fmt: skip
_CLAUSE_END = re.compile(r"[,;:!?]|\.(?=\s|$)|[„“”\"«»]|\s(?=(?:und|oder)\s)")
_BEFORE_VERB = frozenset({"bitte", "und", "dann", "jetzt", "mal", "noch", "doch"})
# a question puts the conjugated verb after its question word ("Was fährt ab Winterthur ab?",
# "Wann kommt der Zug an?"): the verb's stem, its umlaut or its vowel changed back, makes the verb
_QUESTION_WORDS = frozenset(
    {"was", "wer", "wann", "wo", "wie", "welche", "welcher", "welches", "welchen", "wohin", "woher"}
)
_PERSON_ENDINGS = ("est", "et", "st", "t", "e")
_UMLAUTS = str.maketrans("äöü", "aou")

# concept -> whitespace-separated surface forms ("a+b" is a two-word phrase), kept as data in
# concepts.txt with the reason for each group of concepts
CONCEPTS: dict[str, str] = {
    concept: " ".join(lines) for concept, lines in sections(Path(__file__).with_name("concepts.txt")).items()
}


# Abbreviations, short forms and shell commands -> the words they stand for. The expansion's words
# are added as (slightly down-weighted) terms on both sides, documents and queries.
ABBREVIATIONS: dict[str, str] = {
    "repo": "repository",
    "repos": "repositories",
    "todo": "task",
    "pr": "pull request",
    "prs": "pull requests",
    "mr": "merge request",
    "org": "organization",
    "orgs": "organizations",
    "db": "database",
    "dbs": "databases",
    "dir": "directory",
    "dirs": "directories",
    "config": "configuration",
    "cfg": "configuration",
    "env": "environment",
    "var": "variable",
    "vars": "variables",
    "stats": "statistics",
    "info": "information",
    "msg": "message",
    "k8s": "kubernetes",
    "hbf": "hauptbahnhof main station",  # German railways write a main station so: Essen Hbf
    "img": "image",
    "pic": "picture",
    "docs": "documentation",
    "doc": "document",
    "auth": "authentication",
    "app": "application",
    "ns": "namespace",
    "src": "source",
    "ci": "continuous integration pipeline",
    "js": "javascript",
    "ts": "typescript",
    "py": "python",
    "url": "web address link",
    "dm": "direct message",
    "ssh": "remote shell",
    "vm": "virtual machine",
    "mkdir": "create directory",
    "ls": "list directory",
    "rm": "delete file",
    "rmdir": "delete directory",
    "mv": "move file",
    "cp": "copy file",
    "cat": "read file",
    "grep": "search text",
    "ps": "list processes",
    "cd": "change directory",
    "pwd": "current directory",
    "du": "disk usage size",
    "touch": "create file",
    "curl": "fetch url",
    "wget": "download url",
    "chmod": "change permissions",
    "xhr": "network request",
    "ajax": "network request",
    "tz": "time zone",
    "wip": "work in progress",
    "sla": "service level agreement",
    "txn": "transaction",
    "txns": "transactions",
    "acct": "account",
    "addr": "address",
    "qty": "quantity",
    "desc": "description",
    "param": "parameter",
    "params": "parameters",
    "perms": "permissions",
    "pkg": "package",
    "deps": "dependencies",
    "prod": "production",
    "tmpl": "template",
    "mtg": "meeting",
    "appt": "appointment",
    "itin": "itinerary",
    "convo": "conversation",
    "vid": "video",
    "ppt": "presentation",
    "lat": "latitude",
    "lng": "longitude",
    "geo": "location",
    "mem": "memory",
    "dns": "domain name",
    "ytd": "year to date",
    "cogs": "cost of goods sold",
    "cv": "resume",
    "cvs": "resumes",
    "sso": "single sign on login",
    "mfa": "multi factor authentication",
    "2fa": "two factor authentication",
    "otp": "one time password",
    "totp": "one time password authenticator",
    "vat": "value added tax",
    "gst": "goods and services tax",
    "sku": "product stock keeping unit",
    "skus": "products",
    "pnl": "profit and loss",
    "kpi": "key performance indicator metric",
    "kpis": "key performance indicators metrics",
    "mrr": "monthly recurring revenue",
    "arr": "annual recurring revenue",
    "ats": "applicant tracking",
    "pto": "paid time off leave",
    "faq": "frequently asked questions",
    "seo": "search engine optimization",
    "cpu": "processor",
    "ram": "memory",
    "ssl": "certificate",
    "tls": "certificate",
    "cert": "certificate",
    "certs": "certificates",
    "eod": "end of day",
    "eta": "estimated arrival",
    "etl": "extract transform load",
    "yoy": "year over year",
    "roi": "return on investment",
    "okr": "objective key result",
    "okrs": "objectives key results",
    "iam": "identity access management",
    "rbac": "role based access",
    "acl": "access control list permissions",
    "jwt": "token",
    "oauth": "authorization token",
    "qa": "quality assurance testing",
    "rca": "root cause analysis",
    "ltv": "lifetime value",
    "aov": "average order value",
    "dau": "daily active users",
    "vuln": "vulnerability",
    "vulns": "vulnerabilities",
    "pentest": "penetration test",
    "pentests": "penetration tests",
    "mau": "monthly active users",
    # Microsoft's products by their own names: a server named for Office 365, Microsoft 365 or
    # Microsoft Graph serves them
    "outlook": "microsoft office 365 mail calendar",
    "onedrive": "microsoft office 365 drive files",
    "sharepoint": "microsoft office 365 site documents",
    "o365": "microsoft office 365",
    "m365": "microsoft office 365",
}


class Lexicon:
    """Stemmed surface form -> concept tags (and English words, for a glossary's forms), with
    phrase and CJK substring tables."""

    def __init__(
        self,
        concepts: dict[str, str],
        abbreviations: dict[str, str] | None = None,
        glossary: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self.abbreviations: dict[str, tuple[str, ...]] = {
            k: tuple(analyze(v)) for k, v in (abbreviations or {}).items()
        }
        self.single: dict[str, tuple[str, ...]] = {}
        self.phrases: dict[tuple[str, str], tuple[str, ...]] = {}
        self.cjk: list[tuple[str, str]] = []
        single: dict[str, list[str]] = {}
        phrases: dict[tuple[str, str], list[str]] = {}
        # a concept's forms give its tag; a glossary word's forms in other languages give the
        # English word's own stem, so "узел" is matched as "node" wherever a tool says node
        tagged = [("@" + concept, forms) for concept, forms in concepts.items()]
        # a glossary word's stem -> the English words it stands for (their neighbours in meaning
        # are a foreign form's too)
        self.english: dict[str, tuple[str, ...]] = {}
        for english, languages in (glossary or {}).items():
            # a two-word entry ("air quality") reads its forms (Luftqualität) as both words
            for stem_ in analyze(english):
                tagged.append((stem_, " ".join(languages.values())))
            for word in english.split():
                for stem_ in analyze(word):
                    self.english[stem_] = (*self.english.get(stem_, ()), word)
        for tag, forms in tagged:
            for form in forms.split():
                folded = fold(form)
                if has_cjk(folded):
                    # a Japanese form of kanji alone is folded to Simplified like a Chinese task,
                    # but a Japanese task (with kana) keeps its kanji: the form is kept both ways
                    self.cjk.extend({(folded, tag), (fold(form, simplify_han=False), tag)})
                    continue
                parts = [stem(w) for w in words(form.replace("+", " "))]
                if not parts:
                    continue
                if len(parts) == 1:
                    single.setdefault(parts[0], []).append(tag)
                else:
                    # first two words of a phrase are enough to recognise it
                    phrases.setdefault((parts[0], parts[1]), []).append(tag)
        # German writes compounds as one word (Umsatzsteuersätze: sales tax rates): a glossary
        # form of five letters or more found inside a long word the lexicon does not know
        compound: dict[str, list[str]] = {}
        for english, languages in (glossary or {}).items():
            for form in languages.get("de", "").split():
                folded = fold(form)
                if "+" not in form and len(folded) >= 5 and folded.isalpha():
                    compound.setdefault(folded, []).extend(analyze(english))  # Antwort: answer, reply
        self.compound_forms = {k: tuple(dict.fromkeys(v)) for k, v in compound.items()}
        self.single = {k: tuple(sorted(set(v))) for k, v in single.items()}
        self.phrases = {k: tuple(sorted(set(v))) for k, v in phrases.items()}
        self._phrase_firsts = frozenset(first for first, _ in self.phrases)  # most words start none
        # phrasal verbs whose particle may follow the object ("hand the bug over", "roll the
        # deploy back"): verb stem -> {particle stem: tags}
        self.separable: dict[str, dict[str, tuple[str, ...]]] = {}
        for (first, second), found in self.phrases.items():
            if second in _PARTICLES:
                self.separable.setdefault(first, {})[second] = found
        self.cjk.sort()
        # forms by their first character: a task is read in one pass, not once per form
        self._cjk_by_first: dict[str, list[tuple[str, str]]] = {}
        for form, tag in self.cjk:
            self._cjk_by_first.setdefault(form[0], []).append((form, tag))

    def compound_parts(self, word: str) -> list[str]:
        """The English stems of the German glossary forms inside a long compound ``word``
        (folded), longest forms first and not overlapping, if together they make up more than
        half of it: "umsatzsteuersatze" -> revenue, sales, tax; "regeneration" (Regen, rain: 5
        of 12 letters) -> nothing."""
        found: list[tuple[int, int, tuple[str, ...]]] = []
        for form, english in self.compound_forms.items():
            at = word.find(form)
            if at >= 0 and form != word:
                found.append((at, at + len(form), english))
        found.sort(key=lambda span: span[0] - span[1])
        kept: list[tuple[int, int, tuple[str, ...]]] = []
        for start, end, english in found:
            if all(end <= s or start >= e for s, e, _ in kept):
                kept.append((start, end, english))
        if 2 * sum(end - start for start, end, _ in kept) <= len(word):
            return []
        return [t for _, _, english in sorted(kept) for t in english]

    def rejoin_separable(self, text: str) -> str:
        """``text`` with each German clause that starts with a separable verb's imperative and
        ends with its prefix written as the verb it makes: "Leg im Repo ein Issue an: ..." ->
        "anlegen im Repo ein Issue: ...", "brich ihn ab" -> "abbrechen ihn". Only verbs the
        lexicon knows are rejoined, so an English clause that ends in "an" stays as it is."""
        out: list[str] = []
        start = 0
        for end in [m.start() for m in _CLAUSE_END.finditer(text)] + [len(text)]:
            clause = text[start:end]
            joined = self._rejoined(clause)
            if joined is not None:
                clause = clause[: len(clause) - len(clause.lstrip())] + joined
            out.append(clause + text[end : end + 1])
            start = end + 1
        return "".join(out)

    def _rejoined(self, clause: str) -> str | None:
        raw = clause.split()
        first = 0
        while first < len(raw) and raw[first].lower() in _BEFORE_VERB:
            first += 1
        if len(raw) - first < 2 or raw[-1].lower() not in _GERMAN_PARTICLES:
            return None
        prefix = raw[-1].lower()
        question = raw[first].lower() in _QUESTION_WORDS and len(raw) - first >= 3
        first += question  # a question's verb follows its question word
        verb = raw[first].lower()
        if question:
            ending = next((e for e in _PERSON_ENDINGS if verb.endswith(e) and len(verb) > len(e) + 1), "")
            base = verb[: len(verb) - len(ending)]
            bases: tuple[str, ...] = (base, base.translate(_UMLAUTS), base[::-1].replace("i", "e", 1)[::-1])
        else:
            base = verb[:-1] if verb.endswith("e") else verb
            # the imperative's stem, or its vowel changed back (brich -> brechen, gib -> geben)
            bases = (base, base[::-1].replace("i", "e", 1)[::-1])
        for stem_ in bases:
            joined = prefix + stem_ + "en"
            if self.single.get(stem(fold(joined))):
                return " ".join([*raw[:first], joined, *raw[first + 1 : -1]])
        return None

    def expand(self, text: str) -> list[str]:
        """Stems of the words that the abbreviations in ``text`` stand for."""
        out: list[str] = []
        for w in words(text):
            full = self.abbreviations.get(w)
            if full is not None:
                out.extend(full)
        return out

    def tags(self, text: str) -> list[str]:
        """Concept tags found in ``text`` (in order of appearance, repeats kept). A phrase's
        words may have a number between them ("log 2.5 hours" is "log hours")."""
        found: list[str] = []
        stems = [stem(w) for w in words(text)]
        last = len(stems) - 1
        firsts, phrases, single, separable = self._phrase_firsts, self.phrases, self.single, self.separable
        inside = -1  # the last word of a phrase found: its words' own tags do not count
        for i, s in enumerate(stems):
            first = i < last and s in firsts
            phrase = phrases.get((s, stems[i + 1]), ()) if first else ()
            if phrase:
                inside = i + 1
                found.extend(phrase)
            elif first and stems[i + 1].isdigit() and (across := _across_number(phrases, stems, i)):
                inside, phrase = across
                found.extend(phrase)
            elif i > inside:
                own = single.get(s)
                if own:
                    found.extend(own)
            if i < last and s in separable:
                particles = separable[s]
                for later in stems[i + 2 : i + 2 + _SEPARABLE_GAP]:
                    if later in particles:
                        found.extend(particles[later])
                        break
        if not text.isascii():
            found.extend(self._cjk_tags(fold(text)))
        return found

    def _cjk_tags(self, folded: str) -> list[str]:
        """Tags of the CJK forms in ``folded``, longest first: a form inside a longer one found at
        the same place does not count (Korean 저장소 is a repository, not 저장 "save" and 장소
        "place")."""
        spans: list[tuple[int, int, str]] = []
        by_first = self._cjk_by_first
        for start, ch in enumerate(folded):
            for form, tag in by_first.get(ch, ()):
                if folded.startswith(form, start):
                    spans.append((start, start + len(form), tag))
        if not spans:
            return []
        spans.sort(key=lambda span: (span[0] - span[1], span[0]))
        kept: list[tuple[int, int, str]] = []
        for start, end, tag in spans:
            if not any(s <= start and end <= e and (end - start) < (e - s) for s, e, _ in kept):
                kept.append((start, end, tag))
        return [tag for _, _, tag in sorted(kept)]


def _across_number(
    phrases: Mapping[tuple[str, str], tuple[str, ...]], stems: list[str], i: int
) -> tuple[int, tuple[str, ...]] | None:
    """The phrase that ``stems[i]`` starts with a number after it ("log 2.5 hours" is "log
    hours"), and the place of its last word; ``None`` if there is none."""
    for j in range(i + 2, min(i + 4, len(stems))):
        if not stems[j].isdigit():
            phrase = phrases.get((stems[i], stems[j]))
            return (j, phrase) if phrase else None
    return None


def with_languages(concepts: dict[str, str], more: dict[str, dict[str, str]]) -> dict[str, str]:
    """``concepts`` with each concept's forms in other languages (``languages.FORMS``) added."""
    return {
        concept: " ".join([forms, *more.get(concept, {}).values()]) for concept, forms in concepts.items()
    }


LEXICON = Lexicon(with_languages(CONCEPTS, FORMS), ABBREVIATIONS, GLOSSARY)
