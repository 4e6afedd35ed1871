"""Literal values in a task: URLs, paths, file names, issue keys, opaque IDs and numbers.

They say what kind of thing the task is about (a URL: a web page; `OPS-1142`: a ticket), while
their own characters ("https", "example", "77") are noise for ranking. The word ranker replaces
them by what it keeps of them and a capability tag (`strip_patterns`); a sentence model reads the
kind of thing instead (`plain_literals`). A tool's own name spelled out in a task is a literal too,
and the most decisive one (`spelled_names`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import NamedTuple

__all__ = ["names_one_item", "plain_literals", "site_of", "spelled_names", "strip_patterns"]

_EXTENSIONS = (
    r"txt|md|json|ya?ml|toml|ini|cfg|conf|csv|log|py|js|ts|tsx|go|rs|java|rb|sh|html|css|xml|pdf|png|"
    r"jpe?g|gif|svg|docx?|xlsx?|sql|db|zip|gz|tar|properties|env|lock|tf|tfvars|hcl|ipynb|php|kt|swift|"
    r"mp3|mp4|wav|m4a|flac|ogg|mov|mkv|webp|heic|pptx?|epub|parquet|apk|aab|ipa|bak|odt|ods|rtf|pem|crt|vue|"
    r"cer|csr|key|p12|pfx|jks|xliff|xlf|po|pot|tmx|gcode|nc|ngc|gpx|kml|kmz|ics|srt|vtt|eml|mbox|"
    r"mobi|pcap"
)


# What a file's extension says it holds, when that is more than "a file": a task about
# /jobs/sign.nc or memory.tmx is about a G-code program or a translation memory, not about reading
# a file (a 3D model's or an app's file, tried, only pulled toward other tools about models or apps)
_FILE_KINDS: dict[str, str] = {
    **dict.fromkeys(("xliff", "xlf", "po", "pot"), "translation"),
    "tmx": "translation memory",
    **dict.fromkeys(("gcode", "nc", "ngc"), "gcode"),
    **dict.fromkeys(("gpx", "kml", "kmz"), "gps track"),
    "ics": "calendar",
    **dict.fromkeys(("srt", "vtt"), "subtitles"),
    **dict.fromkeys(("eml", "mbox"), "email"),
    **dict.fromkeys(("epub", "mobi"), "ebook"),
    "pcap": "packet capture",
}


# A certificate's or a key's file (key.pem, cert.crt, req.csr, store.p12): the task is about a
# certificate; unlike most files' names, these name what the file holds (key, cert, chain, ca)
_CERTIFICATE_FILE = re.compile(
    r"(?<![\w/.-])[\w-]+(?:\.[\w-]+)*\.(?:pem|crt|cer|csr|key|p12|pfx|jks)\b", re.I
)


def _certificate_file(value: str) -> str:
    return f"{value.replace('.', ' ')} certificate"


def _kind_of_file(value: str) -> str:
    """A file's extension and the words it stands for ("" for a plain file)."""
    extension = value.rpartition(".")[2].lower()
    kind = _FILE_KINDS.get(extension)
    return f"{extension} {kind}" if kind else ""


_HOST = re.compile(r"(?:[a-z][\w+.-]*://)?(?:www\.)?([\w.-]+)", re.I)
_SECOND_LEVEL = frozenset({"co", "com", "org", "net", "ac", "gov", "edu"})  # bbc.co.uk
_PLACEHOLDERS = frozenset({"example", "localhost"})  # RFC 2606 names say nothing
# Services' own short-link hosts name the service (youtu.be is YouTube); a generic shortener's
# name says nothing of where the link leads.
_SHORT_HOSTS = {
    "youtu.be": "youtube",
    "redd.it": "reddit",
    "git.io": "github",
    "amzn.to": "amazon",
    "t.me": "telegram",
    "wa.me": "whatsapp",
    "fb.me": "facebook",
    "lnkd.in": "linkedin",
    "goo.gl": "google",
    "maps.app.goo.gl": "maps",
    "spoti.fi": "spotify",
    "bit.ly": "",
    "t.co": "",
    "tinyurl.com": "",
}
_SHORT_HOST = re.compile(
    r"(?<![\w.])(?:" + "|".join(re.escape(h) for h in sorted(_SHORT_HOSTS, key=len, reverse=True)) + r")/\S+",
    re.I,
)


def site_of(address: str) -> str:
    """The name of the site a web address points to ("" for a placeholder such as example.com):
    `https://acme.sentry.io/issues/1` -> "sentry", `docs.stripe.com` -> "stripe". It names the
    service the task is about."""
    found = _HOST.match(address)
    host = found.group(1).lower().strip(".") if found else ""
    if host in _SHORT_HOSTS:
        return _SHORT_HOSTS[host]
    labels = host.split(".") if host else []
    if len(labels) < 2:
        return ""
    name = labels[-3] if len(labels) > 2 and labels[-2] in _SECOND_LEVEL else labels[-2]
    return "" if name in _PLACEHOLDERS else name


def _bare_site(address: str) -> str:
    """`site_of` a web address written without a scheme, and the word domain when it has no
    path either: "can we still grab acmerobotics.dev", "point shop.acme.com at ..." are about the
    domain itself (its DNS, registration, renewal), which a page's address never is."""
    site = site_of(address)
    return f"{site} domain".strip() if "/" not in address else site


def _nothing(value: str) -> str:
    return ""


def _saying(words: str) -> Callable[[str], str]:
    """What the word ranker keeps of a value that stands for `words`, whatever it spells."""
    return lambda value: words


def _prefix(value: str) -> str:
    return value.partition("_")[0]


# An SQL statement in a task ("run SELECT count(*) FROM orders on the neon db") says "run an SQL
# query"; its tables, columns and functions (orders, event_date, today()) are data, which would
# pull toward tools about orders, events or dates. Keywords in capitals, as SQL is written in
# prose ("select the ten newest orders" is English), or in lower case with a select list no
# sentence has ("select *", "select count(*)", "select id, email from"); it ends at a semicolon,
# the end of the sentence, or a lower-case word that takes the prose back ("on the prod db",
# "and tell me").
_SQL = re.compile(
    r"\b(?:SELECT\s.+?\sFROM|INSERT\s+INTO|UPDATE\s+\S+\s+SET|DELETE\s+FROM|"
    r"(?:CREATE|ALTER|DROP)\s+(?:TABLE|INDEX|VIEW)|WITH\s+\w+\s+AS\s*\(|"
    r"select\s+(?:\*|count\s*\(\s*\*\s*\)|[\w.]+(?:\s*,\s*[\w.]+)+)\s+from)\b.*?"
    r"(?=\s*;|\s*$|[.?!](?:\s|$)|\s+(?:on|in|against|using|via|for|and|then|to|from|into)\s+(?=[a-z]))"
)


