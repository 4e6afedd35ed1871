"""Unicode-aware tokens, camelCase splitting, non-ASCII queries."""

from __future__ import annotations

import gzip
import math
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import router.catalog.search as search_package
from router.catalog.search import SearchIndex, analyze
from router.catalog.search.glossary import GLOSSARY
from router.catalog.search.intent import dictated, leading_change, leading_verb
from router.catalog.search.lexicon import LEXICON
from router.catalog.search.literals import names_one_item, plain_literals, site_of, strip_patterns
from router.catalog.search.neighbours import default_neighbours
from router.catalog.search.query import QueryReader
from router.catalog.search.text import _chunk_words, fold, is_cjk, split_identifier, stem, words
from router.catalog.search.weights import Weights
from tests.support.search_data import SMALL, index_of, load_evalset

# the common English words (with their neighbours in meaning) the router ships
NEIGHBOURS_FILE = Path(search_package.__file__).with_name("neighbours.txt.gz")


def test_camel_case_and_separators() -> None:
    assert split_identifier("getPullRequestFiles") == "get Pull Request Files"
    assert split_identifier("HTMLParser2Go") == "HTML Parser 2 Go"
    assert analyze("getPullRequestFiles") == ["get", "pull", "request", "file", "getpullrequestfil"]
    assert analyze("read_text_file") == ["read", "text", "file"]
    assert analyze("API-post-search") == ["api", "post", "search"]
    assert "hubspot" in analyze("HubSpot")  # the joined form meets the lower-case spelling


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=14))
def test_a_plain_or_capitalised_word_reads_as_the_identifier_splitter_reads_it(word: str) -> None:
    # `words` skips the splitter for a word in lower case or with only its first letter a capital
    # (a registration reads every word of every tool); what it gives must not differ
    assert words(word) == list(_chunk_words(word))


def test_camel_case_tool_is_found_by_words() -> None:
    idx = SearchIndex()
    for server, tools in SMALL.items():
        idx.put_server(server, None, tools)
    best = idx.search("which files did the pull request change", 1)[0]
    assert best.key == ("github", "getPullRequestFiles")


def test_non_ascii_tokens() -> None:
    assert words("Köln über") == ["koln", "uber"]
    assert words("ファイル") == ["ファ", "ァイ", "イル"]
    assert words("GitHubでPR") == ["git", "hub", "github", "で", "pr"]
    assert analyze("\uff26\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48") == ["fullwidth"]  # NFKC


def test_non_ascii_queries_find_tools() -> None:
    idx = SearchIndex()
    for server, tools in SMALL.items():
        idx.put_server(server, None, tools)
    cases = {
        "ファイルの内容を読んで": ("filesystem", "read_text_file"),
        "Lies die Datei": ("filesystem", "read_text_file"),
        "Crée un nouveau dossier": ("filesystem", "create_directory"),
        "Busca en la web": ("web", "web_search"),
        "新しいフォルダを作成": ("filesystem", "create_directory"),
        "Crie uma pasta nova": ("filesystem", "create_directory"),
        "Leia o arquivo": ("filesystem", "read_text_file"),
        "Crea una nuova cartella": ("filesystem", "create_directory"),
        "Cerca sul web": ("web", "web_search"),
        "把这个文件的内容读出来": ("filesystem", "read_text_file"),
        "新建一个文件夹": ("filesystem", "create_directory"),
        "파일 내용을 읽어줘": ("filesystem", "read_text_file"),
        "새 폴더를 만들어 주세요": ("filesystem", "create_directory"),
        "Прочитай этот файл": ("filesystem", "read_text_file"),
        "Создай новую папку": ("filesystem", "create_directory"),
    }
    for query, want in cases.items():
        hits = idx.search(query, 3)
        assert hits, query
        assert want in [h.key for h in hits], (query, hits)


def test_traditional_chinese_is_folded_to_simplified() -> None:
    # characters and Taiwan's vocabulary: 專案 -> 项目 (project), 資料夾 -> 文件夹 (folder)
    assert fold("列出專案資料夾") == "列出项目文件夹"
    # Simplified text stays as written: the mainland's 文件 is a file, not Taiwan's document (文档)
    assert fold("删除文件") == "删除文件"
    # Japanese (text with kana) keeps its kanji: 資料 is material, not Taiwan's data (数据)
    assert fold("資料を表示") == "資料を表示"


def test_traditional_chinese_queries_find_tools() -> None:
    idx = SearchIndex()
    for server, tools in SMALL.items():
        idx.put_server(server, None, tools)
    assert ("filesystem", "create_directory") in [h.key for h in idx.search("新建一個資料夾", 3)]
    assert ("filesystem", "read_text_file") in [h.key for h in idx.search("把這個檔案的內容讀出來", 3)]


def test_words_keep_their_vowel_signs() -> None:
    # Devanagari and Thai write vowels as combining marks, which are not word characters to `re`
    assert words("फ़ाइल हटाओ") == ["फाइल", "हटाओ"]  # and the nukta goes: फ़ाइल is spelled फाइल too
    assert words("मेरी फाइलें") == ["मेरी", "फाइलें"]
    assert words("ลบไฟล์") == ["ลบไฟล์"]


def test_russian_words_are_stemmed_as_russian() -> None:
    # the inflected forms of one verb meet in one stem, so the lexicon needs to list only one
    assert len({analyze(w)[0] for w in ("создай", "создайте", "создать")}) == 1
    assert analyze("файлы") == analyze("файла") == ["файл"]


def test_one_words_inflections_share_one_stem() -> None:
    # the English stemmer alone splits these (queued -> queu, aliases -> alias, embed -> emb)
    for forms in (
        ("queue", "queues", "queued", "queuing"),
        ("alias", "aliases", "aliased"),
        ("embed", "embeds", "embedded", "embedding"),
        ("diff", "diffs", "diffed"),
        ("reference", "references", "referenced", "referencing"),
        ("staff", "staffed"),
        ("watch", "watching", "watcher", "watchers"),  # a role noun, as reviewer is to review
        ("assign", "assigned", "assignee"),
        # an adjective or noun of a base the stemmer keeps apart (it joins national and nation)
        ("tide", "tides", "tidal"),
        ("coast", "coastal"),
        ("rent", "rents", "rental", "rentals"),
    ):
        assert len({stem(w) for w in forms}) == 1, forms
    # and leaves different words apart
    assert stem("star") != stem("stared")
    assert stem("past") != stem("pasted")
    # and a filing (a form filed with a registry) apart from a file of data
    assert stem("filed") == stem("filing") == stem("filings") != stem("file") == stem("files")
    # and a workflow's transition apart from transit
    assert stem("transitions") == stem("transitioned") == stem("transition") != stem("transit")
    assert stem("assignments") == stem("assignment") != stem("assign") == stem("assigned")


def test_a_filing_is_not_a_file() -> None:
    idx = SearchIndex()
    idx.put_server("disk", None, [{"name": "read_text_file", "description": "Read a text file from disk."}])
    idx.put_server(
        "registry",
        None,
        [
            {
                "name": "get_recent_filings",
                "description": "The latest forms a company submitted to the regulator.",
            }
        ],
    )
    assert idx.search("anything filed by Ford this quarter?", 1)[0].key == (
        "registry",
        "get_recent_filings",
    )


def test_a_task_in_another_inflection_finds_the_tool() -> None:
    # without neighbours in meaning, which would find "refer" near "referenced" by themselves
    idx = SearchIndex(weights=Weights(neighbour=0.0))
    idx.put_server(
        "code",
        None,
        [
            {"name": "find_references", "description": "Find every place that uses a symbol."},
            {"name": "find_definition", "description": "Find the place that defines a symbol."},
            {"name": "list_staff", "description": "List the people of a team."},
            {"name": "list_shifts", "description": "List a team's shifts by person."},
        ],
    )
    assert idx.search("where is parse_config referenced", 1)[0].key == ("code", "find_references")
    assert idx.search("which people are staffed on the team", 1)[0].key == ("code", "list_staff")


def test_british_spellings_meet_the_american_ones_tools_are_written_in() -> None:
    for forms in (
        ("colour", "colours", "color", "colors"),
        ("organisation", "organisations", "organization", "organizations"),
        ("organise", "organised", "organize", "organized"),
        ("neighbourhood", "neighborhood"),
        ("optimise", "optimising", "optimize", "optimizing"),
        ("centre", "center"),
        ("licence", "license"),
        ("programme", "program"),
        ("catalogue", "catalog"),
        ("analyse", "analyze"),
        ("favourite", "favorite"),
    ):
        assert len({stem(w) for w in forms}) == 1, forms
    # French localisation is a place, not English localization
    assert stem("localisation") != stem("localization")
    idx = index_of(
        {
            "crm": [
                {"name": "list_organizations", "description": "List the organizations in the account."},
                {"name": "list_contacts", "description": "List contacts."},
            ],
            "home": [{"name": "set_light_color", "description": "Set a light's color."}],
        }
    )
    assert idx.search("show me every organisation we have", 1)[0].key[1] == "list_organizations"
    assert idx.search("make the lamp's colour warmer", 1)[0].key[1] == "set_light_color"


def test_arabic_and_hindi_words_are_stemmed_in_their_scripts() -> None:
    # Arabic joins "and" and "the" to the word; Hindi inflects; the lexicon lists one form of each
    assert analyze("وأرسل") == analyze("أرسل")
    assert analyze("الملفات") == analyze("ملف")
    assert analyze("फ़ाइलें") == analyze("फाइल")


def test_a_cjk_form_inside_a_longer_one_does_not_count() -> None:
    # Korean 저장소 (repository) holds 저장 (save) and 장소 (place): only the longest form is read
    tags = LEXICON.tags("저장소")
    assert "@repository" in tags
    assert "@write" not in tags
    assert "@location" not in tags
    assert {"@location", "@write"} <= set(LEXICON.tags("저장해 주세요, 장소도"))


def test_a_web_address_names_its_site() -> None:
    assert site_of("https://www.youtube.com/watch?v=8pDqJVdNa44") == "youtube"
    assert site_of("https://acme.sentry.io/issues/12/") == "sentry"
    assert site_of("docs.stripe.com/api") == "stripe"
    assert site_of("https://bbc.co.uk/news") == "bbc"
    assert site_of("https://example.org/blog/post-1") == ""  # a placeholder names nothing
    # a service's own short links name it; a generic shortener names nothing
    assert site_of("https://youtu.be/dQw4w9WgXcQ") == "youtube"
    assert site_of("redd.it/1abcde") == "reddit"
    assert site_of("https://bit.ly/3xYz") == ""
    text, tags = strip_patterns("резюмируй доклад youtu.be/dQw4w9WgXcQ")
    assert text.split() == ["резюмируй", "доклад", "youtube"] and tags == ["@web"]
    # Reddit's r/ and u/ notation names Reddit, in any script around it; a path stays a path
    assert strip_patterns("whats hot on r/LocalLLaMA rn")[0].split() == ["whats", "hot", "on", "reddit", "rn"]
    assert strip_patterns("r/korea에서 글 찾아줘")[0].split() == ["reddit", "에서", "글", "찾아줘"]
    assert strip_patterns("read src/r/file.py")[1] == ["@file"]
    text, tags = strip_patterns("summarize https://www.youtube.com/watch?v=8pDqJVdNa44 for me")
    assert text.split() == ["summarize", "youtube", "for", "me"] and tags == ["@web"]


def test_a_file_is_read_as_a_file_whatever_its_kind() -> None:
    # config, audio, slides and app bundles are files too: before, "server.properties" read as
    # the words server and properties and found a catalog's property tools
    for task in (
        "show me what's in server.properties on 7f3e9a2b",
        "transcribe interview.m4a",
        "put the logo on slide 3 of deck.pptx",
        "upload app-release.aab to the internal track",
        "which lines in LoginViewModel.swift have no tests",
    ):
        assert strip_patterns(task)[1] == ["@file"], task
    idx = index_of(
        {
            "panel": [
                {"name": "read_file", "description": "Read the contents of a file on a game server."},
                {"name": "list_servers", "description": "List the game servers."},
            ],
            "crm": [
                {"name": "get_property", "description": "Get one property of a contact by its name."},
                {"name": "list_properties", "description": "List the properties defined for contacts."},
            ],
        }
    )
    assert idx.search("show me what's in server.properties on 7f3e9a2b", 1)[0].key == ("panel", "read_file")


def test_an_email_address_is_a_person_to_reach_not_a_web_page() -> None:
    # before, acme.io read as a web address: the tag @web and the site name "acme"
    text, tags = strip_patterns("is jane.doe@acme.io already in our audience?")
    assert text.split() == ["is", '"email"', "already", "in", "our", "audience?"] and tags == []
    idx = index_of(
        {
            "mail": [
                {
                    "name": "search_contacts_by_emails",
                    "description": "Find contacts by their email addresses.",
                },
                {"name": "get_contact", "description": "Get a contact by its ID."},
            ],
            "fetch": [{"name": "fetch", "description": "Fetch a web page from the internet."}],
        }
    )
    assert idx.search("look up jane.doe@acme.io", 1)[0].key == ("mail", "search_contacts_by_emails")


def test_a_profit_and_loss_statement_is_read_as_its_words() -> None:
    # "P&L" split into the letters p and l, which are no words; a finance server's report is found
    assert strip_patterns("P&L for Q3 broken out by location")[0].split()[:3] == ["profit", "and", "loss"]
    assert strip_patterns("the p/l report")[0].split() == ["the", "profit", "and", "loss", "report"]
    idx = index_of(
        {
            "books": [
                {"name": "get_profit_loss", "description": "Get the profit and loss report for a period."},
                {"name": "get_balance_sheet", "description": "Get the balance sheet at a date."},
            ]
        }
    )
    hits = idx.search("P&L for Q3", 1)
    assert hits and hits[0].key == ("books", "get_profit_loss")


def test_a_tasks_web_address_finds_the_service_it_points_to() -> None:
    idx = SearchIndex()
    idx.put_server(
        "youtube-transcript",
        None,
        [{"name": "get_transcript", "description": "Extract the transcript of a video from its URL."}],
    )
    idx.put_server(
        "fetch", None, [{"name": "fetch", "description": "Fetch a URL from the internet as markdown."}]
    )
    best = idx.search("what did they announce in https://www.youtube.com/watch?v=8pDqJVdNa44", 1)[0]
    assert best.key == ("youtube-transcript", "get_transcript")


def test_opaque_identifiers_are_noise_but_their_prefix_names_the_kind() -> None:
    def kept(text: str) -> list[str]:
        return strip_patterns(text)[0].split()

    assert kept("refund txn_01hv8k2m3n now") == ["refund", "txn", "now"]  # Paddle
    assert kept("charge cus_NffrFeUfNV2Hib") == ["charge", "cus"]  # Stripe
    assert kept("revert 3f2a9c1 and 9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d") == ["revert", "and"]
    assert kept("build 01hv8k2m3n7q") == ["build"]
    # words with digits in them are words: a tool name, an encoding, an architecture, a service
    assert kept("call get_file2 on utf8 x86_64 s3 ec2 oauth2") == [
        "call", "get_file2", "on", "utf8", "x86_64", "s3", "ec2", "oauth2",
    ]  # fmt: skip


def test_an_identifiers_fragments_are_not_query_terms() -> None:
    # split at its letter/digit boundaries, txn_01hv8k2m3n would be the words 01, hv, 01hv8k2m3n,
    # and meet every tool whose schema shows an example ID of the same shape (txn_01h04vsb...)
    terms = {term for term, _ in SearchIndex().query_terms("refund txn_01hv8k2m3n")}
    assert {"refund", "txn"} <= terms
    assert not terms & {"01", "hv", "01hv8k2m3n"}, terms


def test_a_things_own_name_is_read_as_dictated_text() -> None:
    # "logs-app-2024.06" names an index: its words are not what the task asks for
    assert strip_patterns("settings of logs-app-2024.06")[0].split() == ["settings", "of", '"logs', 'app"']
    assert strip_patterns("is linux-build-03 online")[0].split() == ["is", '"linux', 'build"', "online"]
    assert strip_patterns("a 30-day trial")[0].split() == ["a", "-day", "trial"]  # no name
    idx = SearchIndex()
    idx.put_server("search", None, [{"name": "get_index", "description": "Get an index's field mappings."}])
    idx.put_server("git", None, [{"name": "git_log", "description": "Show the commit logs of a repository."}])
    idx.put_server("apps", None, [{"name": "list_apps", "description": "List the apps of the account."}])
    assert idx.search("show me the field mappings of logs-app-2024.06", 1)[0].key == ("search", "get_index")
    # words joined to a word naming a running thing (checkout-api, pg-main) name a service
    assert strip_patterns("did checkout-api throw errors")[0].split() == [
        "did",
        '"checkout',
        'api"',
        "throw",
        "errors",
    ]
    assert strip_patterns("restart pg-main")[0].split() == ["restart", '"main"']
    assert strip_patterns("a follow-up on the e-mail")[0].split() == ["a", "follow-up", "on", "the", "e-mail"]
    idx.put_server("vcs", None, [{"name": "checkout", "description": "Switch to another branch."}])
    idx.put_server(
        "errors", None, [{"name": "search_events", "description": "Count and list the events of a project."}]
    )
    assert idx.search("how many events did checkout-api throw today", 1)[0].key == ("errors", "search_events")


def test_a_state_after_as_is_a_status() -> None:
    for task in ("close this error in Sentry as fixed", "mark item 48213 as resolved",
                 "Закрой эту ошибку в Sentry как исправленную", "marca o erro como resolvido"):  # fmt: skip
        assert "status" in strip_patterns(task)[0].split(), task
    for task in ("mark the task as done", "save it as fixed.md", "as well as fixed costs"):
        assert "status" not in strip_patterns(task)[0].split(), task


