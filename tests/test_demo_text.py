"""The demo converter: wikitext to the plain text a user would call the article (curate/demo.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("mwparserfromhell", reason="the demo extra: pip install -e '.[demo]'")

from curate.demo import wikitext_to_text  # noqa: E402


def test_image_links_leave_neither_options_nor_caption():
    wikitext = (
        "'''Lyon''' is a city in [[France|French]] territory.\n"
        "[[File:Lyon night.jpg|thumb|upright=1.3|left|The [[Saône]] at night]]\n"
        "It lies where two rivers meet.[[Image:Map.png|200px]] More text.\n"
        "[[Картинка:Лион.jpg|мини|Река]]Градът е голям.\n"
        "[[Category:Cities]]"
    )
    assert wikitext_to_text(wikitext) == (
        "Lyon is a city in French territory.\nIt lies where two rivers meet. More text.\nГрадът е голям."
    )


def test_an_unbalanced_image_link_is_dropped_whole():
    text = wikitext_to_text("Prose stays.\n[[File:Broken.svg|thumb|A caption with [[a link]] never closed\n")
    assert text == "Prose stays."