# A browser-side JavaScript expression ("run document.title in the page", "window.scrollY",
# "document.querySelectorAll('a').length") asks to run JavaScript; its properties and methods
# (title, querySelectorAll) are no words of the task, and "document" would find document tools.
_JAVASCRIPT = re.compile(
    r"\b(?:document|window|navigator|localStorage|sessionStorage)"
    r"\.(?!(?:pdf|docx?|txt|md|csv|json|xlsx?|pptx?|html?|xml|ya?ml|png|jpe?g|gif|zip|log)\b)[\w$]+"
    r"(?:\.[\w$]+|\((?:[^()]|\([^()]*\))*\)|\[[^\]]*\])*"
)


# A Prometheus-style metric name, its unit last (node_memory_MemAvailable_bytes,
# http_requests_total), is a metric; a PromQL expression (histogram_quantile(0.99, sum(rate(...))))
# is a PromQL query. Their words (memory, available, request) are data.
_METRIC = re.compile(
    r"\b[a-z][a-z0-9]*(?:_[A-Za-z0-9]+)+_(?:bytes|seconds|total|ratio|celsius|percent|milliseconds)"
    r"(?:_(?:bucket|sum|count))?\b"
)
_PROMQL = re.compile(
    r"\b(?:histogram_quantile|rate|irate|increase|(?:avg|sum|min|max|count)_over_time|topk|bottomk|"
    r"predict_linear|deriv|delta|absent)\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\)?"
)


# An HTTP call as developers write it ("GET _cat/shards?v", "POST /v1/orders"), the method in
# capitals: an API request; its path's words are data ("cat" would read a file)
_HTTP_CALL = re.compile(
    r"\b(?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)\s+(?:https?://\S+|[/{_\w][\w{}./:?=&%-]*)"
)


# A glob (*.env.example, **/*.ts, src/**/*.py): files matching a pattern, not its words
_GLOB = re.compile(r"(?<![\w/*.-])\.?(?:[\w.-]+/)*(?:\*\*/)*[\w-]*\*[\w*-]*(?:\.[\w-]+)+(?![\w/])")


# A code identifier in camelCase (oldApiUrl, useMutation, legacyAuth): a name in the user's code,
# which the task mentions as data; its words read as dictated text (a spelled tool name is found
# apart), the name whole as one word, which a tool's parameter of that name has (requestId)
_CODE_NAME = re.compile(r"(?<![\w.$/-])[a-z]{3,}(?:[A-Z][a-z0-9]+)+(?![\w$/-])")


def _dictating(value: str) -> str:
    """The name whole as one word (a parameter of that name meets it), and its words dictated."""
    return f'{value.lower()} "{value}"'


_LOCALE = re.compile(r"(?<![\w-])[a-z]{2,3}[-_](?:[A-Z]{2}|Hans|Hant|Latn|Cyrl)(?![\w-])")

_CELL_RANGE = re.compile(r"(?<![\w:!])(?:\w+!)?\$?[A-Z]{1,3}\$?\d{0,7}:\$?[A-Z]{1,3}\$?\d{0,7}(?![\w:])")


def _wiki_link(value: str) -> str:
    """A link to a page, and the page's name dictated ("[[links]]" alone names no page)."""
    name = value[2:-2].strip()
    return "page link" if name.lower() in {"link", "links", "page", "pages"} else f'page link "{name}"'


# a token of words and a number joined by dashes, underscores or dots: one part a number (with a
# letter at most on either side: 03, v7, 7x, 2024) and one a word of three letters or more
_NAMED = re.compile(
    r"(?<![\w/.-])(?=[\w.-]*\d)(?=[\w.-]*[A-Za-z]{3})[A-Za-z][A-Za-z0-9]*(?:[-_.][A-Za-z0-9]+)+(?![\w/-])"
)
# ... or words joined by hyphens to a word that says what kind of running thing it names
# (checkout-api, payments-service, web-frontend, pg-main): a service's, app's or host's name
_ROLE_NAMED = re.compile(
    r"(?<![\w/.@'-])[a-z][a-z0-9]*(?:-[a-z0-9]+)*-(?:api|svc|service|app|web|frontend|backend|worker"
    r"|server|site|prod|staging|dev|main|primary|db|cache|proxy|bot)(?![\w/.@-])"
)
_NAME_PART = re.compile(r"[-_.]")
_NAME_NUMBER = re.compile(r"[A-Za-z]?\d+[A-Za-z]?")
_NAME_WORD = re.compile(r"[A-Za-z]{3,}")


def _as_quoted(value: str) -> str:
    """A name's words in quotes, which `intent.dictated` reads as dictated text; a token with no
    number part (get_file2, a tool's name) is left as it is."""
    if not any(_NAME_NUMBER.fullmatch(part) for part in _NAME_PART.split(value)):
        return value
    return _quoted_words(value)


def _quoted_words(value: str) -> str:
    """A name's words in quotes, read as dictated text."""
    return '"' + " ".join(_NAME_WORD.findall(value)) + '"'


# the states of a ticket or a card as trackers (Jira, Linear, Trello, Asana) name them, capitalised
# as the board shows them, after a preposition that moves or files the item there
_STATE = re.compile(
    r"\b(to|into|as|in|в|a|à|auf|zu|para|em)\s+[\"'“]?(?:Done|In Progress|In Review|To ?Do|Blocked|Closed|"
    r"Resolved|Backlog|Stuck|Ready for [A-Z]?\w+|Won't Do|Canceled|Cancelled|Triage)\b[\"'”]?"
)


# a state written in lower case after "as", in any of the languages ("close it as fixed", "mark
# as resolved", "als behoben", "как исправленную"): the item's status too; "as done" and "as
# completed" keep their words, which say the complete concept
_AS_STATE = re.compile(
    r"\b(as|als|comme|como|come|как)\s+(?:fixed|resolved|duplicate|closed|"
    r"won't fix|wontfix|invalid|read|unread|spam|behoben|gelöst|geschlossen|résolue?s?|"
    r"corrigée?s?|fermée?s?|resuelt[oa]s?|arreglad[oa]s?|cerrad[oa]s?|resolvid[oa]s?|"
    r"corrigid[oa]s?|fechad[oa]s?|risolt[oa]|chius[oa]|исправленн\w*|решённ\w*|решенн\w*|"
    r"закрыт\w*|выполненн\w*)(?![\w.])"
    # where the clause ends: not "as well as fixed costs"
    r"(?=\s*(?:$|[,;:!?)]|\.(?:\s|$)|(?:in|on|and|with|for|by|at|please|pls|y|e|et|und|и|в|no|na|en|dans|im|"
    r"bitte|por favor|per favore|s'il)\b))",
    re.I,
)