def test_a_condition_on_the_items_asks_for_a_filter() -> None:
    assert strip_patterns("rows where Status = Blocked")[0].split() == ["rows", "filter"]
    assert strip_patterns("deals over $50k")[0].split() == ["deals", "filter"]
    assert strip_patterns("amount > 50k")[0].split() == ["amount", "filter"]
    assert "Status=Done" in strip_patterns("set Status=Done on it")[0]  # a value to set, no filter
    # the same condition in other languages
    for task in ("todo lo que tenga Status = Blocked", "документы, где level = debug",
                 "alle Zeilen mit Status = Offen", "les lignes où statut = bloqué"):  # fmt: skip
        assert "filter" in strip_patterns(task)[0].split(), task
    idx = SearchIndex()
    idx.put_server(
        "crm",
        None,
        [
            {"name": "search_objects", "description": "Search records with filters on their properties."},
            {"name": "get_deal", "description": "Read one deal."},
            {"name": "update_deal", "description": "Change a deal's amount or stage."},
        ],
    )
    idx.put_server("tracker", None, [{"name": "list_rows", "description": "List the rows of a table."}])
    for task, tool in {
        "deals over $50k closing this month": "search_objects",
        "rows where Status = Blocked": "search_objects",
    }.items():
        assert idx.search(task, 1)[0].key == ("crm", tool), task


def test_time_to_book_is_a_worklog() -> None:
    assert strip_patterns("log 2h 30m on it")[0].split() == ["add", "worklog", "on", "it"]
    assert "@worklog" in LEXICON.tags("submit my timesheet")
    # a number inside a phrase leaves it a phrase; a phrase that has one keeps it
    assert "@worklog" in LEXICON.tags("Log 2.5 hours on task 8812 for yesterday")
    assert "@escalate" in LEXICON.tags("tier 2 support")
    idx = index_of(
        {
            "tracker": [
                {"name": "add_worklog", "description": "Add a worklog entry to an issue."},
                {"name": "get_worklog", "description": "Read the worklog of an issue."},
            ],
            "git": [{"name": "git_log", "description": "Show the commit logs."}],
        }
    )
    for task in ("log 3h on OPS-88 for yesterday's debugging", "log 2 hours of work on ticket ABC-42",
                 "Jira 티켓 ABC-321에 오늘 작업한 3시간 기록해줘", "OPS-88に3時間を記録して"):  # fmt: skip
        assert idx.search(task, 1)[0].key == ("tracker", "add_worklog"), task
    assert "worklog" not in strip_patterns("过去24小时还没解决的报错")[0]  # hours, nothing recorded


def test_one_slash_between_words_is_no_path() -> None:
    # a path is absolute, or has two folders or a file's extension; its first folder is kept
    assert strip_patterns("list /var/app files") == ("list    files", ["@file"])
    assert strip_patterns("open src/auth/session.py") == ("open  src ", ["@file"])
    assert strip_patterns("read book-notes/dune.md") == ("read  book-notes ", ["@file"])
    # read/write, Yes/No, an owner/repo or a branch are words and names, not files
    for text in ("a read/write volume", "a Yes/No dropdown", "PR 12 in acme/web-app", "feature/login"):
        assert strip_patterns(text)[1] == [], text


def test_a_clock_time_is_noise_and_a_zone_is_a_time_zone() -> None:
    assert strip_patterns("3pm PST is what in Berlin?")[0].split() == [
        "time",
        "zone",
        "is",
        "what",
        "in",
        "Berlin?",
    ]
    assert strip_patterns("move the 9:30am sync")[0].split() == ["move", "the", "sync"]


def test_how_big_is_a_size() -> None:
    for task in ("how big is each file", "biggest first", "wie groß ist der Ordner", "ファイルのサイズ"):
        assert "@size" in LEXICON.tags(task), task
    idx = SearchIndex()
    idx.put_server(
        "fs",
        None,
        [
            {"name": "list_directory", "description": "List the entries of a directory."},
            {
                "name": "list_directory_with_sizes",
                "description": "List a directory's entries with their sizes.",
            },
            {"name": "read_file", "description": "Read a file."},
        ],
    )
    best = idx.search("which folders under ~/datasets take the most disk? biggest first", 1)[0]
    assert best.key == ("fs", "list_directory_with_sizes")


def test_a_row_is_a_record() -> None:
    # a table's row, record or entry is one item of it, whatever the tool calls it
    for task in ("add a row to the Leads table", "insert a new entry", "Datensatz anlegen", "añade una fila"):
        assert "@record" in LEXICON.tags(task), task
    # "record that ..." writes a fact down: the verb, not a row
    assert "@record" not in LEXICON.tags("record that she moved to the Berlin office")
    idx = index_of(
        {
            "airtable": [
                {"name": "create_table", "description": "Create a new table in a base"},
                {"name": "create_record", "description": "Create a new record in a table"},
                {"name": "list_tables", "description": "List all tables in a base"},
            ]
        }
    )
    best = idx.search("add a row to the Leads table in airtable: Jane Doe, jane@acme.io", 1)[0]
    assert best.key == ("airtable", "create_record")


def test_a_tickets_state_is_its_status() -> None:
    # "In Progress" and "Done" name the state a ticket moves to, not a job's progress
    assert strip_patterns("flip it to Done")[0].split() == ["flip", "it", "to", "status"]
    assert strip_patterns("what is left to do")[0] == "what is left to do"  # no state
    idx = SearchIndex()
    idx.put_server(
        "tracker",
        None,
        [
            {"name": "transition_issue", "description": "Change the status of an issue."},
            {"name": "get_issue", "description": "Read an issue."},
        ],
    )
    idx.put_server(
        "jobs",
        None,
        [
            {"name": "get_progress", "description": "Show the progress of a running job."},
            {"name": "mark_job_done", "description": "Mark a job as done."},
        ],
    )
    for task in ("PROJ-88 is in review now, move it to In Progress", "flip INFRA-77 to Done"):
        assert idx.search(task, 1)[0].key == ("tracker", "transition_issue"), task


def test_done_means_complete() -> None:
    idx = SearchIndex()
    idx.put_server(
        "todo",
        None,
        [
            {"name": "add-tasks", "description": "Add one or more tasks to a project."},
            {"name": "complete-tasks", "description": "Complete one or more tasks by their IDs."},
            {"name": "delete-object", "description": "Delete a task, project or label by its ID."},
        ],
    )
    for query in ("mark 'buy milk' as done", "I finished the slides task", "Aufgabe erledigt", "任务做完了"):
        assert idx.search(query, 1)[0].key == ("todo", "complete-tasks"), query


def test_env_vars_are_environment_variables() -> None:
    assert {"environ", "variabl"} <= set(LEXICON.expand("manage-env-vars"))
    # a browser's XHR calls are its network requests
    assert {"network", "request"} <= set(LEXICON.expand("which XHR calls did the page make"))
    # accounting's short forms, and a sprint by the name Shortcut and GitLab give it
    assert {"year", "date"} <= set(LEXICON.expand("revenue ytd")) and "sold" in LEXICON.expand("cogs")
    assert "@sprint" in LEXICON.tags("plan the next iteration for the platform team")
    idx = SearchIndex()
    idx.put_server(
        "hosting",
        None,
        [
            {
                "name": "project-updater",
                "description": "Write operations: update-project-name, manage-env-vars.",
            },
            {"name": "get-environment", "description": "Show the environment the server runs in."},
        ],
    )
    assert idx.search("set an environment variable", 1)[0].key == ("hosting", "project-updater")


def test_parameters_inside_unions_and_references_are_searched() -> None:
    # pydantic models reach a schema as $ref into $defs, zod unions as anyOf variants (often with
    # an `operation` const): their parameters describe the tool as much as top-level ones do
    pydantic_style = {
        "name": "run",
        "description": "Run a request.",
        "inputSchema": {
            "type": "object",
            "properties": {"params": {"$ref": "#/$defs/Params"}},
            "$defs": {
                "Params": {
                    "type": "object",
                    "properties": {"currency": {"type": "string", "description": "ISO 4217 currency"}},
                }
            },
        },
    }
    zod_style = {
        "name": "services_updater",
        "description": "Run one of several write operations.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "select": {
                    "anyOf": [
                        {"type": "object", "properties": {"operation": {"const": "rotate-credentials"}}},
                        {"type": "object", "properties": {"operation": {"const": "rename-site"}}},
                    ]
                }
            },
        },
    }
    idx = SearchIndex()
    for server, tools in SMALL.items():
        idx.put_server(server, None, tools)
    idx.put_server("api", None, [pydantic_style, zod_style])
    assert idx.search("which currency", 1)[0].key == ("api", "run")
    assert idx.search("rotate credentials", 1)[0].key == ("api", "services_updater")


def test_marking_an_item_in_another_language_changes_it() -> None:
    # "mark it as resolved" is an update; English "mark" is left out (mark X as blocked by Y
    # links two issues), the other languages' forms say the update
    for task in ("Marca esse erro no Sentry como resolvido", "пометь ошибку как решённую",
                 "markiere den Fehler als erledigt", "segna il ticket come risolto"):  # fmt: skip
        assert leading_change(leading_verb(task, LEXICON)), task
    assert "@stop" in LEXICON.tags("cierra el ticket de soporte 7710")


def test_tasks_in_languages_beyond_the_first_nine_find_tools() -> None:
    idx = SearchIndex()
    for server, tools in SMALL.items():
        idx.put_server(server, None, tools)
    cases = {
        "Utwórz nowy folder": ("filesystem", "create_directory"),  # Polish
        "Yeni bir klasör oluştur": ("filesystem", "create_directory"),  # Turkish
        "Tạo thư mục mới": ("filesystem", "create_directory"),  # Vietnamese
        "Buat folder baru": ("filesystem", "create_directory"),  # Indonesian
        "أنشئ مجلد جديد": ("filesystem", "create_directory"),  # Arabic
        "नया फ़ोल्डर बनाओ": ("filesystem", "create_directory"),  # Hindi
        "Przeczytaj ten plik": ("filesystem", "read_text_file"),
    }
    for query, want in cases.items():
        assert want in [h.key for h in idx.search(query, 3)], query


def test_phrasal_verbs_carry_their_intent() -> None:
    assert "@delete" in LEXICON.tags("tear down the old staging cluster")
    assert "@delete" in LEXICON.tags("get rid of these branches")
    assert "@create" in LEXICON.tags("spin up a fresh environment")
    assert "@read" in LEXICON.tags("pull up yesterday's report")
    assert "@stop" in LEXICON.tags("shut down the worker")
    assert "@assign" in LEXICON.tags("hand over Marco's tasks to Dana")
    # "open a" something is making it; "open the" something is reading it
    for task in ("open a PR from feature/x into main", "open an issue about the crash", "open a new tab"):
        assert "@create" in LEXICON.tags(task), task
    assert "@create" not in LEXICON.tags("open the file and show me line 3")
    assert "@create" in LEXICON.tags("file an issue in the gitlab project")
    for task in ("Ouvre une issue sur GitHub", "abre una incidencia", "abre um chamado", "apri un ticket"):
        assert "@create" in LEXICON.tags(task), task
    assert "@complete" in LEXICON.tags("cross off the first item")
    assert "@create" in LEXICON.tags("log a call note on contact 48213")  # not the logs
    assert "@update" in LEXICON.tags("swap in the new Q3 numbers on the chart")
    # "make it" something changes a thing that exists; "make a" one creates it
    tags = LEXICON.tags("rename the tag tax2024 and make it red")
    assert "@update" in tags and "@create" not in tags
    assert "@create" in LEXICON.tags("make a new label called urgent")
    assert "@summarize" in LEXICON.tags("give me a quick overview of the Treaty of Westphalia")
    for task in ("I trashed the login by accident, can you bring it back?", "can we roll that back",
                 "revert the budget sheet to yesterday", "восстанови удалённую заметку"):  # fmt: skip
        assert "@restore" in LEXICON.tags(task), task
    assert "@write" in LEXICON.tags("tack on a paragraph about the offsite")
    assert "@stop" in LEXICON.tags("spin down the preview environment")
    assert "@status" in LEXICON.tags("move PROJ-1423 to In Review")
    assert "@type" in LEXICON.tags("press Escape to close that modal")
    # the particle may follow the object, a few words later
    assert "@assign" in LEXICON.tags("hand the Jira bug over to Alice")
    assert "@link" in LEXICON.tags("wire that dependency up in asana")
    assert "@deploy" in LEXICON.tags("roll CT 210 back to its snapshot")
    assert "@assign" not in LEXICON.tags("hand me the report from over a year ago")  # too far
    # a phrase's meaning replaces its words': "get rid of" deletes and reads nothing, "pull up"
    # reads and downloads nothing, and a phrase's tag counts once
    assert LEXICON.tags("get rid of these branches").count("@read") == 0
    assert "@download" not in LEXICON.tags("pull up yesterday's report")
    assert LEXICON.tags("tear down the staging cluster").count("@delete") == 1


def test_to_do_is_one_word() -> None:
    # both halves are stop words: read apart, "to-do list" would say no more than "list"
    assert analyze("Add 'buy printer toner' to my to-do list") == [
        "add",
        "buy",
        "printer",
        "toner",
        "todo",
        "list",
    ]
    assert analyze("open To-Dos assigned to me") == analyze("open todos assigned to me")
    assert analyze("go-down to-doer") == ["go", "down", "doer"]


def test_offline_subtasks_draining_and_still_running() -> None:
    # "offline" may follow the object, as a particle does
    assert "@unpublish" in LEXICON.tags("take the pricing page offline")
    assert "@unpublish" in LEXICON.tags("unpublish that post")
    assert "@subtask" in LEXICON.tags("open a sub-ticket under INC-0042")
    assert "@subtask" in LEXICON.tags("add child issues to the epic")
    assert "@node_maintenance" in LEXICON.tags("drain worker-2 so I can patch it")
    assert "@node_maintenance" in LEXICON.tags("cordon the node")
    for task in (
        "is the robot vacuum still running?",
        "is the coffee maker plug still on",
        "did the nightly build go green?",
    ):
        assert "@status" in LEXICON.tags(task), task
    assert "@worklog" in LEXICON.tags("which task is my timer running on right now")
    idx = index_of(
        {
            "blog": [
                {"name": "delete_post", "description": "Delete a post permanently."},
                {"name": "publish_post", "description": "Publish a draft post."},
                {"name": "unpublish_post", "description": "Unpublish a post: it goes back to draft."},
                {"name": "get_post", "description": "Get a post."},
            ],
            "tickets": [
                {"name": "create_ticket", "description": "Create a ticket."},
                {
                    "name": "create_child_ticket",
                    "description": "Create a child ticket under a parent ticket.",
                },
            ],
        }
    )
    assert idx.search("take my old post offline for now", 1)[0].key == ("blog", "unpublish_post")
    assert idx.search("open a sub-ticket under INC-0042 for the network team", 1)[0].key == (
        "tickets",
        "create_child_ticket",
    )


def test_currencies_fine_particles_strikes_goals_and_changing_trains() -> None:
    for task, tag in {
        "How many pesos is one Brazilian real right now?": "@exchange_rate",
        "Obtiene cotización de una moneda extranjera": "@exchange_rate",
        "Streikt die GDL gerade?": "@strike",
        "is there a rail strike tomorrow": "@strike",
        "no direct train, find me something with one change": "@layover",
        "从昆明到厦门换乘": "@layover",
        "create a goal for Q3": "@goal",
        "Create a new Lattice objective.": "@goal",
        "US average hourly earnings": "@pay_level",
        "Залогируй 2,5 часа на задачу за вчера": "@worklog",
    }.items():
        assert tag in LEXICON.tags(task), task
    # a particle size is air quality; "pm2" alone is a process manager
    assert strip_patterns("pm2.5 paris today")[1] == ["@air_quality"]
    assert strip_patterns("PM10 in Krakau")[1] == ["@air_quality"]
    assert strip_patterns("pm2 restart app") == ("pm2 restart app", [])
    # short forms inside other words and another sense are left out: リスト is a list, Ziel a destination
    assert "@strike" not in LEXICON.tags("リストを表示して")
    assert "@goal" not in LEXICON.tags("Start und Ziel der Reise")
    # a task about goals finds what the tools call objectives (nothing at all without the concept)
    idx = index_of(
        {
            "okr": [
                {"name": "create_objective", "description": "Create an objective."},
                {"name": "list_objectives", "description": "List objectives."},
            ],
            "fitness": [{"name": "set_daily_target", "description": "Set the daily step target."}],
        }
    )
    assert idx.search("what are my goals this quarter", 1)[0].key == ("okr", "list_objectives")


def test_a_german_separable_verb_is_read_whole() -> None:
    # the prefix ends the clause: "Leg ... an" is anlegen (create), "brich ihn ab" abbrechen
    rejoin = LEXICON.rejoin_separable
    # "und" starts another clause: "Leite ... weiter und schreib dazu" is weiterleiten (forward)
    assert rejoin(
        "Leite die Mail von Herrn Böhm an einkauf@example.de weiter und schreib dazu: bis Freitag"
    ).startswith("weiterleiten die Mail")
    assert rejoin("Leg im Repo acme/api ein Issue an: Login kaputt").startswith(
        "anlegen im Repo acme/api ein Issue:"
    )
    assert rejoin("der Build hängt, brich ihn ab") == "der Build hängt, abbrechen ihn"
    assert rejoin("Lege bitte ein Ticket an.") == "anlegen bitte ein Ticket."
    assert "@stop" in LEXICON.tags(rejoin("Schalte bitte das Licht im Büro aus"))
    # a question puts the conjugated verb after its question word: "fährt ... ab" is abfahren
    assert "@departures" in LEXICON.tags(rejoin("Was fährt in den nächsten Minuten ab Winterthur ab?"))
    assert "@departures" in LEXICON.tags(rejoin("Wann fährt der nächste Bus ab?"))
    assert rejoin("was ist das an") == "was ist das an"
    for text in ("show me a plan", "what time is it in Japan", "log me in", "die Seite an"):
        assert rejoin(text) == text, text  # no verb the lexicon knows: left as written
    # so the task asks to make something, and a tool that reads ranks lower (intent.py)
    reader = QueryReader(Weights(), LEXICON, default_neighbours())
    task = reader.read("Leg im Repo acme/api auf GitHub ein Issue an: „Timeout beim Login“")
    assert task.change and ("@create", Weights().query_tag) in task.terms


