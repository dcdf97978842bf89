"""The demo corpus: real Wikipedia articles that reach a fresh machine through PyPI alone.

The gensim 4.4.0 wheel carries excerpts of real Wikipedia XML dumps as test data (English: 206 pages,
Bulgarian: a few dozen). We download that wheel without installing it, read the dumps out of it, turn
each article's wikitext into plain text with mwparserfromhell, and write JSONL.gz that `curate run` reads
like any user's corpus. Nobody here wrote this text, and the Bulgarian pages exercise language ID.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import json
import subprocess
import sys
import urllib.parse
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from pathlib import Path

from curate.core.errors import CurateError

GENSIM_WHEEL = "gensim==4.4.0"
DUMPS = {
    "en": "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
    "bg": "gensim/test/test_data/bgwiki-latest-pages-articles-shortened.xml.bz2",
}


def _download_wheel(cache: Path) -> Path:
    wheels = sorted(cache.glob("gensim-4.4.0-*.whl"))
    if wheels:
        return wheels[0]
    cache.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", GENSIM_WHEEL]
    result = subprocess.run([*command, "-d", str(cache)], capture_output=True, text=True)
    wheels = sorted(cache.glob("gensim-4.4.0-*.whl"))
    if result.returncode != 0 or not wheels:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise CurateError(f"cannot download {GENSIM_WHEEL} from PyPI for the demo corpus: {last}")
    return wheels[0]


def _pages(xml_stream) -> Iterator[tuple[str, str, str]]:
    """(page id, title, wikitext) for every article (namespace 0, not a redirect)."""
    page: dict[str, str] = {}
    for _event, element in ET.iterparse(xml_stream, events=("end",)):
        tag = element.tag.rsplit("}", 1)[-1]
        if tag in ("title", "ns", "text") or (tag == "id" and "id" not in page):
            page[tag] = element.text or ""
        elif tag == "redirect":
            page["redirect"] = "1"
        elif tag == "page":
            if page.get("ns") == "0" and "redirect" not in page and page.get("text"):
                yield page["id"], page["title"], page["text"]
            page = {}
            element.clear()


# Link namespaces of images and other media (English and Bulgarian names, as the dumps spell them):
# `[[File:x.jpg|thumb|upright=1.3|A caption]]` would otherwise leave "thumb|upright=1.3|A caption".
MEDIA_NAMESPACES = ("file", "image", "media", "файл", "картинка", "медия", "изображение")


def wikitext_to_text(wikitext: str) -> str:
    """Plain text of an article: templates, tables, refs and link markup removed; paragraphs kept."""
    import mwparserfromhell

    parsed = mwparserfromhell.parse(wikitext)
    for link in parsed.filter_wikilinks():  # images: their options and caption are not prose
        namespace, colon, _ = str(link.title).strip().partition(":")
        if colon and namespace.strip().lower() in MEDIA_NAMESPACES:
            with contextlib.suppress(ValueError):  # inside an image already removed
                parsed.remove(link)
    text = parsed.strip_code(normalize=True, collapse=True, keep_template_params=False)
    lines = [" ".join(line.split()) for line in text.splitlines()]  # a removed link leaves a double space
    # What the parser could not take apart (an unbalanced image link) is dropped whole, as are category
    # lines and gallery entries.
    markup = ("category:", *(f"{prefix}{name}:" for prefix in ("", "[[") for name in MEDIA_NAMESPACES))
    paragraphs = [line for line in lines if line and not line.lower().startswith(markup)]
    return "\n".join(paragraphs)


def write_demo_corpus(out_dir: str | Path, cache: str | Path | None = None) -> list[Path]:
    """Write one JSONL.gz per language into ``out_dir``; returns the files. Idempotent."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = _download_wheel(Path(cache) if cache else out_dir / ".wheel")
    written: list[Path] = []
    with zipfile.ZipFile(wheel) as archive:
        for lang, member in DUMPS.items():
            target = out_dir / f"wikipedia-{lang}.jsonl.gz"
            written.append(target)
            if target.exists():
                continue
            temporary = target.with_suffix(".tmp")
            with archive.open(member) as raw, bz2.open(raw) as xml_stream, gzip.open(temporary, "wt") as out:
                for page_id, title, wikitext in _pages(xml_stream):
                    text = wikitext_to_text(wikitext)
                    if not text:
                        continue
                    url = f"https://{lang}.wikipedia.org/wiki/{urllib.parse.quote(title.replace(' ', '_'))}"
                    row = {"id": f"{lang}wiki-{page_id}", "url": url, "title": title, "text": text}
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
            temporary.rename(target)
    return written