def _status_as(value: str) -> str:
    """Keep the word before a state and read the state as the word status: "as fixed" -> "as
    status"."""
    return value.split(maxsplit=1)[0] + " status"


def _state_of(value: str) -> str:
    """Rewrite a state as the word status: "to In Progress" -> "to status"."""
    return _STATE.sub(r"\1 status", value)


_CONDITION = re.compile(
    r"\b(?:where|whose|with|have|has|donde|cuyo|cuya|tenga|tengan|tiene|tienen|con|onde|cujo|cuja|"
    r"tenha|tenham|tem|com|où|dont|avec|ont|wo|mit|deren|dessen|hat|haben|dove|hanno|ha|где|\u0441|\u0443)"
    r"\s+[\w.]+\s*(?:==?|!=|>=|<=|>|<)\s*[^\s,;?!]+"
    r"|(?<![-=])(?:>=|<=|>|<)\s*[$€£]?\d[\d,.]*[kKmM]?\b"
    r"|\b(?:over|above|more than|greater than|less than|under|below|at least|at most)\s+[$€£]\d[\d,.]*[kKmM]?\b"
    r"|\b(?:over|above|more than|greater than|at least)\s+\d[\d,.]*[kKmM]\b",
    re.I,
)


_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|(?-i:May)|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DATE = re.compile(
    r"(?<![\w./-])\d{4}-\d{2}-\d{2}(?:[T ]\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)?(?![\w/-]|\.\w)"
    r"|(?<![\w./-])\d{1,2}([/.])\d{1,2}\1\d{2,4}(?![\w/.-]\w)"
    rf"|\b{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?(?:\s*[-\u2013]\s*\d{{1,2}}(?:st|nd|rd|th)?)?(?:,?\s+\d{{4}})?\b"
    rf"|\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}(?:,?\s+\d{{4}})?\b"
    rf"|\b{_MONTH}\s+\d{{4}}\b",
    re.I,
)
_MONEY = re.compile(
    r"(?<![\w.])[$€£¥]\s?\d[\d,.]*+(?:\s?[kKmM]\b)?"
    r"|(?<![\w,.])\d[\d,.]*+\s?(?:€|£|(?:usd|eur|gbp|chf|dollars?|euros?|bucks)\b)",
    re.I,
)


_DURATION = r"\d+(?:\.\d+)?\s?(?:h|hrs?|hours?|m|mins?|minutes?)\b(?:\s*\d+\s?(?:m|mins?|minutes?)\b)?"
_WORK_TIME = re.compile(
    rf"\b(?:log|logged|book|booked|record|track)\s+{_DURATION}|\b{_DURATION}\s+of\s+work\b", re.I
)
# the same in Korean, Japanese and Chinese: hours, then a verb that records them ("3시간 기록해줘",
# "3時間を記録して", "花了三个小时再记一下")
_WORK_TIME_CJK = re.compile(
    r"(?<![\d.一二三四五六七八九十两半])(?:\d++(?:\.\d++)?|[一二三四五六七八九十两半]++)\s*(?:시간|時間|个?小时|個?小時)"
    r"(?=.*(?:기록|記録|登録|记|記))"
)


_PATH = re.compile(
    r"(?<![\w/.~@-])(?:~|\.{1,2})?(?:/[\w.@-]+)+/?"
    r"|(?<![\w/.~@-])[\w.@-]+(?:/[\w.@-]+){2,}/?"
    rf"|(?<![\w/.~@-])[\w.@-]+/[\w.@-]*\.(?:{_EXTENSIONS})\b",
    re.I,
)
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?:/\d{1,2})?(?!\w|\.\d|/\d)")
_PORT = re.compile(r"(?<![\w/.])\d{1,5}/(?:tcp|udp)\b", re.I)
_LAT_LONG = re.compile(r"\blat(?:itude)?\s*(?:/|&|,|and)\s*(?:long|lng|lon)(?:gitude)?s?\b", re.I)
_PAIR = re.compile(r"(?<![\w/.~@-])[\w.@-]+/[\w.@-]+(?![\w/])")


def _first_folder(value: str) -> str:
    """What a relative path or a pair keeps: its first part ("" for an absolute path)."""
    return value.partition("/")[0].strip("~.")


def _folder_and_kind(value: str) -> str:
    """What a path keeps: its first folder, and what its file's extension says it holds."""
    return " ".join(part for part in (_first_folder(value), _kind_of_file(value)) if part)


_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.I)


_NUMBER_ROW = r"\[\s*-?\d[\d\s.,-]*\]"
_MATRIX = re.compile(
    rf"\[\s*{_NUMBER_ROW}(?:\s*,?\s*{_NUMBER_ROW})+\s*\]"  # [[4,7],[2,6]]
    r"|\[\s*-?\d[\d\s.,-]*(?:;[\d\s.,-]+)+\]"  # [1 2; 3 4]
)
_MATH = r"(?:[\d+\-*/^().\s]|sin|cos|tan|exp|log|ln|sqrt|abs|pi)"
_X = r"(?<![a-z])x(?![a-z])"  # the variable, also in 2x
_FUNCTION_OF_X = re.compile(
    rf"(?<!\w)(?:y|f\s*\(\s*x\s*\))\s*=\s*(?=\S){_MATH}*{_X}(?:{_MATH}|{_X})*",
    re.I,
)


# a cron expression (*/15 9-17 * * 1-5, 0 3 * * MON): five or six fields of numbers, names,
# ranges, steps and stars, at least one a star; before a glob takes "*/15" for a file pattern
_CRON_NAME = r"(?:MON|TUE|WED|THU|FRI|SAT|SUN|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)"
_CRON_VALUE = rf"(?:\*|\d{{1,2}}|{_CRON_NAME})"
_CRON_FIELD = rf"(?:{_CRON_VALUE}|\?)(?:[-/,]{_CRON_VALUE})*"
_CRON = re.compile(
    rf"(?<![\w*/,-])(?=(?:\S+[ \t]+){{0,5}}\S*\*){_CRON_FIELD}(?:[ \t]+{_CRON_FIELD}){{4,5}}(?![\w*/,-])",
    re.I,
)
_SMILES_PART = r"(?:Cl|Br|[BCNOPSFIbcnops]|[\d@+\-\[\]()=#/\\%])"
_SMILES_ATOM = r"(?:Cl|Br|[BCNOPSFIcnos])"
# an atom or a bracket first; a bond (=, #), an aromatic ring's closure (c1) or a branch that
# holds an atom somewhere (so P04637, C07INC142 and SOS(1) are none); six characters or more
_SMILES = re.compile(
    rf"(?<![\w\-/.#|])(?={_SMILES_ATOM}|\[)(?={_SMILES_PART}*?(?:[=#]|[cnos]\d|\({_SMILES_ATOM}))"
    rf"{_SMILES_PART}{{6,}}(?![\w/])"
)
_CAS_NUMBER = re.compile(r"(?<![\w.\-/])\d{2,7}-\d{2}-\d(?![\w.\-/])")
_PARTICULATES = re.compile(r"\bPM\s?(?:2[.,]5|10)\b", re.I)