def test_a_glossary_word_in_another_language_finds_the_tool_that_says_it_in_english() -> None:
    tools = [
        {"name": "list_nodes", "description": "List the nodes of the cluster with their status."},
        {"name": "list_ports", "description": "List the open ports of a host."},
        {"name": "get_forecast", "description": "Weather forecast for a place."},
    ]
    idx = SearchIndex()
    idx.put_server("ops", None, tools)
    for query in ("покажи все узлы", "ノードの一覧", "Zeig mir alle Knoten", "列出所有节点"):
        assert idx.search(query, 1)[0].key == ("ops", "list_nodes"), query
    for task in ("이 페이지를 다크 모드로 바꿔줘", "ページをダークモードで表示", "en modo oscuro"):
        assert {"dark", "mode"} <= set(LEXICON.tags(task)), task
    assert idx.search("прогноз погоды на завтра", 1)[0].key == ("ops", "get_forecast")
    # a two-word entry: one German word is both English words
    assert {"air", "qualiti"} <= set(LEXICON.tags("Wie ist die Luftqualität in München?"))
    weather = [
        {"name": "get_air_quality", "description": "Current air quality index for a city."},
        {"name": "get_current_weather", "description": "Current weather conditions for a city."},
    ]
    idx.put_server("weather", None, weather)
    assert idx.search("Wie ist die Luftqualität in München gerade?", 1)[0].key == (
        "weather",
        "get_air_quality",
    )
    # "memory" has no entry: RAM in other languages, and the name of a knowledge-graph server
    assert "memori" not in LEXICON.tags("что съедает память")
    # a kitchen's words: a recipe and its ingredients
    for task in ("fammi una tabella di marcia per la ricetta 52772", "Rezept für Lasagne", "レシピを探して"):
        assert "recip" in LEXICON.tags(task), task
    assert "ingredi" in LEXICON.tags("was kann ich mit diesen Zutaten kochen")
    # rain as a verb, a free slot and a route, as people ask for them
    for task in (
        "¿Va a llover mañana en Sevilla?",
        "Vai chover amanhã em Lisboa?",
        "Est-ce qu'il pleut à Lyon ?",
    ):
        assert "@weather" in LEXICON.tags(task), task
    assert "avail" in LEXICON.tags("我下周四下午有没有空档可以约个会")
    assert "rout" in LEXICON.tags("ルートも知りたい")


def test_everyday_words_in_other_languages_meet_the_tools_of_families_schools_and_landlords() -> None:
    tools = {
        "school": [
            {"name": "get_lunch_menu", "description": "The school lunch menu for a day."},
            {"name": "list_homework", "description": "Homework set for a class, with due dates."},
            {"name": "list_grades", "description": "A student's grades by subject."},
        ],
        "landlord": [
            {"name": "rent_roll", "description": "Rent due and paid per unit."},
            {"name": "list_tenants", "description": "Tenants and their contact details."},
        ],
        "garage": [{"name": "battery_status", "description": "The car battery's charge and health."}],
    }
    idx = index_of(tools)
    for query, tool in [
        ("Was gibt es morgen zum Mittagessen?", ("school", "get_lunch_menu")),
        ("明日の給食は何？", ("school", "get_lunch_menu")),  # noqa: RUF001 - a Japanese question mark
        ("¿Qué deberes tiene mi hijo para el viernes?", ("school", "list_homework")),
        ("Jakie oceny ma Zosia z matematyki?", ("school", "list_grades")),
        ("Quem ainda não pagou o aluguel deste mês?", ("landlord", "rent_roll")),
        ("Dammi il numero di telefono di tutti gli inquilini", ("landlord", "list_tenants")),
        ("Сколько осталось заряда в аккумуляторе?", ("garage", "battery_status")),
    ]:
        assert idx.search(query, 1)[0].key == tool, query
    # a form that is another everyday word elsewhere is left out: Spanish and Portuguese "nota" is
    # a note, Turkish "not" English, Russian "машина" a (virtual) machine, Spanish "hasta" until
    assert "grade" not in LEXICON.tags("todas las notas que etiqueté")
    assert "grade" not in LEXICON.tags("what did I not commit")
    assert "car" not in LEXICON.tags("перезапусти виртуальную машину")


def test_words_of_money_health_home_and_post_in_other_languages_meet_their_tools() -> None:
    tools = {
        "bank": [
            {"name": "list_transfers", "description": "Outgoing and incoming transfers of an account."},
            {"name": "list_cards", "description": "Payment cards of an account."},
        ],
        "pharmacy": [
            {"name": "renew_prescription", "description": "Ask the doctor to renew a prescription."},
            {"name": "find_store", "description": "The nearest store and its opening hours."},
        ],
        "home": [
            {"name": "set_thermostat", "description": "Set the thermostat's target temperature."},
            {"name": "sleep_summary", "description": "Last night's sleep: duration and phases."},
        ],
        "post": [{"name": "track_parcel", "description": "Where a parcel is, by its tracking number."}],
    }
    idx = index_of(tools)
    for query, tool in [
        ("Montre-moi les virements de la semaine dernière", ("bank", "list_transfers")),
        ("処方箋をもう一度出してもらえますか", ("pharmacy", "renew_prescription")),
        ("Где сейчас моя посылка RB123456789CN?", ("post", "track_parcel")),
        ("Stell den Thermostat im Wohnzimmer auf 21 Grad", ("home", "set_thermostat")),
        ("¿Cuántas horas de sueño tuve anoche?", ("home", "sleep_summary")),
    ]:
        assert idx.search(query, 1)[0].key == tool, query


def test_a_german_compound_is_read_by_the_glossary_words_inside_it() -> None:
    # German writes "sales tax rates" and "customer invoices" as one word each
    assert "tax" in LEXICON.compound_parts("umsatzsteuersatze")
    assert {"custom", "invoic"} <= set(LEXICON.compound_parts("kundenrechnungen"))
    tools = [
        {"name": "list_tax_rates", "description": "List the tax rates of the organisation."},
        {"name": "list_invoices", "description": "List invoices, filtered by contact or status."},
        {"name": "list_accounts", "description": "List the chart of accounts."},
    ]
    idx = SearchIndex()
    idx.put_server("books", None, tools)
    assert idx.search("Welche Umsatzsteuersätze sind hinterlegt?", 1)[0].key == ("books", "list_tax_rates")
    assert idx.search("Zeig mir die Kundenrechnungen", 1)[0].key == ("books", "list_invoices")
    # German forms that make up less than half a word do not read it: "regeneration" holds Regen
    # (rain), "mathematics" Thema (topic)
    assert LEXICON.compound_parts("regeneration") == [] and LEXICON.compound_parts("mathematics") == []
    assert "rain" not in dict(idx.query_terms("regenerate the API key"))
    # a form with several English words keeps them all: Antwort is answer and reply
    assert {"answer", "repli"} <= set(LEXICON.compound_forms.get("antwort", ()))


def test_no_glossary_form_reads_as_a_common_english_word() -> None:
    # a form spelled like an English word once folded and stemmed would be read as English
    table = gzip.decompress(NEIGHBOURS_FILE.read_bytes()).decode()
    english = {stem(line.split(" ", 1)[0]) for line in table.splitlines()}
    clashes = []
    for word, languages in GLOSSARY.items():
        for lang, forms in languages.items():
            for form in forms.split():
                parts = [stem(w) for w in words(form.replace("+", " "))]  # as the lexicon reads it
                if len(parts) == 1 and not is_cjk(form[0]) and parts[0] in english:
                    clashes.append((word, lang, form))
    assert not clashes


def test_no_glossary_form_reads_as_another_word_the_catalogs_use() -> None:
    # Italian "pagine" stemmed as "pagin" (pagination, in hundreds of tools) and Polish "modeli" as
    # "mode": a form read as an English word of the tool texts must mean that word
    same_meaning = {("priority", "priorit"), ("chunk", "fragment")}
    used: dict[str, int] = {}
    for server in load_evalset().values():
        for tool in server["tools"]:
            text = f"{tool['name']} {tool.get('description') or ''}".lower()
            for s in {stem(w) for w in words(text) if w.isascii() and w.isalpha()}:
                used[s] = used.get(s, 0) + 1
    clashes = []
    for word, languages in GLOSSARY.items():
        for lang, forms in languages.items():
            for form in forms.split():
                parts = [stem(w) for w in words(form.replace("+", " "))]
                if len(parts) != 1 or is_cjk(form[0]) or parts[0] == stem(word):
                    continue
                if used.get(parts[0], 0) >= 2 and (word, parts[0]) not in same_meaning:
                    clashes.append((word, lang, form, parts[0]))
    assert not clashes


def test_rain_is_not_waiting_in_russian() -> None:
    # "дождись" (wait for it) stemmed like "дождь" (rain): the form was dropped from @wait
    assert "@wait" not in LEXICON.tags("будет ли завтра дождь в Москве")
    assert "@wait" in LEXICON.tags("подожди, пока под поднимется")


def test_a_sentry_short_id_is_an_issue_key_not_words() -> None:
    # CHECKOUT-1A2 is an issue of the CHECKOUT project, not a git checkout
    text, tags = strip_patterns("mark sentry issue CHECKOUT-1A2 as resolved")
    assert "CHECKOUT" not in text and tags == ["@issue"]
    assert strip_patterns("move PROJ-88 to done")[1] == ["@issue"]
    assert strip_patterns("send the X-AUTH header")[1] == []  # no digit: a word


def test_an_item_code_is_no_issue_key() -> None:
    # a part of a longer code (a bill of materials, a SKU) or a zero-padded number is an item's
    # code: read as a ticket it pulled a service desk's queue ahead of the work order asked for
    for task in ("schedule a production run off BOM-DESK-0003", "restock SKU-2024-RED", "count ITEM-00042"):
        assert "@issue" not in strip_patterns(task)[1], task
    assert strip_patterns("is OPS-88 (the outage) still open?")[1] == ["@issue"]
    # a Sentry project's name may have dashes of its own
    assert strip_patterns("resolve JAVASCRIPT-REACT-3F in sentry")[1] == ["@issue"]


def test_a_dotfile_is_a_file_name() -> None:
    for task in ("fix the indentation in .gitlab-ci.yml", "add a rule to .eslintrc.json"):
        text, tags = strip_patterns(task)
        assert tags == ["@file"] and "gitlab" not in text and "eslintrc" not in text, task
    assert strip_patterns("delete every .*.swp under src")[1] == ["@file"]


def test_an_sql_statement_is_an_sql_query_not_its_tables_and_columns() -> None:
    # its words are data: "events", "count", "date" pulled toward calendar and metrics tools
    text, tags = strip_patterns("clickhouse: SELECT count() FROM events WHERE event_date = today()")
    assert text.split() == ["clickhouse:", "sql", "query"] and tags == ["@database"]
    # it ends where the prose takes over again
    assert strip_patterns("run SELECT count(*) FROM orders on the neon db")[0].split() == [
        "run", "sql", "query", "on", "the", "neon", "db",
    ]  # fmt: skip
    assert strip_patterns("UPDATE users SET plan = 'pro' WHERE id = 7; then tell me")[0].split()[:2] == [
        "sql",
        "query",
    ]
    # English, not SQL
    for prose in ("select the ten newest orders from the sqlite db", "please SELECT the best option"):
        assert strip_patterns(prose) == (prose, [])
    assert plain_literals("run DELETE FROM sessions WHERE expired") == "run sql query"
    # in lower case, when the select list is no sentence's
    for sql in (
        "select count(*) from analytics.fct_orders",
        "select * from orders",
        "select id, email from users",
    ):
        assert strip_patterns(f"check: {sql} where x = 1")[0].split() == ["check:", "sql", "query"]
    for prose in ("select all rows from the sheet", "select one from these options"):
        assert strip_patterns(prose) == (prose, [])


def test_a_javascript_expression_asks_to_run_javascript() -> None:
    # "document" would find document tools, and "title" or "querySelectorAll" are no task words
    assert strip_patterns("run document.title in the page")[0].split() == [
        "run",
        "javascript",
        "in",
        "the",
        "page",
    ]
    text = strip_patterns("run document.querySelectorAll('a[href^=\"http\"]').length in the current tab")[0]
    assert text.split() == ["run", "javascript", "in", "the", "current", "tab"]
    assert plain_literals("read window.localStorage.getItem('token')") == "read javascript code"
    assert "javascript" not in strip_patterns("attach document.pdf to the ticket")[0]  # a file


def test_a_code_name_in_camel_case_is_dictated() -> None:
    # a name in the user's code is data: its words weigh as dictated text; the name whole stays
    # a word, which a parameter of that name meets (requestId)
    assert strip_patterns("replace oldApiUrl with newApiUrl")[0].split() == [
        "replace", "oldapiurl", '"oldApiUrl"', "with", "newapiurl", '"newApiUrl"',
    ]  # fmt: skip
    for brand in ("test it on an iPhone", "arXiv 2310.06770", "macOS and iOS"):
        assert '"' not in strip_patterns(brand)[0], brand
    asked, said = dictated(strip_patterns("how does useMutation work")[0])
    assert "useMutation" in said and "usemutation" in asked.split()
    idx = index_of(
        {
            "docs": [
                {"name": "get_status", "description": "Status of a request.", "inputSchema": {
                    "type": "object", "properties": {"requestId": {"type": "string"}}}},
                {"name": "insert_rows", "description": "Insert rows and get a request back."},
            ]
        }
    )  # fmt: skip
    assert idx.search("got requestId 9f8e7d, has it landed?", 1)[0].key == ("docs", "get_status")


def test_an_http_call_is_an_api_request() -> None:
    assert strip_patterns("run GET _cat/shards?v against ES")[0].split() == [
        "run",
        "api",
        "request",
        "against",
        "ES",
    ]
    assert strip_patterns("POST https://api.x.io/v1/orders with it")[0].split()[:2] == ["api", "request"]
    assert "api" not in strip_patterns("get /tmp/x please")[0]  # the method in capitals only


def test_a_glob_is_a_file_pattern() -> None:
    for task in (
        "find all *.env.example files in the checkout",
        "list **/*.ts under src",
        "grep TODO in *.py",
    ):
        text, tags = strip_patterns(task)
        assert "pattern" in text.split() and "env" not in text and tags == ["@file"], task
    assert strip_patterns("5 * 3.5 = ?")[1] == []  # arithmetic


def test_a_metric_name_is_a_metric_and_promql_a_promql_query() -> None:
    assert strip_patterns("is node_memory_MemAvailable_bytes a gauge?")[0].split() == [
        "is",
        "metric",
        "a",
        "gauge?",
    ]
    text = strip_patterns(
        "p99? histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket[5m])) by (le))"
    )[0]
    assert text.split() == ["p99?", "promql", "query"]
    # a Terraform resource or a tool's name is no metric; "rate" alone is a word
    for text in ("args for aws_s3_bucket", "call get_file_info", "rate limit the api"):
        assert "metric" not in strip_patterns(text)[0] and "promql" not in strip_patterns(text)[0], text


def test_an_emoji_is_an_emoji_and_coordinates_are_a_place() -> None:
    # a shortcode's name ("eyes", "white check mark") is not what the task is about
    for task in ("drop an :eyes: on Priya's message", "react with :+1: to it", "put a 👍 on the post"):
        text, _ = strip_patterns(task)
        assert "emoji" in text.split() and "eyes" not in text, task
    assert strip_patterns("swap port: 8080 for port: 9090")[0].split() == ["swap", "port:", "for", "port:"]
    # given coordinates, a task wants what they are: a geocoder's reverse lookup
    text, tags = strip_patterns("what street address is at 40.7484,-73.9857.")
    assert text.split()[-3:] == ["coordinates", "reverse", "."] and tags == ["@location"]
    assert strip_patterns("좌표 37.5665, 126.9780이 어느 주소인지")[0].split()[:3] == [
        "좌표",
        "coordinates",
        "reverse",
    ]
    assert plain_literals("what is at 52.5163, 13.3777?") == "what is at coordinates ?"
    assert strip_patterns("bump it from 1.2 to 1.3")[1] == []  # version numbers: no place
    # a point to search around or between, or one a place's name is given with, is not asked
    # to be named: "reverse" would pull every such task to the reverse geocoder
    for task in ("fast chargers near 51.5072,-0.1276", "schools within 1 km of 47.3769, 8.5417",
                 "meet between Kreuzberg (52.4986,13.4030) and Mitte (52.5200,13.4050)",
                 "渋谷駅\uff0835.6580, 139.7016\uff09の近くの駐車場"):  # fmt: skip
        text, tags = strip_patterns(task)
        assert "coordinates" in text.split() and "reverse" not in text.split() and "@location" in tags, task
    # ... but an address asked of a point, in parentheses or after "of" or "to", is a reverse lookup
    for task in ("what address is at (40.7484, -73.9857)?", "what is the address of 40.7484,-73.9857",
                 "nearest street address to 40.7484,-73.9857"):  # fmt: skip
        assert "reverse" in strip_patterns(task)[0].split(), task


def test_coordinates_find_the_reverse_geocoder_first() -> None:
    evalset = load_evalset()
    idx = index_of({name: server["tools"] for name, server in evalset.items()})
    for task in (
        "what street address is at 48.8584, 2.2945",
        "좌표 37.5665, 126.9780이 어느 주소인지 알려줘",
    ):
        assert idx.search(task, 1)[0].key == ("google-maps", "maps_reverse_geocode"), task
    assert idx.search("geocode 1600 Amphitheatre Parkway, Mountain View", 1)[0].key == (
        "google-maps",
        "maps_geocode",
    )
    # longitude first, as GeoJSON and AMap write them; two prices are no point
    assert strip_patterns("the street address at 116.481488,39.990464")[0].split()[-2:] == [
        "coordinates",
        "reverse",
    ]
    assert "coordinates" not in strip_patterns("costs 100.50, 200.75 and 300.25")[0]
    # a place's lat/long asked for: coordinates to be found (a pair would keep only "lat")
    assert strip_patterns("lat/lng of Paris")[0].split() == ["coordinates", "of", "Paris"]
    for task in ("lat/long for 10 Downing Street", "latitude and longitude of the Louvre, Paris"):
        assert idx.search(task, 1)[0].key == ("google-maps", "maps_geocode"), task


def test_a_chat_channel_is_where_a_message_goes_not_what_it_is_about() -> None:
    for task in ("post 'deploy done' in #releases", "what's new in #bug-reports?", "#Incidents: any news"):
        text, _ = strip_patterns(task)
        assert "channel" in text.split() and "release" not in text and "incident" not in text.lower(), task
    # a note's tag, an issue number and a heading are not channels
    assert "recipe" in strip_patterns("every note I tagged #recipe")[0]
    assert "channel" not in strip_patterns("close #301 and read # Title, tags #project/alpha")[0]
    assert plain_literals("summarise #incidents today") == "summarise channel today"


