"""The Chinese catalogue: every string of the web pages is translated, and the committed .mo matches the .po."""

from __future__ import annotations

import gettext
import re
from pathlib import Path

from django.conf import settings

LOCALE = Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES"
# Sources whose strings a clerk reads on the web pages (the models' labels and the services' messages too).
WEB_SOURCES = ("templates/", "enrollment/", "reviews/", "config/")


def _unquote(block: str) -> str:
    joined = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', block))
    escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group(1)), joined)


def po_entries() -> list[dict[str, str | list[str] | bool]]:
    text = (LOCALE / "django.po").read_text(encoding="utf-8")
    entries = []
    for block in text.split("\n\n")[1:]:
        msgid = re.search(r'^msgid ((?:".*"\n?)+)', block, re.M)
        if not msgid:
            continue
        plural = re.search(r'^msgid_plural ((?:".*"\n?)+)', block, re.M)
        msgstr = re.search(r'^msgstr(?:\[0\])? ((?:".*"\n?)+)', block, re.M)
        entries.append(
            {
                "msgid": _unquote(msgid.group(1)),
                "plural": _unquote(plural.group(1)) if plural else "",
                "msgstr": _unquote(msgstr.group(1)) if msgstr else "",
                "refs": re.findall(r"^#: (.*)$", block, re.M),
                "fuzzy": "#, fuzzy" in block or ", fuzzy" in block,
            }
        )
    return entries


def test_every_web_string_has_a_chinese_translation() -> None:
    untranslated = [
        e["msgid"]
        for e in po_entries()
        if any(src in ref for ref in e["refs"] for src in WEB_SOURCES) and (not e["msgstr"] or e["fuzzy"])
    ]
    assert untranslated == []


def test_committed_mo_matches_the_po() -> None:
    with (LOCALE / "django.mo").open("rb") as handle:
        catalogue = gettext.GNUTranslations(handle)
    stale = []
    for entry in po_entries():
        if not entry["msgstr"] or entry["fuzzy"]:
            continue
        got = (
            catalogue.ngettext(entry["msgid"], entry["plural"], 1)
            if entry["plural"]
            else catalogue.gettext(entry["msgid"])
        )
        if got != entry["msgstr"]:
            stale.append(entry["msgid"])
    assert stale == [], "run `make messages` (compilemessages) and commit locale/zh_Hans/LC_MESSAGES/django.mo"


def test_template_strings_are_in_the_catalogue() -> None:
    known = {e["msgid"] for e in po_entries()}
    pattern = re.compile(r"""\{%\s*translate\s+(["'])(.*?)\1""")
    missing = []
    for template in (Path(settings.BASE_DIR) / "templates").rglob("*.html"):
        for _quote, text in pattern.findall(template.read_text(encoding="utf-8")):
            if text not in known:
                missing.append(f"{template.name}: {text}")
    assert missing == [], "run `make messages` and translate the new strings"