# an ISBN: after the word ISBN (10 or 13 digits, with hyphens or spaces), or 13 digits alone that
# start as ISBN-13s do (978, 979)
_ISBN = r"\bISBN(?:-1[03])?:?\s*\d[\d -]{8,15}[\dX]\b|(?<![\w.-])97[89](?:-?\d){10}(?![\w.-])"


def _listed(text: str) -> tuple[str, ...]:
    """A word list written as one string."""
    return tuple(text.split())


# ISO 4217 codes of the currencies tasks name most (without PHP, which is as often the language)
_CURRENCY_CODES = _listed(
    "USD EUR GBP JPY CHF CAD AUD NZD CNY HKD SGD SEK NOK DKK PLN CZK HUF RON MXN BRL ARS CLP COP PEN UYU "
    "INR KRW TWD THB IDR MYR VND ZAR TRY RUB UAH ILS AED SAR EGP NGN KES"
)
# a currency pair as traders and central banks write it (USD/MXN, EUR-USD, EURUSD): two codes in
# capitals (also the offshore yuan, the peso and two coins, which trade in pairs), both kept as
# words; a sentence model reads "exchange rate"
_CURRENCIES = "|".join([*_CURRENCY_CODES, "CNH", "PHP", "BTC", "ETH"])
_CURRENCY_PAIR = re.compile(  # (the lookahead first: most places fail it at once)
    rf"\b(?=[A-Z]{{3}}(?:\s?[/-]\s?)?[A-Z]{{3}}(?![\w/.-]))(?<![\w/.-])(?:{_CURRENCIES})(?:\s?[/-]\s?|)(?:{_CURRENCIES})"
)


# a sum or a currency to be changed into another ("how many baht is 1200 USD", "50,000 yen in
# euros", "convert 250,000 ARS to dollars", "Brazilian real to Argentine peso", "1200美元换成泰铢"):
# two currencies joined by "to", "in" or "how many": an exchange rate, whatever the sums. A code
# counts in capitals only (TRY, ALL and CUP are words too), a name in any case; "won", "real" and
# "rand" only with their country's adjective, as they are words too. Crypto coins are left out:
# "0.01 BTC at 9,500,000 yen" is a trade, not a conversion
_CURRENCY_NAMES = _listed(
    "dollars dollar euros euro yen pounds pound sterling francs franc rupees rupee pesos peso reais yuan "
    "renminbi baht ringgit rupiah dong liras lira lire zlotys zloty złoty forints forint koruny koruna "
    "korun kronor krona kronur kroner krone shekels shekel dirhams dirham riyals riyal rubles ruble "
    "roubles rouble hryvnias hryvnia soles bolivianos dólares dólar yenes libras libra reales franken "
    "pfund"
)
_CONVERTED_CODES = (*_CURRENCY_CODES, "RMB")  # and the renminbi as Chinese tasks write it
# names that are words too ("won", "real", "rand"): a currency only after their country's name
_COUNTRY_CURRENCIES = r"(?:South\s+)?Korean\s+won|Brazilian\s+reals?|South\s+African\s+rand"
# names in other scripts, matched inside words (Russian inflects them; CJK has no spaces)
_CURRENCY_STEMS = _listed(
    "рубл доллар евро юан 美元 美金 日元 日圆 欧元 人民币 英镑 港币 港元 韩元 泰铢 卢布 "
    "円 ドル ユーロ ウォン ポンド 달러 유로 엔화 위안 원화"
)
_CURRENCY_ADJECTIVE = (
    r"(?:US|U\.S\.|American|Canadian|Australian|Hong\s+Kong|Singapore|New\s+Zealand|Mexican|Argentine|"
    r"Argentinian|Chilean|Colombian|Uruguayan|Swiss|Japanese|Chinese|Taiwan(?:ese)?|Indian|Thai|Turkish|"
    r"Russian|Ukrainian|Polish|Swedish|Norwegian|Danish|Czech|Hungarian|Israeli|Egyptian|Philippine|"
    r"Indonesian|Malaysian|Vietnamese|Nigerian|Kenyan)\s+"
)
_CURRENCY_WORD = (
    rf"(?:(?-i:{'|'.join(_CONVERTED_CODES)})|{_COUNTRY_CURRENCIES}"
    rf"|(?:{_CURRENCY_ADJECTIVE})?(?:{'|'.join(_CURRENCY_NAMES)})"
    rf"|(?:{'|'.join(_CURRENCY_STEMS)})\w*?)"
)
_CURRENCY = rf"(?:{_CURRENCY_WORD}|[$€£¥₹₩₽฿])"
_SUM = r"(?<![\w,.])\d[\d,.]*+(?:\s\d{3}(?!\d))*+(?:\s?(?:[kKmM]\b|万|千|億|亿|만|천))?"
# how one currency moved against another ("the real moved against the peso", "how the yen has
# fared against the dollar"): its rate over time, not a move
_MOVEMENT = "moved|moving|move|rose|risen|fell|fallen|traded|trading|fared|performed|done"
_MOVED = rf"(?:\s(?:has\s|have\s)?(?:{_MOVEMENT}))?"
_CURRENCY_CHANGE = re.compile(
    rf"(?<!\w)(?:how\s+(?:many|much)\s+{_CURRENCY}(?!\w).{{0,30}}?(?<!\w){_CURRENCY}(?!\w)"
    rf"|\b(?:convert|converting|exchange|exchanging)\s+(?:it\s+|them\s+)?(?:to|into)\s+{_CURRENCY_WORD}(?![A-Za-z])"
    rf"|(?:{_SUM}\s?)?{_CURRENCY}\s?(?:{_SUM}\s?)?{_MOVED}"
    r"(?:\s(?:to|into|in|for|vs\.?|versus|against|en|a|para|em|zu|nach)\s(?:the\s)?|\s?(?:→|->|=>|=|换成|换|兑换?|对|转)\s?"
    r"|\s?(?:から|を)\s?|(?:면|는|을|를|이|가)\s)"
    rf"(?:{_SUM}\s?)?{_CURRENCY_WORD}(?![A-Za-z]))",
    re.I,
)