def test_a_schema_that_refers_to_itself_through_variants_is_indexed() -> None:
    # A is oneOf B and B is allOf A: followed without a bound, the walk never ends
    schema = {
        "$defs": {
            "A": {"oneOf": [{"$ref": "#/$defs/B"}], "properties": {"alpha": {"description": "first letter"}}},
            "B": {"allOf": [{"$ref": "#/$defs/A"}, {"anyOf": [{"$ref": "#/$defs/B"}]}]},
        },
        "$ref": "#/$defs/A",
    }
    idx = SearchIndex()
    idx.put_server("s", None, [{"name": "spell", "description": "Spell a word.", "inputSchema": schema}])
    assert idx.search("the first letter", 1)[0].key == ("s", "spell")


def test_a_product_name_in_pascal_case_is_one_name_before_its_parts() -> None:
    # "WordPress" split into word + press met a browser's press_key as strongly as the shop's
    # tools; in a task the whole name is what is meant, its parts count for less
    terms = dict(SearchIndex().query_terms("a 20% VAT rate for France on the WordPress shop"))
    assert terms["wordpress"] == 1.0
    assert 0 < terms["press"] < 0.5 and 0 < terms["word"] < 0.5
    idx = index_of(
        {
            "browser": [{"name": "browser_press_key", "description": "Press a key on the keyboard."}],
            "shop": [{"name": "tax_rates_create", "description": "Create a tax rate for a WordPress shop."}],
        }
    )
    assert idx.search("we need a 20% standard VAT rate for France on the WordPress shop", 1)[0].key == (
        "shop",
        "tax_rates_create",
    )
    # an identifier that starts lower case (a tool or field name) is no product name: its parts
    # keep the weight they had (that of dictated text)
    code = dict(SearchIndex().query_terms("call getPullRequestFiles"))
    assert code["pull"] == code["request"] == code["file"] == 0.3


def test_common_business_abbreviations_read_as_their_words() -> None:
    terms = dict(SearchIndex().query_terms("read me the CV this candidate uploaded"))
    assert "resum" in terms  # cv -> resume
    assert {"one", "time", "password"} <= set(dict(SearchIndex().query_terms("has bob set up OTP?")))
    idx = index_of(
        {
            "ats": [
                {"name": "get_resume", "description": "Get the resume a candidate uploaded."},
                {"name": "get_candidate", "description": "Get a candidate's profile."},
            ]
        }
    )
    assert idx.search("read me the CV this candidate uploaded", 1)[0].key == ("ats", "get_resume")
    # the glossary's CV forms read as both words: a task in Russian meets the tool that says resume
    assert "resum" in dict(SearchIndex().query_terms("покажи резюме кандидата"))
    assert idx.search("покажи резюме кандидата", 1)[0].key == ("ats", "get_resume")


def test_a_wiki_link_is_a_link_to_a_page_not_the_pages_subject() -> None:
    text, tags = strip_patterns("which of my notes reference [[Kubernetes]]?")
    assert "@link" in tags and 'page link "Kubernetes"' in text
    idx = index_of(
        {
            "notes": [
                {"name": "get_page_backlinks", "description": "Get the pages that link to a page."},
                {"name": "get_page", "description": "Get a page of the graph by its name."},
            ],
            "kubernetes": [
                {"name": "kubectl_get", "description": "Get Kubernetes resources."},
                {"name": "kubectl_describe", "description": "Describe a Kubernetes resource."},
            ],
        }
    )
    assert idx.search("which of my notes reference [[Kubernetes]]?", 1)[0].key == (
        "notes",
        "get_page_backlinks",
    )


def test_a1_notation_is_a_cell_range_not_words() -> None:
    assert strip_patterns("pull A1:D20 from Summary")[0].split() == ["pull", "cell", "range", "from", "Summary"]  # fmt: skip
    assert "cell range" in strip_patterns("sum Sheet1!B2:B200 please")[0]
    assert "cell range" in strip_patterns("chart columns A:B")[0]
    # a clock time, a ratio or a word pair is no range
    for text in ("meet at 10:30", "a 3:2 ratio", "TODO:DONE"):
        assert "cell range" not in strip_patterns(text)[0]
    terms = dict(SearchIndex().query_terms("make A1:D1 bold"))
    assert "a1" not in terms and "d1" not in terms and "cell" in terms


def test_consumer_app_words_meet_the_tools_that_use_other_words() -> None:
    """Feeds, players and exchanges name their tools in their own jargon (reblog, queue, OHLCV):
    a task in everyday words (boost, lined up, candles) still finds them."""
    idx = index_of(
        {
            "social": [
                {"name": "status_reblog", "description": "Reblog a status."},
                {"name": "status_favourite", "description": "Favourite a status."},
                {"name": "account_mute", "description": "Mute an account."},
                {"name": "account_follow", "description": "Follow an account."},
                {"name": "status_context", "description": "Get the ancestors and descendants of a status."},
            ],
            "player": [
                {"name": "get_queue", "description": "Get the user's queue."},
                {"name": "set_repeat", "description": "Set the repeat mode."},
                {"name": "play", "description": "Start or resume playback."},
                {"name": "get_recently_played", "description": "Get recently played tracks."},
            ],
            "exchange": [
                {"name": "get-ohlcv", "description": "Get OHLCV data for a symbol."},
                {"name": "get-ticker", "description": "Get the ticker of a symbol."},
                {"name": "get-trades", "description": "Get recent trades of a symbol."},
            ],
        }
    )
    for task, tool in [
        ("boost that post, it deserves more eyes", ("social", "status_reblog")),
        ("I don't want to see posts from this account for a while, silence them", ("social", "account_mute")),
        ("show me what's lined up after this song", ("player", "get_queue")),
        ("which songs are up next?", ("player", "get_queue")),
        ("put this song on loop", ("player", "set_repeat")),
        ("Pon la canción en bucle", ("player", "set_repeat")),
        ("daily candles for BTC/USDT over the last month", ("exchange", "get-ohlcv")),
    ]:
        assert idx.search(task, 1)[0].key == tool, task


def test_everyday_words_for_weather_parcels_bookmarks_reminders_and_baskets() -> None:
    idx = index_of(
        {
            "weather": [
                {"name": "get_forecast", "description": "Get the forecast for a location."},
                {"name": "get_alerts", "description": "Get alerts for a US state."},
            ],
            "shop": [
                {"name": "track_shipment", "description": "Track a shipment by its number."},
                {"name": "get_cart", "description": "Get the cart."},
                {"name": "list_orders", "description": "List orders."},
            ],
            "reader": [
                {"name": "add_bookmark", "description": "Add a bookmark."},
                {"name": "archive_item", "description": "Archive an item."},
                {"name": "create_reminder", "description": "Create a reminder."},
            ],
        }
    )
    for task, tool in [
        ("will it rain in Lyon tomorrow?", "get_forecast"),
        ("Wird es morgen in Köln regnen?", "get_forecast"),
        ("save this article to read later", "add_bookmark"),
        ("nudge me at 5pm to call mom", "create_reminder"),
        ("what's in my basket right now", "get_cart"),
    ]:
        assert idx.search(task, 1)[0].key[1] == tool, task


def test_versus_compares_and_german_lager_is_a_warehouse() -> None:
    idx = index_of(
        {
            "erp": [
                {"name": "warehouse_list", "description": "List warehouses."},
                {"name": "item_list", "description": "List items."},
            ],
            "seo": [
                {"name": "analytics_query", "description": "Query search analytics for a site."},
                {
                    "name": "analytics_compare",
                    "description": "Compare search analytics between two date ranges.",
                },
            ],
        }
    )
    assert idx.search("clicks in October vs September", 1)[0].key[1] == "analytics_compare"
    assert idx.search("Zeig mir alle Lagerorte der Firma", 1)[0].key[1] == "warehouse_list"


@pytest.mark.parametrize(
    "unit",
    [
        "a.",
        "1.",
        "-_.",
        "@@",
        "a@",
        "*-",
        "a-1",
        "x/",
        "1/",
        "1,",
        "Jan 1 ",
        "1-",
        "$1.",
        "* ",
        "C(=",
        "1-2-",
        "978",
        "p/",
        "USD/",
        "EURUSD",
        ".ai ",
        "1% ",
        "1.1%",
        "1 000 ",
        "5 USD in ",
        "per 100 g ",
    ],
)
def test_reading_a_hostile_query_grows_linearly_with_its_length(unit: str) -> None:
    # a pattern that may start inside a run it can match (a file name at every "a." of
    # "a.a.a.a...") rescans the run from each start: 1,000 characters took 50 ms, four times as
    # long sixteen times as long. Now each pattern starts only where a token does.
    # the best of nine runs of each, interleaved, in this thread's CPU time (a busy machine takes
    # the core away, which wall time would count); sixteen times the length keeps the two far
    # apart (linear ~16 times, quadratic ~256) when load from the other test worker slows one
    # run more than the other
    texts = [(unit * length)[:length] for length in (250, 4000)]
    best = [math.inf, math.inf]
    for _ in range(9):
        for i, text in enumerate(texts):
            started = time.thread_time()
            strip_patterns(text)
            best[i] = min(best[i], (time.thread_time() - started) * 1000)
    short, long = best
    assert long < max(48 * short, 12.0), (short, long)


def test_kitchen_words_meet_pantry_and_recipe_tools() -> None:
    """A kitchen's words (instead of, past its date, running low, grocery list) reach tools
    that say substitution, expiring, minimum stock and shopping list."""
    idx = index_of(
        {
            "recipes": [
                {"name": "recipe_get", "description": "Get a recipe by its id."},
                {
                    "name": "recipe_substitute",
                    "description": "Ingredient substitutions with adjusted amounts.",
                },
                {"name": "recipe_scale", "description": "Scale a recipe to a number of servings."},
            ],
            "pantry": [
                {"name": "stock_list", "description": "List the products in stock."},
                {"name": "stock_expiring", "description": "List products expiring soon or expired."},
                {
                    "name": "shopping_list_add_missing",
                    "description": "Add products below their minimum stock level.",
                },
                {"name": "shopping_list_get", "description": "Get the shopping list."},
            ],
        }
    )
    for task, tool in [
        ("out of buttermilk for pancakes, what can I use instead?", ("recipes", "recipe_substitute")),
        ("what in the fridge is past its date?", ("pantry", "stock_expiring")),
        ("put whatever we're running low on in the basket", ("pantry", "shopping_list_add_missing")),
        ("what's on the grocery list?", ("pantry", "shopping_list_get")),
    ]:
        assert idx.search(task, 1)[0].key == tool, task


def test_go_navigates_only_to_or_back() -> None:
    # "go ahead and buy the label", "about to go off": no browser's back button
    assert "@navigate" not in LEXICON.tags("go ahead and buy the label for that rate")
    assert "@navigate" not in LEXICON.tags("what in the fridge is about to go off")
    assert "@navigate" in LEXICON.tags("go to the pricing page")
    assert "@navigate" in LEXICON.tags("go back one page")
    assert "@navigate" in LEXICON.tags("go forward again") and "@navigate" in LEXICON.tags("go home")
    # and the kitchen's words stay in the kitchen
    assert "@expire" not in LEXICON.tags("which process is in use by port 8080")
    assert "@low_stock" not in LEXICON.tags("low on memory alerts for the db hosts")


def test_now_says_when_not_what() -> None:
    # "right now" asks for the current state; a tool titled "Run monitor now" is no better for it
    idx = SearchIndex()
    idx.put_server(
        "crawler",
        None,
        [
            {
                "name": "monitor_run",
                "title": "Run monitor now",
                "description": "Trigger a monitor check immediately.",
            }
        ],
    )
    idx.put_server(
        "paging", None, [{"name": "get_current_oncall_users", "description": "Users on call in a schedule."}]
    )
    assert idx.search("who is on call right now for the payments rotation", 1)[0].key[0] == "paging"
    assert "now" not in {term for term, _ in idx.query_terms("what time is it now")}
    assert "@time" in {term for term, _ in idx.query_terms("what time is it now")}


def test_an_ip_address_names_a_host_and_a_port_with_its_protocol_a_port() -> None:
    assert strip_patterns("what is wrong with the box at 10.0.4.12?")[0].split() == [
        "what", "is", "wrong", "with", "the", "box", "at", "ip", "address", "?",
    ]  # fmt: skip
    assert strip_patterns("open 5432/tcp for 10.0.20.0/24")[0].split() == [
        "open",
        "port",
        "for",
        "ip",
        "address",
    ]
    assert "ip" not in strip_patterns("upgrade to v1.2.3.4 or 1.2.3.4.5")[0]
    idx = SearchIndex()
    idx.put_server(
        "hosting",
        None,
        [
            {"name": "diagnose_server", "description": "Find what is wrong with a server by its IP address."},
            {"name": "list_projects", "description": "List the projects of the account."},
        ],
    )
    idx.put_server(
        "tracker", None, [{"name": "get_issue", "description": "What is wrong: an issue and its box."}]
    )
    assert idx.search("something is off with the box at 10.0.4.12", 1)[0].key == (
        "hosting",
        "diagnose_server",
    )


def test_a_tool_that_takes_nothing_cannot_be_given_the_tasks_value() -> None:
    # "close 4512" gives a ticket's number: a browser's close, which takes no input, cannot act on it
    idx = SearchIndex()
    idx.put_server("browser", None, [{"name": "browser_close", "description": "Close the page."}])
    idx.put_server(
        "helpdesk",
        None,
        [
            {
                "name": "update_ticket",
                "description": "Update a ticket: close or reopen it, or change its owner.",
                "inputSchema": {"type": "object", "properties": {"ticket_id": {"type": "integer"}}},
            }
        ],
    )
    assert idx.search("close 4512", 1)[0].key == ("helpdesk", "update_ticket")
    assert idx.search("close the page", 1)[0].key == ("browser", "browser_close")
    without = SearchIndex(weights=Weights(no_input=0.0))
    without.put_server("browser", None, [{"name": "browser_close", "description": "Close the page."}])
    without.put_server(
        "helpdesk",
        None,
        [
            {
                "name": "update_ticket",
                "description": "Update a ticket: close or reopen it, or change its owner.",
                "inputSchema": {"type": "object", "properties": {"ticket_id": {"type": "integer"}}},
            }
        ],
    )
    assert without.search("close 4512", 1)[0].key == ("browser", "browser_close")  # the rule is what decides
    # parameters behind a $ref (a pydantic model) are parameters: such a tool takes a value
    behind = {
        "$ref": "#/$defs/Args",
        "$defs": {"Args": {"type": "object", "properties": {"id": {"type": "integer"}}}},
    }
    both = SearchIndex()
    both.put_server(
        "a", None, [{"name": "close_ticket", "description": "Close a ticket.", "inputSchema": behind}]
    )
    both.put_server("b", None, [{"name": "close_ticket", "description": "Close a ticket."}])
    hits = both.search("close ticket 4512", 2)
    assert hits[0].key[0] == "a" and hits[1].score == pytest.approx(hits[0].score * (1 - Weights().no_input))


def test_a_tools_read_only_hint_says_whether_it_writes_when_its_name_does_not() -> None:
    # neither name starts with a verb: the annotations tell a question's tool from a change's
    def scores(hinted: bool, task: str) -> dict[str, float]:
        idx = SearchIndex()
        idx.put_server(
            "billing",
            None,
            [
                {
                    "name": "subscription_plan_change",
                    "description": "The plan of a subscription: moves it to another plan.",
                    "annotations": {"readOnlyHint": False} if hinted else {},
                },
                {
                    "name": "subscription_plan_details",
                    "description": "The plan of a subscription and its price.",
                    "annotations": {"readOnlyHint": True} if hinted else {},
                },
            ],
        )
        return {hit.key[1]: hit.score for hit in idx.search(task, 2)}

    w = Weights()
    question, change = "which plan is subscription 88 on?", "move subscription 88 to the annual plan"
    plain, hinted = scores(False, question), scores(True, question)
    assert hinted["subscription_plan_change"] == pytest.approx(
        plain["subscription_plan_change"] * (1 - w.question_write)
    )
    assert hinted["subscription_plan_details"] == pytest.approx(plain["subscription_plan_details"])
    assert max(hinted, key=hinted.__getitem__) == "subscription_plan_details"
    plain, hinted = scores(False, change), scores(True, change)
    assert hinted["subscription_plan_details"] == pytest.approx(
        plain["subscription_plan_details"] * (1 - w.change_read)
    )
    assert hinted["subscription_plan_change"] == pytest.approx(plain["subscription_plan_change"])


def test_music_home_leave_and_rerun_words_meet_the_tools_that_use_other_words() -> None:
    """A band is an artist and a song a track, "sounds like" asks for similar, "most popular" for
    the top; a lamp is dimmed by a light's brightness, heating is a thermostat's setpoint; a
    vacation is time off; to rerun is to restart."""
    idx = index_of(
        {
            "music": [
                {"name": "artist_similar", "description": "Get artists similar to an artist."},
                {"name": "artist_top_tracks", "description": "Top tracks of an artist by listeners."},
                {"name": "artist_info", "description": "Biography and tags of an artist."},
                {"name": "track_search", "description": "Search tracks by title."},
                {"name": "user_recent", "description": "Recently scrobbled tracks of a user."},
            ],
            "home": [
                {"name": "set_level", "description": "Set the brightness level of a dimmable light."},
                {"name": "set_setpoint", "description": "Set a thermostat's target temperature."},
                {"name": "toggle_switch", "description": "Turn a switch device on or off."},
                {"name": "get_devices", "description": "List devices and their state."},
            ],
            "people": [
                {"name": "timeoff_requests", "description": "List time off requests of an employee."},
                {"name": "employee_search", "description": "Search employees by name or department."},
                {"name": "list_goals", "description": "List goals of an employee."},
            ],
            "ci": [
                {"name": "restart_build", "description": "Restart a build of a repository."},
                {"name": "get_build", "description": "Get a build of a repository."},
                {"name": "cancel_build", "description": "Cancel a running build."},
            ],
        }
    )
    for task, tool in [
        ("any bands like Portishead?", "artist_similar"),
        ("which songs by Björk are played most", "artist_top_tracks"),
        ("dim the hallway lamp to 40%", "set_level"),
        ("the heating in the office should be at 21", "set_setpoint"),
        ("has Dana booked any vacation in March?", "timeoff_requests"),
        ("rerun build 88 of the api repo", "restart_build"),
    ]:
        assert idx.search(task, 1)[0].key[1] == tool, task


