"""Language codes: normalize filters to ISO 639-3 and tag result cells with their languages."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping

import polars as pl

from leaderboard_api.scoring.errors import UnknownLanguage

#: (ISO 639-3, ISO 639-1 or "", English names) of the most common languages in benchmarks.
_TABLE: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("afr", "af", ("Afrikaans",)),
    ("amh", "am", ("Amharic",)),
    ("ara", "ar", ("Arabic",)),
    ("arb", "", ("Standard Arabic", "Modern Standard Arabic")),
    ("aze", "az", ("Azerbaijani",)),
    ("bel", "be", ("Belarusian",)),
    ("ben", "bn", ("Bengali", "Bangla")),
    ("bos", "bs", ("Bosnian",)),
    ("bul", "bg", ("Bulgarian",)),
    ("cat", "ca", ("Catalan",)),
    ("ces", "cs", ("Czech",)),
    ("cmn", "", ("Mandarin", "Mandarin Chinese")),
    ("cym", "cy", ("Welsh",)),
    ("dan", "da", ("Danish",)),
    ("deu", "de", ("German",)),
    ("ell", "el", ("Greek", "Modern Greek")),
    ("eng", "en", ("English",)),
    ("epo", "eo", ("Esperanto",)),
    ("est", "et", ("Estonian",)),
    ("eus", "eu", ("Basque",)),
    ("fas", "fa", ("Persian", "Farsi")),
    ("fil", "", ("Filipino",)),
    ("fin", "fi", ("Finnish",)),
    ("fra", "fr", ("French",)),
    ("gle", "ga", ("Irish",)),
    ("glg", "gl", ("Galician",)),
    ("guj", "gu", ("Gujarati",)),
    ("hau", "ha", ("Hausa",)),
    ("heb", "he", ("Hebrew",)),
    ("hin", "hi", ("Hindi",)),
    ("hrv", "hr", ("Croatian",)),
    ("hun", "hu", ("Hungarian",)),
    ("hye", "hy", ("Armenian",)),
    ("ind", "id", ("Indonesian",)),
    ("isl", "is", ("Icelandic",)),
    ("ita", "it", ("Italian",)),
    ("jpn", "ja", ("Japanese",)),
    ("kan", "kn", ("Kannada",)),
    ("kat", "ka", ("Georgian",)),
    ("kaz", "kk", ("Kazakh",)),
    ("khm", "km", ("Khmer",)),
    ("kor", "ko", ("Korean",)),
    ("lao", "lo", ("Lao",)),
    ("lat", "la", ("Latin",)),
    ("lav", "lv", ("Latvian",)),
    ("lit", "lt", ("Lithuanian",)),
    ("ltz", "lb", ("Luxembourgish",)),
    ("mal", "ml", ("Malayalam",)),
    ("mar", "mr", ("Marathi",)),
    ("mkd", "mk", ("Macedonian",)),
    ("mlt", "mt", ("Maltese",)),
    ("mon", "mn", ("Mongolian",)),
    ("msa", "ms", ("Malay",)),
    ("mya", "my", ("Burmese", "Myanmar")),
    ("nep", "ne", ("Nepali",)),
    ("nld", "nl", ("Dutch", "Flemish")),
    ("nob", "nb", ("Norwegian Bokmal", "Norwegian Bokmål", "Bokmal", "Bokmål")),
    ("nno", "nn", ("Norwegian Nynorsk", "Nynorsk")),
    ("nor", "no", ("Norwegian",)),
    ("pan", "pa", ("Punjabi", "Panjabi")),
    ("pol", "pl", ("Polish",)),
    ("por", "pt", ("Portuguese",)),
    ("ron", "ro", ("Romanian", "Moldavian")),
    ("rus", "ru", ("Russian",)),
    ("sin", "si", ("Sinhala", "Sinhalese")),
    ("slk", "sk", ("Slovak",)),
    ("slv", "sl", ("Slovenian", "Slovene")),
    ("spa", "es", ("Spanish", "Castilian")),
    ("sqi", "sq", ("Albanian",)),
    ("srp", "sr", ("Serbian",)),
    ("swa", "sw", ("Swahili",)),
    ("swe", "sv", ("Swedish",)),
    ("tam", "ta", ("Tamil",)),
    ("tel", "te", ("Telugu",)),
    ("tgl", "tl", ("Tagalog",)),
    ("tha", "th", ("Thai",)),
    ("tur", "tr", ("Turkish",)),
    ("ukr", "uk", ("Ukrainian",)),
    ("urd", "ur", ("Urdu",)),
    ("uzb", "uz", ("Uzbek",)),
    ("vie", "vi", ("Vietnamese",)),
    ("yor", "yo", ("Yoruba",)),
    ("yue", "", ("Cantonese", "Yue Chinese")),
    ("zho", "zh", ("Chinese",)),
    ("zsm", "", ("Standard Malay",)),
    ("zul", "zu", ("Zulu",)),
)

#: Lower-cased name or code -> ISO 639-3.
ALIASES: Mapping[str, str] = {
    key.casefold(): code for code, two, names in _TABLE for key in (code, two, *names) if key
}
#: ISO 639-1 -> ISO 639-3, for result tags written with two letters.
TWO_LETTER: Mapping[str, str] = {two: code for code, two, _ in _TABLE if two}
#: Names of the codes in the table (the first English name).
NAMES: Mapping[str, str] = {code: names[0] for code, _, names in _TABLE}

#: Macrolanguages and the individual languages a filter on them also matches.
MACROLANGUAGES: Mapping[str, tuple[str, ...]] = {
    "ara": ("arb", "ary", "arz", "apc", "acm", "ajp", "aeb", "ars"),
    "est": ("ekk",),
    "fas": ("pes", "prs"),
    "lav": ("lvs",),
    "msa": ("zsm", "ind"),
    "mon": ("khk",),
    "nor": ("nob", "nno"),
    "sqi": ("als",),
    "swa": ("swh",),
    "uzb": ("uzn",),
    "zho": ("cmn", "yue", "wuu", "nan", "hak"),
}

#: Programming languages, as benchmarks of code tag them (``python-Code``, ``c++-Code``).
#: They are not ISO 639 codes, so they are matched by name.
PROGRAMMING: frozenset[str] = frozenset(
    {
        "bash", "c", "c#", "c++", "clojure", "cpp", "csharp", "css", "dart", "elixir",
        "erlang", "fortran", "go", "haskell", "html", "java", "javascript", "julia",
        "kotlin", "lua", "matlab", "ocaml", "perl", "php", "powershell", "python", "r",
        "ruby", "rust", "scala", "shell", "sql", "swift", "typescript", "verilog",
    }
)  # fmt: skip

# ISO 639-3 code, optionally with a BCP-47-like script and/or region ("eng-Latn", "por_BR").
_CODE = re.compile(r"^(?P<code>[a-z]{2,3})(?:[-_][a-z0-9]{2,8})*$", re.IGNORECASE)
# A language tag's first part, whatever its length ("python" of "python-Code").
_TAG = re.compile(r"^(?P<code>[a-z][a-z0-9+#]{0,31})(?:[-_][a-z0-9]{2,8})*$", re.IGNORECASE)


def normalize_language(value: str, *, known: Collection[str] | None = None) -> str:
    """One language filter value as an ISO 639-3 code.

    Accepts ``eng``, ``eng-Latn``, ``en``, ``English`` (any case); raises UnknownLanguage
    otherwise.  A three-letter code outside the built-in table is accepted when ``known`` is
    None, and must be in ``known`` (for example the languages of a snapshot) when it is given.
    """
    text = value.strip()
    alias = ALIASES.get(text.casefold())
    if alias is not None:
        return alias
    tag = _TAG.match(text)
    if tag is not None and tag.group("code").lower() in PROGRAMMING:
        return tag.group("code").lower()
    match = _CODE.match(text)
    if match is None:
        if tag is not None and known is not None and tag.group("code").lower() in known:
            return tag.group("code").lower()
        raise UnknownLanguage(value)
    code = match.group("code").lower()
    alias = ALIASES.get(code)
    if alias is not None:
        return alias
    if len(code) != 3:
        raise UnknownLanguage(value, "not a known ISO 639-1 code")
    if known is not None and code not in known:
        raise UnknownLanguage(value, "no results in this dataset are in that language")
    return code


def normalize_languages(
    values: Iterable[str], *, known: Collection[str] | None = None
) -> tuple[str, ...]:
    """Equivalent language filters as one canonical, sorted tuple of ISO 639-3 codes.

    ``["English", "eng-Latn", "fr"]`` and ``["fra", "eng"]`` both give ``("eng", "fra")``, so
    they make one cache key.  Raises UnknownLanguage naming the first value it cannot map.
    """
    return tuple(sorted({normalize_language(v, known=known) for v in values}))


def expand_macrolanguages(codes: Iterable[str]) -> tuple[str, ...]:
    """The codes plus the individual languages of any macrolanguage among them, sorted."""
    out: set[str] = set()
    for code in codes:
        out.add(code)
        out.update(MACROLANGUAGES.get(code, ()))
    return tuple(sorted(out))


def language_label(code: str) -> str:
    """A display name for a code ("eng" -> "English"); the code itself when not in the table."""
    return NAMES.get(code, code)


def code_expr(column: pl.Expr) -> pl.Expr:
    """ISO 639-3 codes of a ``list[str]`` column of tags such as ``eng-Latn`` (sorted, unique)."""
    return (
        column.list.eval(
            pl.element()
            # The tag's first part: "eng" of "eng-Latn", "python" of "python-Code".
            .str.extract(r"^([A-Za-z][A-Za-z0-9+#]*)", 1)
            .str.to_lowercase()
            .replace(dict(TWO_LETTER))
            .drop_nulls()
        )
        .list.unique(maintain_order=False)
        .list.sort()
    )


CELL_KEY = ("task_name", "split", "subset")


def cell_languages(rows: pl.DataFrame, task_languages: Mapping[str, list[str]]) -> pl.DataFrame:
    """The ISO 639-3 codes of every cell: ``task_name, split, subset, cell_languages``.

    A cell's languages are the union of the tags its rows carry (result files of one cell
    do not always all carry them), else its task's languages.
    """
    tags = (
        rows.select(*CELL_KEY, "languages")
        .explode("languages", empty_as_null=True)
        .unique()
        .group_by(*CELL_KEY)
        .agg(pl.col("languages").drop_nulls().alias("__own"))
    )
    names = tags.get_column("task_name").cast(pl.String).unique().sort().to_list()
    lookup = pl.DataFrame(
        {"task_name": names, "__task_langs": [task_languages.get(n, []) for n in names]},
        schema={"task_name": pl.String, "__task_langs": pl.List(pl.String)},
    ).with_columns(pl.col("task_name").cast(pl.Categorical))
    own = pl.col("__own")
    return tags.join(lookup, on="task_name", how="left").select(
        *CELL_KEY,
        code_expr(pl.when(own.list.len() > 0).then(own).otherwise(pl.col("__task_langs"))).alias(
            "cell_languages"
        ),
    )


def available_languages(task_languages: Iterable[Iterable[str]]) -> frozenset[str]:
    """Every ISO 639-3 code among tasks' language tags (for ``normalize_languages(known=)``)."""
    out: set[str] = set()
    for tags in task_languages:
        for tag in tags:
            match = _TAG.match(tag)
            if match is not None:
                code = match.group("code").lower()
                out.add(ALIASES.get(code, code) if len(code) <= 3 else code)
    return frozenset(out)