_CODE_SET = frozenset(_CONVERTED_CODES)
_NAME_SET = frozenset([*_CURRENCY_NAMES, "won", "real", "reals", "rand"])
_STEM = re.compile("|".join(_CURRENCY_STEMS))
_LETTERS = re.compile(r"[^\W\d_]+")


def _names_a_currency(text: str) -> bool:
    """Whether a task names a currency by a code or a word (a conversion names one at least): the
    pattern's many names are tried only then (on ~1 % of the tasks; ~5 us a task against ~20)."""
    words = _LETTERS.findall(text)
    if not _CODE_SET.isdisjoint(words):
        return True
    for word in words:
        if word.lower() in _NAME_SET:
            return True
    return _STEM.search(text.lower()) is not None


# an amount per 100 grams as food labels give it ("protein per 100 g", "por 100 gramos", "每100克",
# "100gあたり"): a food's nutrients, whatever the food
_PER_100_GRAMS = re.compile(
    r"(?:\b(?:per|por|pro|pour|para|je|ogni|на)\s+|/\s?|每)100\s?(?:g|gr|grams?|gramos|gramas|gramm|grammes?|grammi|г|грамм(?:ов|а)?|克)(?![A-Za-zа-яё])"  # noqa: RUF001
    r"|100\s?(?:g|グラム)\s?(?:あたり|当たり)",
    re.I,
)


# a DNS record by its type (an A record, MX records, the CNAME record): a name to resolve; the type's
# letters are no words (A is an article, NS and TXT say nothing)
_DNS_RECORD = re.compile(r"\b(?:A|AAAA|MX|CNAME|TXT|NS|SOA|PTR|SRV|CAA)\s+records?\b")


# a top-level domain on its own (".com", ".ai", "a .dev address"): a kind of domain name to
# register or look up, not a site
_TLD = re.compile(
    r"(?<![\w.-])\.(?:com|org|net|io|dev|ai|app|co|de|fr|es|jp|uk|ru|nl|br|au|ca|ch|pl|se|eu|cn|kr|in|us|"
    r"me|tv|gg|sh|so|xyz|tech|shop|store|online|site|cloud|info|biz)(?![\w.-])",
    re.I,
)
_CLOCK = re.compile(r"\b\d{1,2}(?::\d{2})?\s?(?:am|pm|a\.m\.|p\.m\.)(?!\w)|\b\d{1,2}:\d{2}\b", re.I)
_PATENT_CLASS = re.compile(r"\b[A-H]\d{2}[A-Z]\s?\d{1,4}/\d{2,6}\b")
# G-code as a CNC machine or a 3D printer runs it (G28, G1 X50 F800, M104 S200): a code, then
# an axis or a parameter with its value, or another code; one code alone (G7, M25) is too often a
# summit's or a road's name
_GCODE_WORD = r"[GM]\d{1,3}(?:\.\d)?"
_GCODE = re.compile(
    rf"(?<![\w.-]){_GCODE_WORD}(?:\s+(?:[XYZABCEFIJKPRSTH]-?\d+(?:\.\d+)?|[XYZ]|{_GCODE_WORD})(?![\w.-]))+",
)
# a temperature in degrees Celsius or Fahrenheit (350 °F, -4°C, 21,5 °C): the unit says what the
# number is; its digits are no words
_DEGREES = re.compile(r"(?<![\w.,])-?\d+(?:[.,]\d+)?\s?°\s?[CF](?![A-Za-z])")


def _degrees(value: str) -> str:
    return "temperature fahrenheit" if value.rstrip().endswith("F") else "temperature celsius"


_KELVIN = re.compile(r"(?<![\w.,])\d{4,5}\s?K\b")
_ZONE = re.compile(r"\b(?:PST|PDT|EST|EDT|CST|CDT|MST|MDT|UTC|GMT|CET|CEST|BST|IST|JST|KST|AEST|AEDT)\b")
# a time zone as the tz database names it (Europe/Berlin, America/Argentina/Buenos_Aires)
_TZ_NAME = re.compile(
    r"(?<![\w/.-])(?:Europe|America|Asia|Africa|Australia|Pacific|Atlantic|Indian|Antarctica)"
    r"(?:/[A-Z][A-Za-z_-]+){1,2}(?![\w/-]|\.\w)"
)


# latitude first, or a longitude past 100 first as GeoJSON, Mapbox and AMap write them (116.48,39.99)
_COORDINATES = (
    r"(?:-?\d{1,2}\.\d{2,}\s*,\s*-?\d{1,3}\.\d{2,}|-?1[0-7]\d\.\d{2,}\s*,\s*-?\d{1,2}\.\d{2,})(?!\.?\d)"
)
_AROUND_POINT = re.compile(
    # in parentheses after a name ("Kreuzberg (52.49,13.40)", "渋谷駅" and a full-width one), not after a
    # preposition or a verb ("what address is at (40.74, -73.98)?" asks for the address)
    r"(?:(?<=\w )|(?<=\w))(?<!\bat )(?<!\bis )(?<!\bof )(?<!\bto )(?<!\bin )(?<!\bon )(?<!\bfor )"
    r"[(\uff08]\s*" + _COORDINATES + r"\s*[)\uff09]"
    # after a word that makes it a point to search around or from ("near ...", "within 1 km of ...")
    r"|(?:(?<=\bnear )|(?<=\baround )|(?<=\bfrom )|(?<=\bbetween )|(?<=\band )|(?<=\bbox )"
    r"|(?<=\bkm of )|(?<=\bm of )|(?<=\bmi of )|(?<=\bmiles of )|(?<=\bmeters of )|(?<=\bmetres of )"
    # or a destination to move to ("fly to ...", "go to position ...", "a la posición ...")
    r"|(?<=\bposition )|(?<=\bposición )|(?<=\bposição )|(?<=\bposizione )|(?<=\bwaypoint )"
    r"|(?<=\bfly to )|(?<=\bgo to )|(?<=\bhead to )|(?<=\bmove to )|(?<=\bdestination ))" + _COORDINATES,
    re.I,
)


class _Literal(NamedTuple):
    pattern: re.Pattern[str]
    tag: str  # the capability tag the value implies for the word ranker ("" for none)
    read_as: str | None  # what a sentence model reads instead (None: as written; numbers read well)
    leaves: Callable[[str], str] = _nothing  # what the word ranker keeps of the value
    needs_digit: bool = False  # never matches text without a digit (most tasks): not even tried
    needs: str = ""  # never matches text without one of these characters: not even tried
    gate: Callable[[str], bool] | None = None  # never matches text this says no to: not even tried
    one: bool = False  # an identifier: the task is about one item (`names_one_item`)