def test_a_sum_of_money_asks_about_a_price_or_an_amount() -> None:
    """$5.50, €89,90 and 200 USD are read as a price or an amount, whatever their digits; a
    comparison with a sum ("over $500") stays a filter."""
    for task in ["the latte goes from $5.25 to $5.50", "I paid €89,90 for it", "send 200 USD to Ann"]:
        kept = strip_patterns(task)[0].split()
        assert "price" in kept and "amount" in kept, (task, kept)
        assert not any(ch.isdigit() for ch in "".join(kept)), kept
    assert "price" not in strip_patterns("orders over $500")[0]
    assert "price" not in strip_patterns("version 2.5 of the app")[0]
    idx = index_of(
        {
            "shop": [
                {"name": "update_item", "description": "Change an item's price in cents."},
                {"name": "get_item", "description": "Get an item by its id."},
                {"name": "rename_item", "description": "Change an item's name."},
            ]
        }
    )
    assert idx.search("oat latte (item 7741) is $5.50 from today", 1)[0].key[1] == "update_item"


def test_scrap_turn_into_run_out_a_carrier_and_security_short_forms() -> None:
    """To scrap is to delete, to turn a lead into a deal converts it, what is running out is low
    stock, DHL names a shipment, who is clocked in is on a shift, to pull back what was sent
    withdraws it, users who came back are retained; vuln and pentest are a vulnerability and a
    penetration test."""
    idx = index_of(
        {
            "crm": [
                {"name": "convert_lead", "description": "Convert a lead to a deal."},
                {"name": "withdraw_offer", "description": "Withdraw an offer sent to a candidate."},
                {"name": "send_offer", "description": "Send an offer to a candidate."},
                {"name": "update_offer", "description": "Update an offer's terms."},
                {"name": "retention_report", "description": "Retention of users by signup cohort."},
                {"name": "signup_report", "description": "Users who signed up, by week."},
                {"name": "get_lead", "description": "Get a lead."},
                {"name": "delete_task", "description": "Delete a task."},
                {"name": "update_task", "description": "Update a task."},
            ],
            "store": [
                {"name": "low_stock_items", "description": "Items whose stock is below the minimum."},
                {"name": "list_items", "description": "List the items for sale."},
                {"name": "book_pickup", "description": "Book a courier to pick up shipments."},
                {"name": "active_shifts", "description": "Shifts of employees now open."},
                {"name": "register_attendee", "description": "Register a person for an event."},
                {"name": "get_register", "description": "Get a cash register (a device at the counter)."},
            ],
            "appsec": [
                {"name": "list_vulnerabilities", "description": "List vulnerabilities of a product."},
                {"name": "create_engagement", "description": "Plan a penetration test of a product."},
                {"name": "list_products", "description": "List products."},
            ],
        }
    )
    for task, tool in [
        ("scrap task 1182, the client cancelled", "delete_task"),
        ("turn lead 8812 into an opportunity", "convert_lead"),
        ("which items will run out soon?", "low_stock_items"),
        ("have DHL come by for the two boxes tomorrow", "book_pickup"),
        ("open vulns on product 31", "list_vulnerabilities"),
        ("set up a pentest for product 31 in January", "create_engagement"),
        ("who has clocked in at the register today?", "active_shifts"),
        ("pull back the offer we sent Marco, the salary changed", "withdraw_offer"),
        ("how many of the people who joined in May came back in their second week?", "retention_report"),
    ]:
        assert idx.search(task, 1)[0].key[1] == tool, task


def test_a_name_s_code_boilerplate_says_nothing() -> None:
    # FastMCP servers whose functions end in _tool or _tool_wrapper, APIs versioned in the name:
    # the suffix is the code's, and its rare words diluted how much of the name a task covers
    same = {"description": "Update the custom data of a contact."}
    idx = index_of(
        {
            "mailer": [{"name": "update_contact_data_tool_wrapper", **same}],
            "crm": [{"name": "update_contact_data", **same}],
            "api": [{"name": "update-contact-data-v2", **same}],
        }
    )
    hits = idx.search("update the custom data of contact c_81Zq", 3)
    assert len(hits) == 3
    assert max(h.score for h in hits) - min(h.score for h in hits) < 1e-9, hits


def test_a_time_that_comes_back_is_a_schedule() -> None:
    relay = index_of(
        {
            "relay": [
                {
                    "name": "schedule_create",
                    "description": "Create a schedule that runs an action at set times.",
                },
                {"name": "switch_set", "description": "Turn a switch output on or off."},
                {"name": "switch_toggle", "description": "Toggle a switch output."},
            ]
        }
    )
    assert relay.search("every weekday at sunset switch on the porch relay", 1)[0].key[1] == "schedule_create"
    # (with "turn on", which this toy switch's description says, the switch comes first since the
    # name's coverage weighs less, 2026-12-06)
    assert relay.search("switch on the porch relay every morning at 7", 1)[0].key[1] == "schedule_create"
    assert relay.search("switch on the porch relay", 1)[0].key[1] == "switch_set"
    idx = index_of(
        {
            "library": [
                {"name": "list_trash", "description": "List the items in the trash."},
                {"name": "get_item", "description": "Get one item of the library."},
            ],
            "billing": [
                {"name": "list_time_entries_for_user", "description": "Time entries of one user."},
                {"name": "get_user", "description": "Get one user."},
            ],
        }
    )
    for task, tool in [
        ("I binned the attention paper last week, where is it now?", "list_trash"),
        ("pull every hour logged by associate user 212", "list_time_entries_for_user"),
    ]:
        assert idx.search(task, 1)[0].key[1] == tool, task


def test_shutters_and_blinds_are_what_a_smart_home_calls_a_cover() -> None:
    idx = index_of(
        {
            "home": [
                {"name": "cover_move", "description": "Move a cover to a position (0-100)."},
                {"name": "light_set", "description": "Set a light on or off, with its brightness."},
                {"name": "switch_set", "description": "Turn a switch on or off."},
            ],
            "browser": [{"name": "browser_close", "description": "Close the page."}],
        }
    )
    for task in [
        "lower the living room shutters to 50%",
        "the bedroom blinds should be half open",
        "Rollläden im Wohnzimmer auf 50 %",
    ]:
        assert idx.search(task, 1)[0].key[1] == "cover_move", task
    # and a gadget or an appliance is a device
    home = index_of(
        {
            "home": [
                {"name": "discover", "description": "Find new devices on the local network."},
                {"name": "get_config", "description": "Get the configuration."},
                {"name": "list_network_interfaces", "description": "List the network interfaces."},
            ]
        }
    )
    assert home.search("which appliances are on the network", 1)[0].key[1] == "discover"


# values a task writes that are no words, read as what they are (2026-12-06): a task's text ->
# what the word ranker keeps of it
_VALUE_READINGS = [
    # a line of G-code is a program for a machine
    ("explain G21 G90 G0 Z5 M3 S12000 G1 X50 F800", "explain gcode"),
    ("home it: G28 X Y", "home it: gcode"),
    # a certificate's file names what it holds; a file's extension may say more than "a file"
    ("does key.pem belong to cert.crt?", "does key pem certificate belong to cert crt certificate ?"),
    ("how long will /jobs/sign.nc take?", "how long will nc gcode take?"),
    ("is memory.tmx well-formed?", "is tmx translation memory well-formed?"),
    ("read notes.txt", "read"),
    # rows of numbers are a matrix, an expression in x a function
    ("invert [[4,7],[2,6]]", "invert matrix"),
    ("det of [1 2; 3 4]", "det of matrix"),
    ("plot y = 2x + 1 and f(x) = sin(x)*x", "plot mathematical function and mathematical function"),
    # chemistry's identifiers: aspirin in SMILES, ethanol's CAS number
    ("who is CC(=O)Oc1ccccc1C(=O)O?", "who is smiles chemical structure ?"),
    ("boiling point of 64-17-5", "boiling point of cas number"),
    # "*/15" was a glob's file pattern and "Europe/Berlin" a path's first folder
    (
        "when does */15 9-17 * * 1-5 fire next in Europe/Berlin?",
        "when does cron schedule fire next in time zone ?",
    ),
    ("run it at 0 3 * * MON-FRI", "run it at cron schedule"),
    # "350 °F" kept only "°F"
    ("convert 350 °F to celsius", "convert temperature fahrenheit to celsius"),
    ("preheat the bed to 60°C", "preheat the bed to temperature celsius"),
    # a book's ISBN, with or without the word, with or without hyphens
    ("publisher of ISBN 0-261-10357-3", "publisher of isbn book"),
    ("page count of 978-0-261-10357-3", "page count of isbn book"),
    # a currency pair keeps both its codes; a top-level domain alone is a kind of domain; "15%
    # off" a discount
    ("the USD/MXN FIX rate", "the USD MXN FIX rate"),
    ("EURUSD at the close", "EUR USD at the close"),
    ("PHP/MySQL stack", "PHP stack"),  # PHP is a peso's code too, but MySQL is none
    ("usd to eur", "usd to eur"),  # lower case: words
    ("is .ai pricey?", "is tld domain pricey?"),
    ("make a 15% off code", "make a discount code"),
]
# ... and look-alikes that are none of them: a task's text -> a word its reading must not hold
_NOT_VALUES = [
    ("who hosts the G7 summit", "gcode"),  # one code alone may be a name
    ("set y = 5 in the config", "function"),
    ("what does P04637 do", "smiles"),  # a protein's accession
    ("read channel C07INC142", "smiles"),
    ("CCO", "smiles"),
    ("call 555-1234", "cas"),
    ("the * and the end of one two three four", "cron"),
    ("find *.py files", "cron"),
    ("card 76 3000 6000 0112", "cron"),
    ("open Europe/Berlin.md", "zone"),
    ("rotate it 3° clockwise", "temperature"),
    ("call 9781234567", "isbn"),  # ten digits, and 978 begins only a 13-digit ISBN
    ("order 97812345678901", "isbn"),
    ("open example.com", "tld"),  # a site, not a top-level domain
    ("CPU at 95% often", "discount"),
]
_VALUE_CATALOG = {
    "cnc": [
        {"name": "gcode_translate", "description": "Explain each line of a G-code program."},
        {"name": "gcode_estimate_time", "description": "Estimate how long a G-code program runs."},
        {"name": "get_status", "description": "Get the machine's state and position."},
    ],
    "shell": [
        {"name": "start_process", "description": "Start a process and run a command line by line."},
        {"name": "job_status", "description": "How long a job has been running, and its state."},
    ],
    "files": [
        {"name": "read_text_file", "description": "Read a text file from disk."},
        {"name": "move_file", "description": "Move or rename a file."},
        {"name": "search_files", "description": "Find files matching a glob pattern."},
    ],
    "tls": [
        {"name": "verify_key_match", "description": "Verify that a private key matches a certificate."},
        {"name": "check_expiry", "description": "Check when a TLS certificate expires."},
    ],
    "math": [
        {"name": "matrix_inverse", "description": "Calculate the inverse of a square matrix."},
        {"name": "matrix_transpose", "description": "Transpose a matrix."},
        {"name": "plot_function", "description": "Generate mathematical function plots."},
        {"name": "plot_line_chart", "description": "Create a line chart from data points."},
        {"name": "cron_parse", "description": "Parse a cron expression and list its next run times."},
        {"name": "date", "description": "Add to a date or count the days between two dates."},
    ],
    "images": [{"name": "draw_line", "description": "Draw a line on an image."}],
    "library": [
        {"name": "get_book_by_id", "description": "Get a book by its ISBN, LCCN or OLID."},
    ],
    "domains": [
        {"name": "tld_info", "description": "Rules, typical use and price range of a top-level domain."},
        {"name": "search_domain", "description": "Check whether a domain name is available."},
    ],
    "shop": [
        {"name": "create_discount", "description": "Create a discount code for the store."},
        {"name": "update_store", "description": "Update the store's name, currency and settings."},
    ],
    "chem": [
        {"name": "search_compound_by_smiles", "description": "Find a compound from its SMILES."},
        {
            "name": "get_properties_by_casrn",
            "description": "Measured properties of a substance by CAS number.",
        },
    ],
}
_VALUE_TASKS = [
    ("what does this do, line by line? G21 G90 G0 Z5 M3 S12000", "gcode_translate"),
    ("how long will /jobs/sign.nc take to mill?", "gcode_estimate_time"),
    ("Does key.pem belong to cert.crt? nginx will not reload", "verify_key_match"),
    ("swap the rows and columns of [[1,2],[3,4]]", "matrix_transpose"),
    ("draw the curve y = x**2 - 3*x + 2 for x from -2 to 5", "plot_function"),
    ("I was sent CC(=O)Oc1ccccc1C(=O)O without a name, what is it?", "search_compound_by_smiles"),
    ("density of 64-17-5, with its sources", "get_properties_by_casrn"),
    ("When does */15 9-17 * * 1-5 fire?", "cron_parse"),
    ("get 9780261103573", "get_book_by_id"),
    ("what are .dev names usually used for?", "tld_info"),
    ("Set up a 15% off code SUMMER15 for the store, valid in June", "create_discount"),
]


@pytest.mark.parametrize(("task", "reading"), _VALUE_READINGS)
def test_a_value_reads_as_what_it_is(task: str, reading: str) -> None:
    assert " ".join(strip_patterns(task)[0].split()) == reading


@pytest.mark.parametrize(("task", "word"), _NOT_VALUES)
def test_a_look_alike_is_not_read_as_a_value(task: str, word: str) -> None:
    assert word not in strip_patterns(task)[0]


@pytest.mark.parametrize(("task", "tool"), _VALUE_TASKS)
def test_a_value_read_as_what_it_is_finds_the_tool_for_it(task: str, tool: str) -> None:
    assert index_of(_VALUE_CATALOG).search(task, 1)[0].key[1] == tool


def test_words_the_stemmer_and_the_glossary_join_to_the_tools_own() -> None:
    # allergy, allergic and allergen stem apart, and so do invert and inverse; German Gemeinde and
    # Kommune are municipalities
    assert stem("allergy") == stem("allergens") == stem("allergic")
    assert stem("invert") == stem("inverse") == stem("inversion")
    idx = index_of(
        {
            "food": [
                {"name": "check_allergens", "description": "List the allergens a product contains."},
                {"name": "get_product", "description": "Get a product by its barcode."},
            ],
            "archive": [
                {
                    "name": "municipalities",
                    "description": "Look up historical municipalities and their numbers.",
                },
                {"name": "parishes", "description": "Look up church parishes."},
            ],
        }
    )
    assert idx.search("my son has a nut allergy, is this granola ok?", 1)[0].key[1] == "check_allergens"
    assert idx.search("Welche Nummer hatte die Kommune Nedstrand?", 1)[0].key[1] == "municipalities"
    # a Chinese server's words for counties, prefectures and the divisions under one
    divisions = index_of(
        {
            "quhua": [
                {"name": "list_children", "description": "列出某个行政区划的下级区划。地级返回县级。"},
                {"name": "lookup_code", "description": "按代码查询对应的区划路径。"},
            ],
            "maps": [{"name": "geocode", "description": "Find the coordinates of a place."}],
        }
    )
    task = "Which counties and districts come under Jinhua prefecture?"
    assert divisions.search(task, 1)[0].key[1] == "list_children"
    # a Swiss server's German for health insurance, and French "remboursé"
    insurance = index_of(
        {
            "epl": [
                {
                    "name": "sl_suche",
                    "description": "Medikamente, die die Krankenpflegeversicherung vergütet.",
                },
                {"name": "server_info", "description": "Serverstatus anzeigen."},
            ],
            "shop": [{"name": "find_product", "description": "Find a product by its name."}],
        }
    )
    for task in (
        "Does basic health insurance pay for Ozempic?",
        "L'Ozempic est-il remboursé par l'assurance maladie ?",
    ):
        assert insurance.search(task, 1)[0].key[1] == "sl_suche", task


def test_kelvin_heating_routines_and_calling_off_read_as_a_smart_home_means_them() -> None:
    """2700K is a light's colour temperature (10K is no kelvin); a thermostat is a climate
    control's target temperature; a routine is what a smart home calls a scene; a raffstore is a cover; to call a thing off or
    void it cancels it; side by side compares; a Russian task for somewhere cheap to fly to meets
    a tool that lists cheap destinations."""
    assert strip_patterns("bedside lamp to a cozy 2700K")[0].split()[-2:] == ["color", "temperature"]
    assert "temperature" not in strip_patterns("a 10K run on Sunday")[0]
    idx = index_of(
        {
            "home": [
                {"name": "set_color_temp", "description": "Set white color temperature on a light."},
                {"name": "set_brightness", "description": "Set a lamp's brightness."},
                {"name": "set_cover_position", "description": "Set the position of a cover."},
                {"name": "trigger_scene", "description": "Trigger a scene."},
                {"name": "run_program", "description": "Run a program on the controller."},
                {"name": "set_thermostat", "description": "Set the target temperature of a climate control."},
            ],
            "post": [
                {"name": "cancel_action", "description": "Cancel a pending request on a letter."},
                {"name": "request_action", "description": "Request a letter to be scanned or shredded."},
            ],
            "art": [
                {
                    "name": "compare_museums",
                    "description": "Search both museums and put the results together.",
                },
                {"name": "search_museum", "description": "Search one museum's collection."},
            ],
            "fares": [
                {
                    "name": "get_city_directions",
                    "description": "List the cheapest destinations from a city. Use when the user "
                    "wants somewhere cheap to fly without naming a destination.",
                },
                {"name": "search_flights", "description": "Search flights between two cities on a date."},
            ],
        }
    )
    for task, tool in [
        ("bedside lamp to a cozy 2700K", "set_color_temp"),
        ("heating in the office to 21.5", "set_thermostat"),
        ("kick off the 'Movie night' routine", "trigger_scene"),
        ("Fahr die Raffstores im Schlafzimmer auf halbe Höhe", "set_cover_position"),
        ("void my request for that letter", "cancel_action"),
        ("the Met or Chicago: who has more woodblock prints? side by side", "compare_museums"),
        ("Куда можно недорого улететь из Москвы? Направление не важно.", "get_city_directions"),
    ]:
        assert idx.search(task, 1)[0].key[1] == tool, task


