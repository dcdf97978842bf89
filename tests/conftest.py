"""Shared fixtures: the real sample data in ../shared, and a fast single-process runner setting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data; skips the test when ../shared is absent (never in CI: it fails)."""
    path = SHARED.joinpath("data", *parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: CI must run with ../shared beside the checkout")
        pytest.skip(f"needs the sample data at {path} (the ../shared folder beside the checkout)")
    return path


@pytest.fixture
def shared_data() -> Path:
    return shared_path()


# ------------------------------------------------------------ quality classifier (trained once a session)


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory) -> Path:
    """The demo's real Wikipedia articles (`curate demo fetch`), the gensim wheel cached across sessions."""
    from curate.demo import write_demo_corpus

    out = tmp_path_factory.mktemp("demo")
    write_demo_corpus(out, cache=Path.home() / ".cache" / "curate" / "demo-wheel")
    return out


def crawl_pages() -> list[dict]:
    """Main text of every HTML page in ../shared/data/crawl, as documents."""
    from curate.filters.html_extract import extract_main_text, is_html_content_type
    from curate.pipelines.readers import InputConfig, read_file

    docs = []
    for path in sorted(shared_path("crawl").glob("*.warc.gz")):
        for doc in read_file(str(path), InputConfig()):
            html = doc.get("html")
            if html is not None and is_html_content_type(doc.get("content_type")):
                text = extract_main_text(html, doc.get("charset"))
                if text.strip():
                    docs.append({"id": doc["id"], "url": doc.get("url"), "text": text})
    return docs


@pytest.fixture(scope="session")
def quality_rejected_pages(tmp_path_factory) -> Path:
    """Pages of the shared crawl that the quality rules reject, as JSONL (the classifier's negatives)."""
    import json

    from curate.filters.quality import QualityConfig, QualityFilter

    pages = crawl_pages()
    rules = QualityFilter(QualityConfig())
    rejected = [d for d, a in zip(pages, rules.annotate(pages), strict=True) if rules.decide(a, d)]
    path = tmp_path_factory.mktemp("negatives") / "rejected.jsonl"
    path.write_text("".join(json.dumps(doc) + "\n" for doc in rejected), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def quality_model(demo_corpus, quality_rejected_pages, tmp_path_factory):
    """A fastText classifier trained by `curate classifier train` (Wikipedia vs rejected crawl pages)."""
    from curate.classifier_train import train

    output = tmp_path_factory.mktemp("classifier") / "wiki_vs_crawl.bin"
    report = train(
        [str(demo_corpus / "wikipedia-en.jsonl.gz")],
        [str(quality_rejected_pages)],
        str(output),
        valid_fraction=0.3,
    )
    return output, report