_NOT_CURRENCY = re.compile(
    r"\d[\d,.\s]*(?:[kKmM]\b|万|千|億|亿|만|천)?"
    rf"|\b(?:how\s+(?:many|much)|is|are|to|into|in|for|vs|versus|against|the|has|have|{_MOVEMENT})\b|[^\w\s]",
    re.I,
)


def _currencies_changed(value: str) -> str:
    """What the word ranker keeps of a sum changed into another currency: the currencies' names
    (a service may serve only some) and the words "exchange rate"."""
    return "exchange rate " + " ".join(_NOT_CURRENCY.sub(" ", value).split())


def _currency_pair(value: str) -> str:
    """What the word ranker keeps of a currency pair: both codes (a pair or a path would keep
    only the first). Not the words "exchange rate": a pair is as often a symbol to chart or trade,
    and the words moved no task of the tuning sets but drew one such task from first to tenth."""
    letters = "".join(ch for ch in value if ch.isalpha())
    return f"{letters[:3]} {letters[3:]}"


def _identifier(
    pattern: str, read_as: str | None = "id", leaves: Callable[[str], str] = _nothing
) -> _Literal:
    """An opaque identifier (case-insensitive, with a digit): it names one item."""
    return _Literal(re.compile(pattern, re.I), "", read_as, leaves, needs_digit=True, one=True)