def test_keeping_an_eye_on_a_thing_or_asking_to_be_pinged_watches_it() -> None:
    for task in [
        "keep an eye on competitor.com/pricing",
        "ping me whenever the changelog changes",
        "fica de olho nessa página e me avisa",
        "avísame cuando cambie el precio",
    ]:
        assert "@watch" in LEXICON.tags(task), task
    assert "@watch" not in LEXICON.tags("ping the database host")
    idx = index_of(
        {
            "crawler": [
                {
                    "name": "monitor_create",
                    "description": "Create a monitor that checks a page on a schedule.",
                },
                {"name": "scrape", "description": "Scrape a page's content."},
                {"name": "map_site", "description": "List the pages of a site."},
            ]
        }
    )
    assert idx.search("keep an eye on competitor.com/pricing for me", 1)[0].key[1] == "monitor_create"


def test_everyday_words_for_what_apis_call_volume_fans_refunds_secrets_and_leads() -> None:
    """A user's word for what a tool calls by its API's name: a speaker turned down is its
    volume, an extractor a fan, money back a refund, stored credentials secrets, a new prospect a
    lead, signing off approving, pay slips payroll."""
    idx = index_of(
        {
            "home": [
                {"name": "set_volume", "description": "Set media player volume."},
                {"name": "set_fan_speed", "description": "Set the speed of ventilation controls."},
                {"name": "set_switch", "description": "Turn a switch on or off."},
                {"name": "set_dimmer", "description": "Set a light dimmer's level."},
            ],
            "shop": [
                {"name": "create_refund", "description": "Create a refund for a transaction."},
                {"name": "get_transaction", "description": "Get a transaction by id."},
            ],
            "ci": [
                {"name": "list_org_secrets", "description": "List the secrets of an organization."},
                {"name": "list_org_members", "description": "List the members of an organization."},
            ],
            "crm": [
                {"name": "leads_create", "description": "Create a lead."},
                {"name": "contacts_create", "description": "Create a contact person."},
            ],
            "hr": [
                {"name": "approve_timesheet", "description": "Approve a submitted timesheet."},
                {"name": "get_timesheet", "description": "Get a timesheet."},
                {"name": "get_payroll_run", "description": "Get a payroll run with its payments."},
                {"name": "get_employee", "description": "Get an employee's record."},
            ],
        }
    )
    for task, tool in [
        ("Turn the kitchen speaker down to 25.", "set_volume"),
        ("Bathroom extractor to full blast.", "set_fan_speed"),
        (
            "we never used the label we bought in transaction 3c1d2e4f, we want our money back",
            "create_refund",
        ),
        ("which credentials are stored at the org level for org 3?", "list_org_secrets"),
        ("new prospect from the webinar: Priya Natarajan, VP Ops at Halvorsen", "leads_create"),
        ("sign off Sam's timesheet for last week", "approve_timesheet"),
        ("show me Ana's payslips for November", "get_payroll_run"),
    ]:
        assert idx.search(task, 1)[0].key[1] == tool, task


def test_patent_classes_destinations_festivals_and_a_good_match() -> None:
    """An IPC class (H01M 10/0562) asks for patents by class, not for a path; coordinates after
    "fly to" or "a la posición" are where to go, not an address to look up; a fiesta or festa is a
    festival; a good match is compatibility; Spanish cambios are changes."""
    assert strip_patterns("Korean filings under H01M 10/0562")[0].split()[-3:] == [
        "patent",
        "classification",
        "ipc",
    ]
    assert "reverse" not in strip_patterns("fly to 47.39,8.54 at 30 m")[0]
    assert "reverse" not in strip_patterns("Lleva el dron a la posición 40.4168, -3.7038")[0]
    assert "reverse" in strip_patterns("what is at 40.4168, -3.7038?")[0]
    idx = index_of(
        {
            "patents": [
                {"name": "ipc_search", "description": "Search patents by IPC classification code."},
                {"name": "free_search", "description": "Search patents by keywords."},
                {"name": "file_search", "description": "Search files by path."},
            ],
            "drone": [
                {"name": "goto", "description": "Fly the drone to a latitude and longitude at an altitude."},
                {"name": "land", "description": "Land the drone."},
            ],
            "maps": [
                {"name": "reverse_geocode", "description": "Find the address of a latitude and longitude."},
            ],
            "calendar": [
                {
                    "name": "get_next_festival",
                    "description": "Get the next traditional festival and days until it.",
                },
                {"name": "solar_to_lunar", "description": "Convert a solar date to a lunar date."},
                {"name": "check_compatibility", "description": "Check the compatibility of two birth dates."},
            ],
            "registry": [
                {"name": "registro_cambios", "description": "Registro de cambios del nomenclátor."},
                {"name": "buscar_medicamentos", "description": "Buscar medicamentos."},
            ],
        }
    )
    for task, tool in [
        ("Korean filings classified under H01M 10/0562?", "ipc_search"),
        ("Lleva el dron a la posición 40.4168, -3.7038 a 60 metros de altura.", "goto"),
        ("Qual é a próxima festa tradicional chinesa depois de 10 de dezembro?", "get_next_festival"),
        ("born 1991-05-03 and 1993-10-30: are we a good match?", "check_compatibility"),
        ("what has changed in the register lately?", "registro_cambios"),
    ]:
        assert idx.search(task, 1)[0].key[1] == tool, task


def test_a_data_bus_is_no_public_transport() -> None:
    assert "@public_transit" in LEXICON.tags("when is the next bus to the airport")
    assert "@public_transit" in LEXICON.tags("which bus routes stop at the station")
    assert "@public_transit" not in LEXICON.tags("whatever the CAN bus reported most recently")
    assert "@public_transit" not in LEXICON.tags("publish the event on the service bus")


def test_an_email_or_ip_address_is_no_place() -> None:
    # "address" alone is a place (a street, a map's geocode); an e-mail or IP address and the
    # address mail is sent from are not: "which from-addresses can I send from?" found maps first
    assert "@location" not in LEXICON.tags("what is the email address of Sam")
    assert "@location" not in LEXICON.tags("block IP address 10.0.0.1")
    assert "@location" in LEXICON.tags("update her home address to 5 Main St")
    assert "@sender" not in LEXICON.tags("reply to the thread")  # a reply-to address would be
    idx = index_of(
        {
            "maps": [{"name": "maps_geocode", "description": "Convert an address into coordinates."}],
            "newsletter": [
                {"name": "list_senders", "description": "List the senders newsletters can be sent from."},
                {"name": "list_campaigns", "description": "List the newsletter campaigns."},
            ],
        }
    )
    assert idx.search("which from-addresses can I send newsletters from?", 1)[0].key[1] == "list_senders"


def test_a_concept_s_form_does_not_stem_into_another_concept_s_word() -> None:
    # German "Lied" (song) stems as "lie", as "Lies" (read!) does, "returning" as "return" and
    # French "carte" (map) as "cart": each put a wrong concept on tasks that never meant it (seen
    # with every frozen server in one catalog, where "Lies die Datei README.md" found ElevenLabs'
    # music tools first)
    assert "@music" not in LEXICON.tags("Lies die Datei README.md")
    assert "@retention" not in LEXICON.tags("return the last 5 orders")
    assert "@location" not in LEXICON.tags("add the blue mug to my cart")  # French carte: a map
    assert "@music" in LEXICON.tags("spiel die Lieder von Adele")
    # French restaurer, solde and vacances stem as restaurant, sold and vacancy do
    assert "@restore" not in LEXICON.tags("best restaurants near the office")
    assert "@balance" not in LEXICON.tags("units sold last week")
    assert "@absence" not in LEXICON.tags("post the nurse vacancy on the job board")
    # ... and French attends (wait) and maintenant (now) as attendees and maintenance
    assert "@wait" not in LEXICON.tags("list the attendees of the standup")
    assert "@time" not in LEXICON.tags("schedule a maintenance window")
    # Polish cena (price) is Portuguese for a scene and Spanish and Italian for dinner
    assert "price" not in LEXICON.tags("Adiciona um Rigidbody ao objeto Jogador na cena")


def test_a_date_says_when_not_a_month_s_name() -> None:
    """2026-12-04, 27.11.2026, 12/03/2026, "Jan 5" and "Dec 8-12" are read as a date; a month
    alone stays a word, a version or a file named by a date is no date, and "may" is a verb."""
    for task in [
        "from Jan 5 to Jan 16",
        "on 2026-12-04 at 10:00",
        "due 12/03/2026",
        "am 27.11.2026 um 06:00",
        "on the 3rd of May 2027",
        "Dec 8-12",
    ]:
        kept = strip_patterns(task)[0].split()
        assert "date" in kept and not {"jan", "Jan", "may", "May", "Dec"} & set(kept), (task, kept)
        assert not any(ch.isdigit() for ch in "".join(kept)), kept
    assert strip_patterns("invoices of March")[0].split() == ["invoices", "of", "March"]
    assert "date" not in strip_patterns("upgrade to 1.2.3 and open Meeting 2026-11-30.md")[0]
    assert "may" in strip_patterns("may 5 people join")[0]
    idx = index_of(
        {
            "git": [
                {
                    "name": "log",
                    "description": "Show commits.",
                    "inputSchema": {
                        "type": "object",
                        "properties": {"since": {"type": "string", "description": "e.g. 'Jan 15 2024'"}},
                    },
                }
            ],
            "staffing": [
                {"name": "create_assignment", "description": "Assign a person to a project from a date."},
                {"name": "list_people", "description": "List people."},
            ],
        }
    )
    assert idx.search("put person 55 on project 880 from Jan 5 to Jan 16", 1)[0].key[1] == "create_assignment"


def test_a_bare_domain_is_a_domain_and_an_address_with_a_path_a_page() -> None:
    """acmerobotics.dev alone is a domain to register, renew or point somewhere; a page's address
    (docs.python.org/3/library, https://acme.io/pricing) is no domain."""
    assert strip_patterns("can we still grab acmerobotics.dev?")[0].split() == [
        "can", "we", "still", "grab", "acmerobotics", "domain", "?",
    ]  # fmt: skip
    assert "domain" not in strip_patterns("scrape docs.python.org/3/library")[0]
    # country and newer top-level domains too (before, example.ru and acme.co.uk were read as words)
    for task, site in [
        ("renew acme.co.uk", "acme"),
        ("TXT-запись домена shop.ru", "shop"),
        ("point x.cloud", "x"),
    ]:
        assert strip_patterns(task)[0].split()[-2:] == [site, "domain"], task
    assert "domain" not in strip_patterns("summarize https://acme.io/pricing")[0]
    idx = index_of(
        {
            "registrar": [
                {"name": "check_availability", "description": "Check whether a domain can be registered."},
                {"name": "list_records", "description": "List the DNS records of a domain."},
                {"name": "get_pricing", "description": "Prices of top-level domains."},
            ],
            "crawler": [
                {"name": "scrape", "description": "Scrape a page and return its text."},
                {"name": "map_site", "description": "List the pages of a site."},
                {"name": "search", "description": "Search the web."},
            ],
        }
    )
    assert idx.search("what would brightlane.io cost us?", 1)[0].key[1] == "get_pricing"


def test_a_locale_is_a_language() -> None:
    """pt-BR, en_US and zh-Hans name a language; a region in lower case (us-east-1) does not."""
    for task in ["add pt-BR to project 42", "export en_US strings", "is zh-Hans done?"]:
        kept = strip_patterns(task)[0].split()
        assert "language" in kept and not {"pt", "br", "en", "us", "zh", "hans"} & set(kept), kept
    assert "language" not in strip_patterns("deploy to us-east-1")[0]
    idx = index_of(
        {
            "l10n": [
                {"name": "add_language", "description": "Add a target language to a project."},
                {"name": "update_project", "description": "Update a project's settings."},
            ]
        }
    )
    assert idx.search("project 42 needs pt-BR too", 1)[0].key[1] == "add_language"


def test_how_far_along_asks_for_progress_and_a_russian_zayavka_is_a_ticket() -> None:
    """A job is "how far along" by its progress (not a distance); a service desk's заявка is a ticket."""
    idx = index_of(
        {
            "backup": [
                {"name": "get_progress", "description": "Progress of the running backup."},
                {"name": "list_backups", "description": "List the configured backups."},
                {"name": "run_backup", "description": "Start a backup now."},
            ],
            "desk": [
                {"name": "get_open_tickets", "description": "Open tickets assigned to a technician."},
                {"name": "list_companies", "description": "List client companies."},
                {"name": "list_contacts", "description": "List contacts of a company."},
            ],
        }
    )
    assert idx.search("how far along is the current backup?", 1)[0].key[1] == "get_progress"
    assert idx.search("покажи все заявки компании Globex", 1)[0].key[1] == "get_open_tickets"


def test_comment_is_a_word_in_english_and_how_in_french() -> None:
    assert "comment" in analyze("comment on the jira ticket")
    assert "comment" in analyze("add_issue_comment")
    for task in ("Comment créer un ticket dans Jira ?", "comment je peux voir mes tâches"):
        assert "comment" not in analyze(task), task
    # real catalogs: "comment" counted only as the tag its concept gives, and other tools came first
    evalset = load_evalset()
    idx = index_of({name: server["tools"] for name, server in evalset.items()})
    for task, tool in {
        "comment on the jira ticket that the fix is deployed": "jira_add_comment",
        "leave a comment on the notion design doc saying LGTM, ship it": "API-create-a-comment",
    }.items():
        assert idx.search(task, 1)[0].key[1] == tool, task


def test_powering_off_or_an_emergency_stop_stops_a_device() -> None:
    # a phrase is known by its first two words, so "cut the heat" cannot be one ("cut the video")
    assert "@stop" in LEXICON.tags("power off the CNC before changing the bit")
    assert "@stop" in LEXICON.tags("hit the emergency stop on the mill")
    assert "@stop" not in LEXICON.tags("cut the video at 2:30")
    idx = index_of(
        {
            "hotplate": [
                {
                    "name": "start_heating",
                    "description": "Start heating the hotplate to its set temperature.",
                },
                {"name": "stop_all", "description": "Halt heating and stirring at once."},
            ]
        }
    )
    assert idx.search("power down the hotplate's heating", 1)[0].key[1] == "stop_all"


# the concepts helpers wrote in rounds (2026-12-06): a user's words meet the API's
_ROUND_CONCEPT_TAGS = [
    # round two
    ("is there a contraindication for warfarin with ibuprofen?", "@drug_interaction"),
    ("Wechselwirkungen von Ibuprofen und Warfarin", "@drug_interaction"),
    ("a customer opened a card dispute with their bank", "@chargeback"),
    ("what is our staff count in Berlin", "@headcount"),
    ("Кто сейчас дежурит?", "@on_call"),
    ("log my systolic and diastolic readings", "@blood_pressure"),
    # round three: a lab's, a machine's and a statistician's words
    ("tare the balance with the beaker on it", "@tare"),
    ("recalibrate the pH probe", "@calibrate"),
    ("ack the alarm on line 3", "@acknowledge"),
    ("what share of households rent?", "@proportion"),
    ("per capita GDP of Chile", "@per_capita"),
    ("Sendungsverfolgung für mein Paket", "@shipment"),
    # round four: an address's code and a field bus's words
    ("which postcode is Via Roma 1 in?", "@postal_code"),
    ("scan the RS-485 bus for slave ids", "@plc"),
    ("what does the square barcode on the poster say", "@qr_code"),
    ("take a still from the laptop camera", "@webcam"),
    ("outline the silhouette of the part", "@edge_detection"),
    ("Bitte das Bildrauschen reduzieren", "@noise_reduction"),
    ("straighten it by turning it 3° clockwise", "@rotate_by_angle"),
    # round four: specialised servers' words (flights, 3D printers, statistics, genes, security)
    ("how far is it as the crow flies", "@great_circle_distance"),
    ("show my recent prints on the Voron", "@three_d_printer"),
    ("what share of children live below the poverty line", "@poverty_rate"),
    ("which GO terms are over-represented in my gene list", "@enrichment_analysis"),
    ("is there a CVE for this version of openssl", "@security_vulnerability"),
    ("what is the jobless rate in Ohio", "@unemployment"),
    ("amenities and house rules of rental 53896781", "@accommodation"),
    # 2026-12-07: counts by a period, comparisons, and the words of a blind set's servers
    ("how many final rules per month in 2025", "@aggregate"),
    ("wages in Denver, Austin and Raleigh: how do they stack up?", "@compare"),
    ("hourly fine-particle levels in Delhi", "@air_quality"),
    ("any construction detours at Gelsenkirchen Hbf?", "@transit_delay"),
    ("Störungen an der Haltestelle", "@transit_delay"),
    ("its phylum and genus", "@taxonomy"),
    ("is Monday a trading day in Shanghai", "@trading_day"),
    ("the NAICS code of a gym", "@industry_classification"),
    ("put together a meal plan for the week", "@meal_plan"),
    ("what is buoy 46026 reporting", "@buoy"),
    # round four: rates, alerts
    ("how has the Selic rate moved", "@interest_rate"),
    ("taxa de juros do Banco Central", "@interest_rate"),
    ("Create a price alert on a contract", "@notify_me"),  # what "ping me when" asks for
    ("let me know when the build is green", "@notify_me"),
    # round five: fires, bathing water, a debugger's words, a column's values, sights
    ("how likely are forest fires in Ticino right now", "@wildfire"),
    ("Ruft den aktuellen Waldbrandgefahren-Index ab", "@wildfire"),
    ("can I swim at Mythenquai?", "@bathing_water"),
    ("Step over the next instruction", "@debug_step"),
    ("break whenever it calls CreateFileW", "@breakpoint"),
    ("which Go version was it compiled with", "@build_info"),
    ("which distinct values does orders.status hold", "@distinct_values"),
    ("获取指定列的所有唯一值", "@distinct_values"),
    ("バルセロナで見ておくべき名所", "@sightseeing"),
    ("put it on my todo list", "@todo"),
    ("Which Taiwanese statutes mention personal data?", "@statute"),
    # round six: signing in, test coverage
    ("is my login still good or do I have to sign in again?", "@login"),
    ("認証状態を確認", "@login"),
    ("how well is refund.ts exercised by tests", "@test_coverage"),
    ("tipo_cambio_usd del Banco de México", "@exchange_rate"),
    # round seven (2026-12-07 morning): mail not yet read or answered, who may access what
    ("¿Tengo correos sin leer de Hetzner?", "@unread"),
    ("未読のメールはある", "@unread"),
    ("which mails from Anna have I still not answered", "@unanswered"),
    ("show the IAM policy of the payroll bucket", "@permission"),
    ("what homework is due this week", "@coursework"),
    ("宿題の締め切りはいつ", "@coursework"),
    ("I need a throwaway address to sign up with", "@email_alias"),
]
_ROUND_CONCEPT_CATALOG = {
    "pharma": [
        {"name": "check_interactions", "description": "Check drug interactions between medicines."},
        {"name": "get_drug_label", "description": "Get a drug's label and dosage."},
    ],
    "payments": [
        {"name": "list_chargebacks", "description": "List chargebacks on the account."},
        {"name": "list_charges", "description": "List card charges on the account."},
    ],
    "scada": [
        {"name": "confirm_event", "description": "Acknowledge an active alarm so it stops flashing."},
        {"name": "list_events", "description": "List active and past alarms."},
    ],
    "housing": [
        {"name": "rent_ratio", "description": "Deposit as a proportion of the sale price, by month."},
        {"name": "sale_prices", "description": "Apartment sale prices by month."},
    ],
    "towns": [
        {"name": "get_by_cap", "description": "Find the towns that share a postal code (CAP)."},
        {"name": "get_by_name", "description": "Find a town by its name."},
    ],
    "vision": [
        {"name": "detect_qrcode", "description": "Detect and decode QR codes."},
        {"name": "detect_faces", "description": "Detect faces in an image."},
        {"name": "edges_canny", "description": "Canny edge detector."},
        {"name": "denoise", "description": "Non-local means denoising for color images."},
        {"name": "webcam_save", "description": "Capture a webcam frame and save it to disk."},
        {"name": "image_show", "description": "Load an image from disk and show it."},
    ],
    "modbus": [
        {"name": "scan_units", "description": "Probe Modbus unit ids and report which respond."},
        {"name": "read_holding", "description": "Read a range of registers."},
    ],
    "ndbc": [
        {"name": "latest_observation", "description": "Get the latest observation from an NDBC station."},
        {"name": "latest_alerts", "description": "Get the latest alerts of a stock."},
    ],
    "mailbox": [
        {"name": "search_unread_from_sender", "description": "Find unread emails from a given sender."},
        {"name": "search_unreplied_from_sender", "description": "Find unreplied emails from a given sender."},
        {"name": "search_by_sender", "description": "Find emails from a given sender."},
    ],
    "campus": [
        {"name": "list_assignments", "description": "List the course assignments that are due."},
        {"name": "list_notices", "description": "List the notices on the portal."},
    ],
    "mailhost": [
        {"name": "masked_create", "description": "Create a new masked email address."},
        {"name": "calendar_create", "description": "Create a calendar event."},
        # without the concept a throwaway *address* is this one's
        {"name": "address_create", "description": "Create a new postal address in the address book."},
    ],
    "inegi": [
        {"name": "buscar_actividad", "description": "Busca el código SCIAN de una actividad económica."},
        {"name": "buscar_negocios", "description": "Busca negocios en el directorio por nombre."},
    ],
}
_ROUND_CONCEPT_TASKS = [
    ("any contraindication for aspirin with ibuprofen?", "check_interactions"),
    ("which disputed payments came in this week", "list_chargebacks"),
    ("ack the alarm on line 3", "confirm_event"),
    ("what share of the price is the deposit?", "rent_ratio"),
    ("which towns have the postcode 00118?", "get_by_cap"),
    ("which slave ids answer on the RS-485 line?", "scan_units"),
    ("what does the square barcode on poster.jpg say", "detect_qrcode"),
    ("take a still from the laptop camera and keep it as desk.png", "webcam_save"),
    ("the photo is grainy, clean it up", "denoise"),
    ("latest from buoy 46026 off San Francisco", "latest_observation"),
    ("which NAICS category are gyms in?", "buscar_actividad"),
    ("¿Tengo correos sin leer de facturacion@hetzner.com?", "search_unread_from_sender"),
    ("which emails from anna.k@studio-berlin.de have I still not answered?", "search_unreplied_from_sender"),
    ("What homework do I still have to hand in this week?", "list_assignments"),
    ("I need a throwaway address to sign up on shop.example.com", "masked_create"),
]


