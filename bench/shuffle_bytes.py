"""What each shuffle of the default recipe carries per document, in bytes as Beam's coder encodes it.

    python bench/shuffle_bytes.py [--corpus DIR] [--max-docs 2000] [--documents OUT/documents]

Shuffles are what a Dataflow or Spark job pays for (and, on Beam's local runner, what the runner process
holds in memory). The elements are built exactly as the stages build them, from real pages of the bench
crawl: raw records as read, extracted documents, documents with every annotation of the default recipe
(read back from a run's OUT/documents), dedup keys, and token rows. Writes bench/results/shuffle_bytes.json.
"""

from __future__ import annotations

import argparse
import glob
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from apache_beam.coders import registry

from curate.core.tokenizer import prepare
from curate.filters.dedup_text import Normalization, exact_key, shingle_hashes
from curate.filters.html_extract import extract_main_text, is_html_content_type
from curate.filters.line_dedup import LineDedupSettings, document_unit_hashes
from curate.filters.minhash import MinHasher, band_keys, choose_lsh_params
from curate.pipelines.readers import InputConfig, read_file

REPO = Path(__file__).resolve().parents[1]
CODER = registry.get_coder(Any)


def size(element: Any) -> int:
    return len(CODER.encode(element))


def documents_with_annotations(folder: Path, limit: int) -> list[dict[str, Any]]:
    """Kept documents as the dedup stages see them: every annotation column back in the dict."""
    docs = []
    for path in sorted(folder.glob("*.parquet")):
        for row in pq.read_table(path).to_pylist():
            row["metadata"] = json.loads(row["metadata"] or "{}")
            row.pop("other_annotations", None)
            for key in ("domain", "n_tokens", "epochs", "dup_cluster", "dup_cluster_size"):
                row.pop(key, None)  # added by dedup_minhash and tokenize, after these shuffles
            docs.append(row)
            if len(docs) >= limit:
                return docs
    return docs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpus", type=Path, default=REPO / "bench" / ".corpus-incremental" / "copies-1-rpf-2000"
    )
    parser.add_argument("--max-docs", type=int, default=2000)
    parser.add_argument(
        "--documents", type=Path, default=REPO / "bench" / ".work-incremental" / "mem-1" / "documents"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "shuffle_bytes.json")
    args = parser.parse_args()

    raw, extracted = [], []
    for path in sorted(glob.glob(str(args.corpus / "*.warc.gz"))):
        for record in read_file(path, InputConfig()):
            if record.get("html") is None or not is_html_content_type(record.get("content_type")):
                continue
            raw.append(size(record))
            doc = {k: v for k, v in record.items() if k not in ("html", "content_type", "charset")}
            doc["text"] = extract_main_text(record["html"], record.get("charset"))
            extracted.append(doc)
            if len(extracted) >= args.max_docs:
                break
        if len(extracted) >= args.max_docs:
            break
    annotated = documents_with_annotations(args.documents, args.max_docs) if args.documents.is_dir() else []

    params = choose_lsh_params(0.7, 128)
    hasher = MinHasher(128, 1)
    normalization = Normalization()
    lines = LineDedupSettings()
    tokenizer = prepare("gpt2")
    from tokenizers import Tokenizer

    encoder = Tokenizer.from_str(tokenizer.json)
    keys = ("exact", "minhash", "lines", "join", "clusters", "tokens")
    rows: dict[str, list[int]] = {key: [] for key in keys}
    for doc in annotated or extracted:
        doc_id, text = doc["id"], doc["text"] or ""
        rows["exact"].append(size((exact_key(text, normalization), ("", doc_id))))
        shingles = shingle_hashes(normalization.words(text))
        if len(shingles):
            signature = hasher.signatures([shingles])[0]
            rows["minhash"].append(
                sum(size((k, (doc_id, signature.tobytes()))) for k in band_keys(signature, params))
            )
        rows["lines"].append(sum(size((h, None)) for h in document_unit_hashes(text, lines)))
        rows["join"].append(size((doc_id, doc)) + size((doc_id, (None, None, None))))
        # JoinClusters: the document and its signature (for the dedup index row); the few documents in
        # a cluster also carry (root, size), left out here.
        signature_bytes = signature.tobytes() if len(shingles) else b""
        rows["clusters"].append(
            size((doc_id, doc)) + (size((doc_id, signature_bytes)) if len(shingles) else 0)
        )
        tokens = np.asarray(encoder.encode(text).ids + [50256], dtype=np.uint16).tobytes()
        rows["tokens"].append(size((0, (((0, 0.0), 123456789, 0), (doc_id, tokens, "web", "en")))))

    def mean(values: list[int]) -> int:
        return round(statistics.fmean(values)) if values else 0

    result = {
        "documents": len(extracted),
        "annotated_documents": len(annotated),
        "bytes_per_document": {
            "raw_record_with_html (before: Read/SpreadDocs reshuffle)": mean(raw),
            "extracted_document (extract/SpreadDocs reshuffle)": mean([size(d) for d in extracted]),
            "dedup_exact GroupByTextHash (hash, id)": mean(rows["exact"]),
            "dedup_exact JoinDecisions (document + decision)": mean(rows["join"]),
            "dedup_minhash GroupByBand (18 bands x (key, id, signature))": mean(rows["minhash"]),
            "dedup_minhash JoinClusters (document + signature)": mean(rows["clusters"]),
            "dedup_lines CountDocsPerUnit (line hashes, before combining)": mean(rows["lines"]),
            "tokenize GroupByShard (id, tokens, domain, lang)": mean(rows["tokens"]),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{len(extracted):,} pages ({len(annotated):,} with the default recipe's annotations)")
    for name, value in result["bytes_per_document"].items():
        print(f"  {name:<66}{value:>10,} B")


if __name__ == "__main__":
    main()