_LITERALS: tuple[_Literal, ...] = (
    _Literal(_SQL, "@database", "sql query", _saying("sql query")),
    _Literal(_JAVASCRIPT, "", "javascript code", _saying("javascript"), needs="."),
    _Literal(_HTTP_CALL, "", "api request", _saying("api request")),
    _Literal(_PROMQL, "", "promql query", _saying("promql query"), needs="("),
    _Literal(_METRIC, "", "metric", _saying("metric"), needs="_"),
    # rows of numbers in brackets ([[4,7],[2,6]], [1 2; 3 4]) are a matrix; an expression in x
    # set equal to y or f(x) (y = x**2 - 3*x + 2) a mathematical function to plot or solve
    _Literal(_MATRIX, "", "matrix", _saying("matrix"), needs_digit=True, needs="["),
    _Literal(_FUNCTION_OF_X, "", "mathematical function", _saying("mathematical function"), needs="="),
    # a molecule written in SMILES (CC(=O)Oc1ccccc1C(=O)O) and a CAS registry number (64-17-5):
    # chemistry's identifiers, whose letters and digits are no words
    _Literal(_SMILES, "", "chemical structure", _saying("smiles chemical structure"), needs="=#(123456789"),
    _Literal(_CAS_NUMBER, "", "cas registry number", _saying("cas number"), needs_digit=True, needs="-"),
    # fine particulate matter by its size (PM2.5, PM10): air quality; "pm2" alone is a process
    # manager, so the size must be whole
    _Literal(
        _PARTICULATES, "@air_quality", "fine particulate matter", _saying("fine particles"), needs_digit=True
    ),
    _Literal(_PER_100_GRAMS, "@nutrition", "nutrition per 100 grams", _saying("nutrition"), needs_digit=True),
    _Literal(_DNS_RECORD, "", "dns record", _saying("dns record"), needs="AMCTNSP"),
    # a trial's registry number at ClinicalTrials.gov (NCT05123456): one clinical trial, tagged so
    # (its letters and digits are no words; the words "clinical trial" drew every tool of a trials
    # server alike and put a task about one trial's endpoints from first to third)
    _Literal(
        re.compile(r"\bNCT\d{8}\b", re.I),
        "@clinical_trial",
        "clinical trial",
        needs_digit=True,
        one=True,
    ),
    # a profit-and-loss statement as accountants write it (P&L, P/L): its letters are no words
    _Literal(re.compile(r"\bP\s?[&/]\s?L\b", re.I), "", "profit and loss", _saying("profit and loss")),
    # an email address (jane.doe@acme.io): a person to reach, invite or look up, not a web page
    # (its domain is no site the task is about); the word ranker reads the word email, weighed
    # as dictated text, and a sentence model the address as written
    _Literal(_EMAIL, "", None, _saying('"email"')),
    _Literal(re.compile(r"\b(?:https?|ftp)://\S+|\bwww\.\S+", re.I), "@web", "web page", site_of),
    _Literal(_SHORT_HOST, "@web", "web page", site_of),
    _Literal(
        re.compile(
            r"(?<![\w.-])[\w-]+(?:\.[\w-]+)*\.(?:com|org|net|io|dev|ai|app|co|de|fr|es|jp|uk|ru|nl|br|au|ca|ch|"
            r"pl|se|eu|cn|kr|info|biz|xyz|tech|shop|store|online|site|cloud)\b"
            r"(?:/\S*)?",
            re.I,
        ),
        "@web",
        "web page",
        _bare_site,
    ),
    _Literal(_TLD, "", "top-level domain", _saying("tld domain"), needs="."),
    # Reddit's own notation for a subreddit or a user names the service (before paths: r/korea is
    # not the path /korea)
    _Literal(
        re.compile(r"(?<![\w/.~-])(?:r|u)/[A-Za-z0-9_]{2,21}(?![A-Za-z0-9_/])"),
        "",
        "subreddit",
        _saying("reddit"),
    ),
    # an emoji, as a shortcode (:eyes:, :white_check_mark:, :+1:) or itself: a reaction or a
    # message's decoration, not the words its name spells
    _Literal(
        re.compile(
            r"(?<![\w:]):(?:[+-]1|(?=[\w+-]*[a-z])[a-z0-9_+-]{1,40}):(?![\w:])|[\U0001F300-\U0001FAFF\u2600-\u27BF]"
        ),
        "",
        "emoji",
        _saying("emoji"),
    ),
    # a spreadsheet range in A1 notation (A1:D20, B:B, Sheet1!A2:E2000): cells of a sheet; its
    # letters and numbers are no words (a1, d20)
    _Literal(_CELL_RANGE, "", "cell range", _saying("cell range"), needs=":"),
    # a wiki link ([[Kubernetes]], [[Project Atlas]]) as Logseq, Obsidian and other note apps
    # write one: a link to a page; the page's name is what the task quotes, not what it asks
    _Literal(re.compile(r"\[\[([^\[\]\n]{1,200})\]\]"), "@link", "page link", _wiki_link, needs="["),
    # a chat channel (#releases, #bug-reports): where a message goes, not what it is about; after
    # "tag", "tagged", "tags" or "hashtag" it is a note's or a post's tag (#recipe), which stays a
    # word, and a colour (#ff5733, #fff) is no channel
    _Literal(
        re.compile(
            r"(?<![\w&#/])(?<!tag )(?<!tags )(?<!tags: )(?<!tagged )(?<!hashtag )"
            r"#(?![0-9a-f]{3}(?:[0-9a-f]{3}(?:[0-9a-f]{2})?)?\b)[A-Za-z][\w-]*(?![\w/])",
            re.I,
        ),
        "",
        "channel",
        _saying("channel"),
    ),
    # a date (2026-12-04, 27.11.2026, 12/03/2026, Jan 5, Dec 8-12, 3rd of May 2027) says when,
    # not a month's name: "Jan 15 2024" in git_log's parameter help drew every task with a January
    # date; a month alone ("in March") stays a word
    _Literal(_DATE, "", None, _saying("date"), needs_digit=True),
    # a patent classification (IPC or CPC: H01M 10/0562, G06F 16/00): its characters are no
    # path and no words; it asks for patents by their class
    _Literal(_PATENT_CLASS, "", "patent classification", _saying("patent classification ipc"), needs="/"),
    # an IPv4 address or range (10.0.4.12, 10.0.20.0/24) says a host or a network by its address,
    # and a port with its protocol (5432/tcp) a port, before a path or a pair takes their slash
    _Literal(_IPV4, "", None, _saying("ip address"), needs_digit=True),
    _Literal(_PORT, "", None, _saying("port"), needs_digit=True),
    # "lat/long", "lat & lng", "latitude and longitude": a place's coordinates, read before a pair
    # keeps only "lat" (the sentence model reads them as they are)
    _Literal(_LAT_LONG, "@location", None, _saying("coordinates"), needs="lL"),
    # a cron expression, before a glob takes "*/15"; a glob, before a path takes its folders; a
    # camelCase name in the user's code, before a path or a file name takes it
    _Literal(_CRON, "", "cron expression", _saying("cron schedule"), needs="*"),
    _Literal(_GLOB, "@file", "file pattern", _saying("file pattern"), needs="*"),
    _Literal(_CODE_NAME, "", None, _dictating),
    _Literal(_CURRENCY_PAIR, "", "exchange rate", _currency_pair),
    _Literal(
        _CURRENCY_CHANGE,
        "@exchange_rate",
        "currency exchange rate",
        _currencies_changed,
        gate=_names_a_currency,
    ),
    # a tz database zone (Europe/Berlin), before a pair or a path takes "Europe"; a locale (pt-BR,
    # en_US, zh-Hans): a language to add, translate into or export; its letters are no words
    _Literal(_TZ_NAME, "", "time zone", _saying("time zone"), needs="/"),
    _Literal(_LOCALE, "", None, _saying("language"), needs="-_"),
    # a path: absolute (/var/app, ~/datasets, ./src), or relative with two folders or a file's
    # extension (src/auth/session.py, book-notes/dune.md), whose first folder is kept as words
    _Literal(_PATH, "@file", "path", _folder_and_kind),
    # one slash between two words is no path (lat/long, Yes/No, acme/web-app, feature/login):
    # the first is kept, the second is mostly a name
    _Literal(_PAIR, "", None, _first_folder),
    # a certificate's or key's file, then any file with its kind (`_FILE_KINDS`)
    _Literal(_CERTIFICATE_FILE, "", "certificate file", _certificate_file, needs="."),
    _Literal(
        re.compile(rf"(?<![\w/.-])\.?[\w-]+(?:\.[\w-]+)*\.(?:{_EXTENSIONS})\b", re.I),
        "@file",
        "file",
        _kind_of_file,
    ),
    # an issue key (PROJ-123), or a Sentry short ID (CHECKOUT-1A2): capitals, a dash, then digits
    # and capitals with at least one digit, not starting with 0 (neither tracker pads its numbers);
    # a Sentry project's name may have dashes itself (JAVASCRIPT-REACT-3F); a code that goes on
    # past the number (SKU-2024-RED) or ends in a padded one (BOM-DESK-0003) is an item's code; a
    # standard's or a product's name written so (RS-485, USB-3, COVID-19, UTF-8) is none
    _Literal(
        re.compile(
            r"(?<![\w-])(?!(?:RS|USB|UTF|COVID|IEC|IEEE|ISO|MIL|SHA|DDR|LTE|HDMI|MPEG|PCIE|SARS|IPV|AES)-)"
            r"[A-Z][A-Z0-9]{1,9}(?:-[A-Z][A-Z0-9]*)*-(?!0)(?=[A-Z]*\d)[A-Z0-9]+(?![\w-])"
        ),
        "@issue",
        "ticket",
        needs_digit=True,
        one=True,
    ),
    # a book's ISBN (ISBN 0-261-10357-3, 978-0261103573, 9780261103573): one edition of a book,
    # whose digits are no words
    _identifier(_ISBN, "isbn book", _saying("isbn book")),
    # opaque identifiers: their characters are noise, a prefix names the kind (txn_01h..., cus_9Tx...)
    _identifier(r"\b[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}\b"),  # a UUID
    _identifier(r"\b[a-z]{2,6}_(?:\d[a-z0-9]{3,}|(?=[a-z]*\d)[a-z0-9]{8,})\b", None, _prefix),
    _identifier(r"\b(?=[a-f]*\d)(?=\d*[a-f])[0-9a-f]{7,40}\b"),  # a commit hash
    _identifier(r"\b(?=[a-z]*\d[a-z]*\d)(?=\d*[a-z])[a-z0-9]{8,}\b"),  # a ULID, a record ID
    # a latitude and longitude as a point to search around or from ("near 51.50,-0.12", "within
    # 1 km of ...", "from 45.46, 9.19"; in parentheses after a place's name): the task asks about
    # what is there, not for the point's address
    # (both need a decimal point: most tasks with a digit are not even tried, bench/literal_cost.py)
    _Literal(_AROUND_POINT, "@location", "coordinates", _saying("coordinates"), needs_digit=True, needs="."),
    # a latitude and longitude on their own ("what street address is at 40.7484,-73.9857"): a
    # place given by its coordinates, most often to be named (reverse geocoding)
    _Literal(
        re.compile(r"(?<![\w.-])" + _COORDINATES),
        "@location",
        "coordinates",
        _saying("coordinates reverse"),
        needs_digit=True,
        needs=".",
    ),
    # a condition on the items a task wants ("rows where Status = Blocked", "deals over 50k",
    # "amount > 50k"): it asks for a filtered search; the field and value are data
    _Literal(_CONDITION, "", "filter", _saying("filter"), needs="=<>0123456789"),
    # a share off a price ("15% off", "20 % off the order"): a discount, whatever its digits
    _Literal(
        re.compile(r"(?<![\w.,])\d+(?:[.,]\d+)?\s?%\s?off\b", re.I),
        "",
        "discount",
        _saying("discount"),
        needs_digit=True,
        needs="%",
    ),
    # a sum of money ($5.50, €89,90, 200 USD) asks about a price or an amount, whatever its digits
    _Literal(_MONEY, "", None, _saying("price amount"), needs_digit=True),
    # the name a task gives its own thing, words joined with a number (logs-app-2024.06,
    # products_v7, linux-build-03): it says which index, branch or host, not what to do with it;
    # its words are read as dictated text, weighed as a quote is
    _Literal(_NAMED, "", None, _as_quoted, needs_digit=True),
    _Literal(_ROLE_NAMED, "", None, _quoted_words, needs="-"),
    # a light's colour temperature in kelvin (2700K, 6500 K; a capital K after four or five
    # digits, where 10k would be a thousand): what the value sets
    _Literal(_KELVIN, "", None, _saying("color temperature"), needs="K"),
    # degrees Celsius or Fahrenheit (350 °F, 60°C): a temperature, in that unit
    _Literal(_DEGREES, "", "temperature", _degrees, needs="°"),
    # G-code lines: commands for a machine, whose letters and numbers are no words (`_GCODE`)
    _Literal(_GCODE, "", "g-code", _saying("gcode"), needs_digit=True, needs="GM"),
    # a clock time (3pm, 9:30am, 14:05): its characters are noise; a time zone's abbreviation
    # (PST, CET, UTC) says a zone
    _Literal(_CLOCK, "", None, _nothing, needs_digit=True),
    _Literal(_ZONE, "", None, _saying("time zone")),
    # time to book ("log 3h on OPS-88", "log 2 hours of work"): a worklog
    _Literal(_WORK_TIME, "", "log work time", _saying("add worklog"), needs_digit=True),
    _Literal(_WORK_TIME_CJK, "", "log work time", _saying("add worklog"), needs="시時时"),
    # a workflow state ("move PROJ-88 to In Progress", "flip it to Done"): the item's status,
    # not the words progress or done
    _Literal(_STATE, "", "to status", _state_of),
    _Literal(_AS_STATE, "", None, _status_as),
    _Literal(re.compile(r"(?<!\w)#\d+\b"), "", None, needs_digit=True, one=True),
    _Literal(re.compile(r"\b\d+(?:[.:]\d+)*\b"), "", None, needs_digit=True),
)