@pytest.mark.parametrize(("task", "tag"), _ROUND_CONCEPT_TAGS)
def test_a_round_written_concept_tags_a_users_words(task: str, tag: str) -> None:
    assert tag in LEXICON.tags(task)


@pytest.mark.parametrize(("task", "tool"), _ROUND_CONCEPT_TASKS)
def test_a_round_written_concept_finds_the_tool_its_words_name(task: str, tool: str) -> None:
    assert index_of(_ROUND_CONCEPT_CATALOG).search(task, 1)[0].key[1] == tool


def test_the_glossary_knows_the_catalogs_domain_words() -> None:
    # 2026-12-06: ~280 more English words of the tool catalogs (frequency, threshold, dataset ...)
    idx = index_of(
        {
            "radio": [
                {"name": "set_center_frequency", "description": "Set the center frequency of the receiver."},
                {"name": "set_gain", "description": "Set the receiver's gain in dB."},
            ],
            "alerts": [
                {"name": "set_threshold", "description": "Set the threshold an alert fires at."},
                {"name": "list_alerts", "description": "List the alerts that fired."},
            ],
        }
    )
    for task in ("Stell die Frequenz auf 433,92 MHz", "把频率调到433.92", "поставь частоту 433.92"):
        assert idx.search(task, 1)[0].key == ("radio", "set_center_frequency"), task
    for task in ("baja el umbral a 80", "abaisse le seuil à 80", "閾値を80に下げて"):
        assert idx.search(task, 1)[0].key == ("alerts", "set_threshold"), task
    # a form that stems as another English word is left out: German Branche (industry) read
    # "feature branch" as an industry, French durée "during", Polish lat (years) latitude
    assert "industri" not in LEXICON.tags("open a PR from my feature branch into main")
    assert "durat" not in LEXICON.tags("what happened during the outage")
    assert "year" not in LEXICON.tags("lat 52.1 lon 4.3")
    # 2026-12-07: a Chinese exchange's sectors and their stocks, an eclipse, a soup, a day off
    assert {"sector", "constitu"} <= set(LEXICON.tags("半导体板块的成分股"))
    assert "eclips" in LEXICON.tags("L'eclissi del 12 agosto")
    assert "soup" in LEXICON.tags("汤类菜谱")
    # Brazil's GDP and senate, a curriculum's skills, a problem's solutions
    assert {"gdp", "senat"} <= set(LEXICON.tags("PIB do Brasil e votações do Senado"))
    assert {"curriculum", "skill"} <= set(LEXICON.tags("habilidades do currículo"))
    assert "solut" in LEXICON.tags("这道题的题解")
    # closing prices, personal data (Traditional 資料 folds to 数据, whose 人数 is no count)
    assert {"close", "price", "daili"} <= set(LEXICON.tags("le chiusure giornaliere di Tesla"))
    assert {"person", "data"} <= set(LEXICON.tags("個人資料保護法"))
    assert "channel" in LEXICON.tags("Hent programoversigt for en kanal")  # Danish
    assert "activ" in LEXICON.tags("le attività registrate sull'orologio")
    # a login page or button in a bug report is no request to sign in
    assert "@login" not in LEXICON.tags("file a bug: the login button does nothing; 登录页白屏")
    assert LEXICON.expand("plan itin-8842") == ["itinerari"]
    # a phrase is known by its first two words, so none of these starts with "to do", "break at"
    # or "tipo de"
    for text, tag in (("ask the students what to do", "@todo"), ("lunch break at noon", "@breakpoint"),
                      ("tipo de documento", "@exchange_rate")):  # fmt: skip
        assert tag not in LEXICON.tags(text), text
    assert "holiday" in LEXICON.tags("2027年5月6日って休みの日")
    assert "court" in LEXICON.tags("Qual tribunal julgou o processo?")
    assert "station" in LEXICON.expand("any delays at Essen Hbf?")  # German railways' short form


def test_no_glossary_form_is_its_own_english_word() -> None:
    # French "modèle" folds and stems as model: the task's English reading finds it already, and
    # as a form it would give every English task that says "model" the word's weight twice
    doubled = [
        (word, lang, form)
        for word, languages in GLOSSARY.items()
        for lang, forms in languages.items()
        for form in forms.split()
        if "+" not in form and set(analyze(form)) & set(analyze(word))
    ]
    assert not doubled


def test_switching_off_sleeping_and_done_in_other_languages() -> None:
    for text in ("Éteins la lumière du salon", "spegni la luce", "关灯"):
        assert "@stop" in LEXICON.tags(text), text
    assert "@sleep_tracking" in LEXICON.tags("Comment j'ai dormi cette nuit ?")
    # marked as done in Russian; the execution of a query (выполнение) stays a run
    assert "@complete" in LEXICON.tags("Отметь задачу 5531 как выполненную")
    assert "@complete" not in LEXICON.tags("выполнение запроса")


def test_business_days_tenders_and_certificates_in_another_language_meet_english_tasks() -> None:
    # a Brazilian server names its tools in Portuguese and an agent asks in English; a German
    # task's Werktage are business days too
    idx = index_of(
        {
            "brasil": [
                {"name": "contar_dias_uteis", "description": "Conta os dias úteis entre duas datas."},
                {"name": "contar_dias_corridos", "description": "Conta os dias corridos entre duas datas."},
                {"name": "buscar_licitacoes", "description": "Busca licitações e pregões abertos."},
                {"name": "buscar_empresas", "description": "Busca empresas pelo nome."},
                {"name": "solicitar_certidao", "description": "Solicita uma certidão ao cartório."},
                {"name": "solicitar_reembolso", "description": "Solicita um reembolso."},
            ]
        }
    )
    assert idx.search("count business days between two dates", 1)[0].key == ("brasil", "contar_dias_uteis")
    assert idx.search("search public procurement tenders", 1)[0].key == ("brasil", "buscar_licitacoes")
    assert idx.search("request a birth certificate", 1)[0].key == ("brasil", "solicitar_certidao")
    assert {"busi", "day"} <= set(LEXICON.tags("Wie viele Werktage hat der März?"))


def test_a_sum_changed_into_another_currency_is_an_exchange_rate() -> None:
    for task in (
        "how many baht is 1200 USD today",
        "how many euros is 50,000 yen",
        "convert 250,000 ARS to dollars",
        "What is 100 dollars in euros?",
        "1200美元换成泰铢",
    ):
        text, tags = strip_patterns(task)
        assert tags == ["@exchange_rate"], task
        assert "exchange rate" in text, task
    # the currencies stay: a service may serve only some
    assert "ARS dollars" in strip_patterns("convert 250,000 ARS to dollars")[0]
    # one currency, the same symbol twice, a crypto trade or a code that is a word: no conversion
    for task in (
        "oat milk latte goes from $5.25 to $5.50 starting today",
        "I paid 84.50 EUR for dinner on Saturday",
        "Hotels in Lisbon prices in EUR",
        "Place a limit buy for 0.01 BTC at 9,500,000 yen on Zaif",
        "try all of them in order",
    ):
        assert "@exchange_rate" not in strip_patterns(task)[1], task
    idx = index_of(
        {
            "fx": [{"name": "latest_rates", "description": "Latest exchange rates between currencies."}],
            "billing": [
                {"name": "create_invoice", "description": "Create an invoice for an amount in USD."},
                {"name": "refund_payment", "description": "Refund a payment amount."},
            ],
        }
    )
    assert idx.search("how many baht is 1200 USD today", 1)[0].key == ("fx", "latest_rates")
    # how one currency moved against another is its rate over time: no file or issue to move
    moved = "chart how the Brazilian real moved against the Argentine peso in 2024"
    assert strip_patterns(moved)[1] == ["@exchange_rate"]
    assert "mov" not in strip_patterns(moved)[0]
    assert "Brazilian real Argentine peso" in strip_patterns(moved)[0]
    assert "@exchange_rate" not in strip_patterns("move 100 dollars to savings")[1]


def test_nutrients_shortages_street_views_and_rescheduling() -> None:
    for task, tag in {
        "Is amoxicillin oral suspension still in short supply in the US?": "@shortage",
        "Lieferengpass bei Ibuprofen?": "@shortage",
        "¿Cuántas calorías tiene la avena?": "@nutrition",
        "what does the street look like outside Vinohradská 12": "@street_view",
        "street view image of address": "@street_view",
        "reschedule my dentist appointment": "@reschedule",
        "rebook the 3pm slot": "@reschedule",
    }.items():
        assert tag in LEXICON.tags(task), task
    # an amount per 100 grams is what food labels give: nutrients, in any language
    for task in ("How much protein per 100 g in Skyr?", "燕麦每100克含多少蛋白质", "на 100 граммов"):
        assert strip_patterns(task)[1] == ["@nutrition"], task
    assert strip_patterns("send 100 g of coffee")[1] == []
    # 日报 is a daily report (a work log's day), not the word "day" alone
    idx = index_of(
        {
            "worklog": [
                {"name": "append_entry", "description": "追加工作记录到当天日报"},
                {"name": "collect_sessions", "description": "采集当天 AI 工具会话记录"},
            ]
        }
    )
    assert idx.search("add entry to daily report", 1)[0].key == ("worklog", "append_entry")


def test_dns_records_screen_orientation_the_last_lines_and_space_taken() -> None:
    for task, tag in {
        "Which Turkish provinces have the most polluted air right now?": "@air_quality",
        "When does Petrobras report its Q4 results?": "@earnings_report",
        "テスト端末の画面を横向きにして": "@orientation",
        "rotate the screen to landscape": "@orientation",
        "show me the last 100 lines of the worker log": "@tail_lines",
        "How much space is /var/lib/docker eating?": "@size",
    }.items():
        assert tag in LEXICON.tags(strip_patterns(task)[0]), task
    # a DNS record's type is no word (A is an article); "a record of sales" stays a record
    assert "dns record" in strip_patterns("Resolve the A record for mail.acme.io")[0]
    assert "dns record" in strip_patterns("MX records of acme.io")[0]
    assert strip_patterns("keep a record of sales") == ("keep a record of sales", [])
    # a sum changed into another currency, in Korean, or a conversion into one named currency
    assert strip_patterns("지금 100달러면 위안화로 얼마예요?")[1] == ["@exchange_rate"]
    assert strip_patterns("is now a good time to convert to RMB?")[1] == ["@exchange_rate"]
    assert strip_patterns("convert it to PDF")[1] == []
    assert strip_patterns("USD BRL exchange rate on date")[1] == []  # two codes side by side: words


def test_personal_data_eligibility_and_a_trials_registry_number() -> None:
    for task, tag in {
        "check contract.hwpx for resident registration numbers before I send it": "@pii",
        "HWPX detect personal information": "@pii",
        "개인정보가 들어 있는지 확인해줘": "@pii",
        "Would a 67-year-old with CKD qualify for the study?": "@eligibility",
        "am I eligible for the grant": "@eligibility",
    }.items():
        assert tag in LEXICON.tags(task), task
    # a ClinicalTrials.gov number names one trial: tagged, its characters no words
    text, tags = strip_patterns("What's the primary endpoint of NCT03548935?")
    assert tags == ["@clinical_trial"] and "nct" not in text.lower()
    assert names_one_item("What's the primary endpoint of NCT03548935?")


def test_a_standards_name_is_no_issue_key_and_school_holidays_in_german() -> None:
    # RS-485, USB-3, COVID-19 look like issue keys; they name a bus, a port and a disease
    for task in ("the energy meter on the RS-485 line", "a USB-3 port", "COVID-19 cases in Bern"):
        assert "@issue" not in strip_patterns(task)[1], task
    assert strip_patterns("move OPS-1142 to done")[1] == ["@issue"]
    idx = index_of(
        {
            "swiss-school": [
                {
                    "name": "get_school_holidays",
                    "description": "Return school holiday periods for one canton.",
                },
                {"name": "list_cantons", "description": "List the 26 Swiss cantons."},
            ],
            "hr": [{"name": "request_leave", "description": "Request paid time off."}],
        }
    )
    assert idx.search("Sind im Kanton Bern gerade Schulferien?", 1)[0].key == (
        "swiss-school",
        "get_school_holidays",
    )


def test_free_time_switching_back_on_and_receivables() -> None:
    for task, tag in {
        "Here are my busy blocks for Tuesday, where can I fit a call?": "@free_time",
        "find a free slot for a 30 minute meeting": "@free_time",
        "Wann habe ich freie Zeit am Freitag?": "@free_time",
        "The export DAG is paused, turn it back on": "@reenable",
        "unpause the nightly job": "@reenable",
        "who owes us money right now?": "@receivables",
        "contas a receber vencidas": "@receivables",
        "Is there an insolvency proceeding against Müller GmbH?": "@insolvency",
        "Insolvenzverfahren gegen die Firma?": "@insolvency",
        "Who's leading the Bundesliga scoring charts?": "@top_scorers",
        "Who are the real owners behind Baltic Trade OÜ?": "@shareholder",
        "new-build flats in Kraków": "@real_estate",
    }.items():
        assert tag in LEXICON.tags(task), task
    idx = index_of(
        {
            "dags": [
                {"name": "pause_dag", "description": "Pause a DAG so that no new runs are scheduled"},
                {"name": "enable_dag", "description": "Enable a DAG"},
                {"name": "list_dags", "description": "List the DAGs"},
            ],
            "books": [
                {"name": "list_invoices", "description": "List invoices with their status"},
                {"name": "aged_receivables", "description": "Customer balances by age: accounts receivable"},
            ],
        }
    )
    assert idx.search("the nightly DAG is off, turn it back on", 1)[0].key == ("dags", "enable_dag")
    assert idx.search("who owes us money right now?", 1)[0].key == ("books", "aged_receivables")


def test_a_task_in_persian_meets_tools_described_in_english() -> None:
    idx = index_of(
        {
            "rail": [
                {
                    "name": "search_trains",
                    "description": "Search train tickets between two stations with prices",
                },
                {"name": "find_station", "description": "Find a station by name"},
            ],
            "bot": [
                {"name": "search_messages", "description": "Search the bot's saved messages for a word"},
                {"name": "send_message", "description": "Send a message to a chat"},
            ],
        }
    )
    # "how much is a train ticket from Tehran to Mashhad next Thursday?"
    assert idx.search("قیمت بلیط قطار تهران به مشهد برای پنجشنبه هفته بعد چقدر است؟", 1)[0].key == (
        "rail",
        "search_trains",
    )
    # "find every saved message with the word 'invoice'" (the plural written with a zero-width non-joiner)
    assert idx.search("همه پیام‌های ذخیره‌شده که کلمه «فاکتور» دارند را پیدا کن", 1)[0].key == (
        "bot",
        "search_messages",
    )
    # each concept of languages.txt has its Persian forms, as it has Arabic ones
    assert "@search" in LEXICON.tags("پیدا کن")


def test_sunshine_hours_and_election_seats_in_other_words() -> None:
    idx = index_of(
        {
            "meteo": [
                {
                    "name": "forecast_sunshine",
                    "description": "Get the sunshine hours for a place over a period.",
                },
                {"name": "forecast_rain", "description": "Get when and how much it may rain at a place."},
                {"name": "forecast_daily", "description": "Get the whole-day forecast for a place."},
            ]
        }
    )
    for task in (
        "Quante ore di sole sono previste a Lugano questo fine settimana?",
        "Sonnenstunden in Davos morgen",
    ):
        assert idx.search(task, 1)[0].key == ("meteo", "forecast_sunshine"), task
    assert "@election" in LEXICON.tags("Who won the Bangi parliamentary seat, and by what majority?")


def test_a_country_named_in_another_language_meets_the_tools_that_name_it_in_english() -> None:
    idx = index_of(
        {
            "rates": [
                {
                    "name": "rba_cash_rate",
                    "description": "The Reserve Bank of Australia's cash rate, month by month.",
                },
                {"name": "norges_key_rate", "description": "Norges Bank's key policy rate for Norway."},
                {"name": "snb_policy_rate", "description": "The Swiss National Bank's policy rate."},
            ]
        }
    )
    for task, tool in {
        "호주 중앙은행 금리 추이": "rba_cash_rate",
        "Leitzins der Norwegischen Zentralbank": "norges_key_rate",
        "ставка центробанка Швейцарии": "snb_policy_rate",
    }.items():
        assert idx.search(task, 1)[0].key == ("rates", tool), task


def test_typhoons_restaurants_odds_and_head_to_head_records() -> None:
    idx = index_of(
        {
            "weather": [
                {"name": "get_storm_list", "description": "获取指定流域和年份的台风列表"},
                {"name": "get_forecast", "description": "获取城市天气预报"},
            ],
            "esports": [
                {"name": "teams_h2h", "description": "The completed-match record between two teams."},
                {"name": "teams_form", "description": "A team's recent results."},
            ],
            "food": [
                {"name": "search_restaurants", "description": "Search restaurants by area and cuisine."},
                {"name": "list_areas", "description": "List the areas of a city."},
            ],
        }
    )
    assert idx.search("Which typhoons were there in the northwest Pacific this year?", 1)[0].key == (
        "weather",
        "get_storm_list",
    )
    assert idx.search("¿Cómo van los enfrentamientos directos entre Vitality y G2?", 1)[0].key == (
        "esports",
        "teams_h2h",
    )
    assert idx.search("渋谷駅の近くで評価の高い焼肉屋を探して", 1)[0].key == ("food", "search_restaurants")
    assert "@betting_odds" in LEXICON.tags("What are bookmakers offering for the match?")


def test_a_to_do_is_a_task() -> None:
    idx = index_of(
        {
            "tasks": [
                {"name": "add_task", "description": "Add a task to a project"},
                {"name": "list_projects", "description": "List the projects"},
            ],
            "notes": [
                {"name": "add_note", "description": "Add a note to a notebook"},
                {"name": "add_item", "description": "Add an item to a list"},
            ],
        }
    )
    assert idx.search("new to-do: call the plumber", 1)[0].key == ("tasks", "add_task")
    # Spanish and Portuguese "todos" is "all", no tasks
    assert "task" not in dict(idx.query_terms("apaga todos os documentos com status expired"))


def test_a_debtor_in_other_words() -> None:
    idx = index_of(
        {
            "bank": [
                {"name": "consulta_deudores", "description": "Consulta la situación de deudores por CUIT"},
                {"name": "cheques_rechazados", "description": "Consulta los cheques rechazados por CUIT"},
            ]
        }
    )
    assert idx.search("Argentina debtor status by CUIT", 1)[0].key == ("bank", "consulta_deudores")


def test_all_in_one_go_injuries_football_transfers_and_emissions() -> None:
    assert "@batch" in LEXICON.tags("Get all 240 leads into the CRM in one shot")
    assert "@batch" in LEXICON.tags("put weekly 1:1s with my 5 reports on the calendar in one go")
    assert "@emissions" in LEXICON.tags("Quelle est l'empreinte carbone d'un aller-retour en train ?")
    assert "@emissions" in LEXICON.tags("Get carbon intensity data for the current half hour.")
    # a student canteen in other words (the server lists canteens; the task says cafeteria)
    assert "@canteen" in LEXICON.tags("list the cafeterias of the Studierendenwerk")
    assert "@canteen" in LEXICON.tags("今日の学食のメニューは？")  # noqa: RUF001 - a Japanese question mark
    idx = index_of(
        {
            "football": [
                {"name": "get_player_injuries", "description": "Get injury history of a player."},
                {"name": "get_player_transfers", "description": "Get transfer history of a player."},
                {"name": "get_player_stats", "description": "Get season statistics of a player."},
            ],
        }
    )
    assert idx.search(
        "Wie oft war der Torwart in seiner Karriere verletzt? Die Verletzungshistorie bitte.", 1
    )[0].key == ("football", "get_player_injuries")
    assert idx.search("Lista de todos los fichajes del delantero, con fechas y clubes.", 1)[0].key == (
        "football",
        "get_player_transfers",
    )
    crm = index_of(
        {
            "crm": [
                {"name": "create_contact", "description": "Create one contact."},
                {"name": "batch_create_contacts", "description": "Create many contacts in bulk."},
                {"name": "get_contact", "description": "Get one contact."},
            ]
        }
    )
    assert crm.search("Add these 240 trade-show leads as contacts in one go", 1)[0].key == (
        "crm",
        "batch_create_contacts",
    )


def test_a_task_in_dutch_czech_or_swedish_meets_tools_described_in_english() -> None:
    idx = index_of(
        {
            "school": [
                {"name": "get_absences", "description": "Get a pupil's missed lessons per subject"},
                {"name": "get_grades", "description": "Get a pupil's marks per subject"},
            ],
            "stats": [
                {"name": "find_table", "description": "Find a statistics table about wages or prices"},
                {"name": "get_population", "description": "Get the population of a municipality"},
            ],
            "shop": [
                {"name": "add_to_shopping_list", "description": "Add items to the shopping list"},
                {"name": "list_orders", "description": "List the orders of a customer"},
            ],
        }
    )
    # Czech: "show the list of orders of the customer Novák"; "the pupil's marks in maths"
    assert idx.search("Zobraz seznam objednávek zákazníka Novák", 1)[0].key == ("shop", "list_orders")
    assert idx.search("Jaké známky má žák z matematiky?", 1)[0].key == ("school", "get_grades")
    # Dutch: "find a table with the average gross wage"
    assert idx.search("Zoek een tabel met het gemiddelde brutoloon", 1)[0].key == ("stats", "find_table")
    # Swedish: "put milk and coffee on my shopping list"
    assert idx.search("Lägg till mjölk och kaffe på min inköpslista", 1)[0].key == (
        "shop",
        "add_to_shopping_list",
    )
    # each concept of languages.txt has its Dutch, Czech and Swedish forms
    assert "@search" in LEXICON.tags("najdi")
    assert "@search" in LEXICON.tags("zoek")
    assert "@create" in LEXICON.tags("skapa")


def test_a_league_named_is_a_competition() -> None:
    idx = index_of(
        {
            "football": [
                {"name": "get_competition_clubs", "description": "Get all clubs in a specific competition."},
                {"name": "get_club_players", "description": "Get the players of a club in a season."},
            ]
        }
    )
    assert idx.search("List every club playing in the Eredivisie this season.", 1)[0].key == (
        "football",
        "get_competition_clubs",
    )
    assert "@league" in LEXICON.tags("¿Cómo va la clasificación de LaLiga esta temporada?")
    # a card game's tournaments near a city are events, no league
    assert "@league" not in LEXICON.tags("Any Lorcana tournaments near Portland next month?")
    assert "@league" not in LEXICON.tags("¿Hay torneos de Lorcana en Madrid este mes?")
    # MLS is also a real-estate listing service: the league is spelled out
    assert "@league" not in LEXICON.tags("Find MLS listings for 3-bed homes in Austin")


def test_a_stock_index_by_name_and_a_share_price_in_chinese() -> None:
    assert "@stock_index" in LEXICON.tags("How is the KSE-100 doing today?")
    assert "@stock_index" in LEXICON.tags("Get current values for major PSX indices: KSE100, KSE30")
    assert "@stock_index" in LEXICON.tags("2025년 3월 14일 코스피 지수 종가 알려줘")
    # the Moscow exchange's index is a phrase of its own words: "индекс" keeps its reading
    assert "@stock_index" not in LEXICON.tags("индекс Мосбиржи в январе")
    idx = index_of(
        {
            "a-stock": [
                {"name": "get_realtime_price", "description": "获取A股实时价格"},
                {"name": "get_financial_data", "description": "获取财务数据"},
            ],
            "shop": [
                {"name": "get_price", "description": "Get the price of a product"},
                {"name": "count_items", "description": "Count the items in the cart"},
            ],
        }
    )
    # "how much is one share of Kweichow Moutai now?": a share's price, not a shop's
    hits = [hit.key for hit in idx.search("贵州茅台600519现在多少钱一股？", 2)]  # noqa: RUF001 - a Chinese question mark
    assert ("a-stock", "get_realtime_price") in hits
    assert ("shop", "get_price") not in hits


def test_a_sites_attendance_in_russian_is_its_traffic() -> None:
    # "посещаемость сайта" is a website's traffic, day by day ("по дням") a daily series
    tags = LEXICON.tags("Покажи посещаемость сайта по дням за март")
    assert "traffic" in tags
    assert "daili" in tags


def test_side_effects_are_adverse_events() -> None:
    assert "@adverse_event" in LEXICON.tags("What side effects do people report with this drug?")


def test_an_order_to_buy_shares_and_starting_the_clock() -> None:
    assert "@trade_order" in LEXICON.tags("Buy 10 shares of TCS at market on NSE")
    assert "@trade_order" in LEXICON.tags("Place a buy or sell order.")
    assert "@worklog" in LEXICON.tags("Start the clock on 'Sprint planning' for project Hermes.")


def test_a_memo_is_a_note() -> None:
    idx = index_of(
        {
            "memos": [
                {"name": "search_memos", "description": "Search memos by content or tags."},
                {"name": "list_tags", "description": "List all tags with their usage counts."},
            ],
            "maps": [{"name": "search_places", "description": "Search for places near a location"}],
        }
    )
    assert idx.search("search notes", 1)[0].key == ("memos", "search_memos")


def test_waves_and_swell_are_marine_weather_and_checklist_items_are_subtasks() -> None:
    assert "@marine_weather" in LEXICON.tags("What are wave heights and swell direction looking like?")
    assert "@marine_weather" in LEXICON.tags("Marine- und Ozean-Wetter: Wellenhöhe, Wellenrichtung")
    assert "@subtask" in LEXICON.tags("Show me the checklist items under card 88120.")


def test_a_product_called_by_a_longer_name_than_its_server() -> None:
    # "Sberbank" begins with the server's name "sber", whose tools say nothing else of the bank
    catalog = {
        "sber": [
            {"name": "sber_products", "description": ""},
            {"name": "sber_operations", "description": ""},
        ],
        "ledger": [
            {"name": "list_accounts", "description": "List the chart of accounts of a general ledger."},
            {"name": "list_cards", "description": "List a board's cards."},
            {"name": "import_statement", "description": "Import a bank statement exported from Sber."},
        ],
        "time": [{"name": "get_current_time", "description": "Current time in a time zone."}],
        "news": [{"name": "timeline", "description": "A story's events in order."}],
    }
    task = "Which accounts and cards do I have at Sberbank?"
    idx = index_of(catalog)
    assert ("sber", "sber_products") in {h.key for h in idx.search(task, 4)}
    assert all(h.key[0] != "sber" for h in index_of(catalog, server_prefix=0.0).search(task, 10))
    # a hidden server's name reads nothing into the task, though a visible tool says "Sber"
    shown = frozenset(key for key in idx.keys() if key[0] != "sber")  # noqa: SIM118 (a method)
    without = index_of({k: v for k, v in catalog.items() if k != "sber"})
    assert idx.search(task, 5, visible=shown) == without.search(task, 5)
    # a common word that begins with a server's name does not name that server
    for common in ("Show me the Timeline of the story", "Open the Timekeeping report"):
        assert idx.search(common, 5) == index_of(catalog, server_prefix=0.0).search(common, 5)


def test_a_lecture_in_korean_is_a_course() -> None:
    # 강의 (a lecture, a class one takes) and 수강 (taking one) are courses, as 강좌 is
    assert "cours" in LEXICON.tags("이번 학기에 수강 중인 강의 목록 좀 보여줘.")
    assert "cours" in LEXICON.tags("강의 목록")


def test_protein_words_and_analysts_ratings_in_other_languages() -> None:
    # 서열 is a (protein's) sequence, 蛋白 a protein, 同源 homology; 格上げ/格下げ an analyst's
    # upgrade and downgrade
    assert {"protein", "sequenc"} <= set(LEXICON.tags("P69905 단백질의 서열 길이"))
    assert {"protein", "homolog"} <= set(LEXICON.tags("小鼠中与人类 TP53 最相似的同源蛋白"))
    assert {"analyst", "upgrad", "downgrad"} <= set(LEXICON.tags("アナリストによる格上げ・格下げの履歴"))


def test_a_thesis_in_other_languages() -> None:
    # Indonesian skripsi (an undergraduate thesis), Spanish tesis, Portuguese tese
    for task in ("Carikan skripsi tentang kopi Gayo", "busca tesis sobre energía solar", "teses sobre café"):
        assert "thesi" in LEXICON.tags(task), task


def test_a_trend_and_a_month_in_other_languages() -> None:
    # a trend (tendência, тенденция, 趋势) and a month (mês, месяц, Monat) as the English words
    for task, english in (
        ("Mostra a tendência do meu peso", "trend"),
        ("покажи тенденцию продаж", "trend"),
        ("Ventas del último mes", "month"),
        ("Umsatz im letzten Monat", "month"),
        ("расходы за месяц", "month"),
    ):
        assert english in LEXICON.tags(task), task


def test_what_is_left_of_a_contraction_is_no_term() -> None:
    # "we're" splits into "we" and "re": "re" would match every tool that says "re-run" or "Re:"
    assert analyze("we're waiting on the DB folks, they've said you'll hear back") == analyze(
        "waiting on the DB folks said hear back"
    )
    assert "don" in analyze("don't send it yet")  # a negation says something (a draft)


def test_vietnamese_lich_is_a_calendar_but_not_inside_history_or_travel() -> None:
    # "lịch" alone is a calendar ("lịch Outlook"); "lịch sử" is history and "du lịch" travel
    assert "calendar" in LEXICON.tags("Tạo cuộc họp trên lịch Outlook ngày 15/01")
    assert "calendar" not in LEXICON.tags("xem lịch sử giao dịch")
    assert "calendar" not in LEXICON.tags("du lịch Đà Nẵng") and "travel" in LEXICON.tags("du lịch Đà Nẵng")


def test_outlook_is_a_microsoft_365_product() -> None:
    # no tool says "Outlook": the server named for Office 365 is the one that serves it
    idx = index_of(
        {
            "office365": [{"name": "cal_create", "description": "Create a calendar event."}],
            "fastmail": [{"name": "calendar_create_event", "description": "Create a calendar event."}],
        }
    )
    assert idx.search("put a meeting on my Outlook calendar for Friday 3pm", 1)[0].key == (
        "office365",
        "cal_create",
    )


def test_market_quotes_in_chinese_korean_and_japanese_are_quotes() -> None:
    # 行情 (a stock's market quotation), 호가 and 気配値 (bid/ask quotes) are quotes
    for text in ("获取股票实时行情", "삼성전자 호가 보여줘", "トヨタの気配値"):
        assert "quot" in LEXICON.tags(text), text


def test_departures_in_czech_polish_dutch_and_swedish() -> None:
    for text in ("Kdy jede nejbližší spoj? Odjezdy ze zastávky Anděl", "rozkład jazdy z Dworca Centralnego",
                 "vertrektijden Utrecht Centraal", "nästa avgång från Slussen"):  # fmt: skip
        assert "@departures" in LEXICON.tags(text), text


def test_an_airplane_in_other_languages_reaches_flight_tools() -> None:
    # 飞机, 飛行機, avión ... read as "airplane", whose neighbours in meaning include flight
    for text in (
        "CA1831 这班飞机现在飞到哪儿了?",
        "¿Dónde está el avión IB3166 ahora?",
        "Wo ist das Flugzeug LH400?",
    ):
        assert "airplan" in dict(SearchIndex().query_terms(text)), text


def test_glucose_pinning_and_archiving_in_other_languages() -> None:
    # glukozy (Polish glucose), 固定して (pin it), Arquiva (Portuguese: archive it)
    assert "glucos" in LEXICON.tags("Jaki był mój średni poziom glukozy przez ostatnie 24 godziny?")
    assert "pin" in LEXICON.tags("「パスポート更新」のメモ、一番上に固定しておいて。")
    assert "archiv" in LEXICON.tags("Arquiva aquela nota antiga, não quero apagar")


def test_e_mail_is_email_and_a_german_tag_is_a_day() -> None:
    # "E-Mail" is the word email (not a letter and "mail"); "Tag für Tag" in German text is day
    # by day, no tag, while an English "tag" stays one
    assert "email" in analyze("Wie viele E-Mails haben wir verschickt?")
    assert "email" in analyze("envoyer un e-mail au client")
    assert "tag" not in analyze("Ich brauche den Verlauf Tag für Tag")
    assert "tag" in analyze("add the tag urgent to the issue")
    assert "tag" in analyze("ajoute le tag urgent aux tickets des clients")  # French: a tag