_DIGIT = re.compile(r"\d")


def strip_patterns(text: str) -> tuple[str, list[str]]:
    """Replace literal values (URLs, paths, file names, issue keys, opaque IDs, numbers) by what
    the word ranker keeps of them (a web address its site's name, a prefixed ID its prefix, the
    rest nothing) and return the tags they imply."""
    tags: list[str] = []
    digits = _DIGIT.search(text) is not None
    for literal in _LITERALS:
        if (
            (digits or not literal.needs_digit)
            and (not literal.needs or any(c in text for c in literal.needs))
            and (literal.gate is None or literal.gate(text))
            and literal.pattern.search(text)
        ):
            if literal.tag:
                tags.extend(literal.tag for _ in literal.pattern.findall(text))
            text = literal.pattern.sub(functools.partial(_leave, keep=literal.leaves), text)
    return text, tags


def names_one_item(text: str) -> bool:
    """Whether a task names one item by an identifier (an issue key, `#301`, a UUID, a commit
    hash, a prefixed or opaque ID): it is about that item, not a list of them."""
    if _DIGIT.search(text) is None:
        return False
    return any(literal.one and literal.pattern.search(text) for literal in _LITERALS)


def _leave(match: re.Match[str], *, keep: Callable[[str], str]) -> str:
    return f" {keep(match.group())} "


_TOKEN_STARTS = frozenset(" \t\n\"'`(<[{,;:")
"""What may come before a literal value that is a whole token."""


def plain_literals(text: str) -> str:
    """The text with each URL, path, file name, issue key and opaque ID replaced by the kind of
    thing it is ("web page", "path", "file", "ticket", "id"): what a sentence model should read.
    Written as they are, `~/app/config.yaml` reads as configuration and `OPS-1142` as nothing.
    Only whole tokens are replaced: the tail of `feature/login` (a branch), `lat/long` or
    `jane@acme.io` stays as written."""
    digits = _DIGIT.search(text) is not None
    for literal in _LITERALS:
        if literal.read_as is not None and (digits or not literal.needs_digit):
            text = literal.pattern.sub(functools.partial(_kind_of, word=literal.read_as), text)
    return " ".join(text.split())


def _kind_of(match: re.Match[str], *, word: str) -> str:
    start = match.start()
    if start and match.string[start - 1] not in _TOKEN_STARTS:
        return match.group()
    return f" {word} "


_NAME_TOKEN = re.compile(r"[\w.:/-]+")
_NAME_SEPARATORS = "_.:/-"
_CAMEL = re.compile(r"[a-z0-9][A-Z]")
_MAYBE_NAME = re.compile(r"\w[_.:/-]|[a-z0-9][A-Z]")


def spelled_names(query: str) -> tuple[tuple[str, str], ...]:
    """The tool names a task may spell out exactly, as (server, name) pairs folded to lower case,
    server "" for any: `read_text_file`, `API-get-users`, `github__create_issue` (a server's name,
    separators, then the tool's: the router's exposed name).

    An agent that read a tool's name (in a list, a log, another hit) and searches for it wants that
    tool, not the one whose words happen to score higher. Only identifier-like tokens count (with
    `_`, an inner `-`, `.`, `:` or `/`, or camelCase), or the whole task if it is one word: a plain
    word inside a sentence ("find", "explain") is a word, even if a tool is called so."""
    text = query.strip()
    if _MAYBE_NAME.search(text) is None and len(text.split(maxsplit=1)) > 1:
        return ()  # most tasks: words only
    tokens = _NAME_TOKEN.findall(text)
    plain = len(tokens) == 1 and tokens[0] == text.strip("`'\"").strip()
    found: dict[tuple[str, str], None] = {}
    for raw in tokens:
        token = raw.strip(_NAME_SEPARATORS)
        if not token:
            continue
        inner = any(c in token for c in _NAME_SEPARATORS) or _CAMEL.search(token) is not None
        if not (inner or plain):
            continue
        folded = token.lower()
        found.setdefault(("", folded), None)
        for i, c in enumerate(folded):
            if c in _NAME_SEPARATORS and folded[i - 1] not in _NAME_SEPARATORS:
                rest = folded[i:].lstrip(_NAME_SEPARATORS)
                if rest:
                    found.setdefault((folded[:i], rest), None)
    return tuple(found)
