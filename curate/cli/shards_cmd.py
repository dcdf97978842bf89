"""`curate shards inspect|verify OUT`: look at a run's token shards, or prove they are intact;
`curate shards import SRC --format megatron|hf --output OUT`: bring a tokenized corpus in as shards."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from curate.object_store import add_storage_arguments, configure, storage_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    shards = subparsers.add_parser("shards", help="Inspect or verify a run's token shards.")
    actions = shards.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("inspect", help="Counts, per-domain token shares and decoded samples.")
    show.add_argument("out", help="Output folder of `curate run`, NAME@REF or lakefs://REPO/REF[/PATH].")
    show.add_argument("--samples", type=int, default=3, help="Decoded documents to show (default 3).")
    show.add_argument("--chars", type=int, default=300, help="Characters shown per sample.")
    show.add_argument("--json", action="store_true", help="Print the report as JSON.")
    add_storage_arguments(show)
    show.set_defaults(func=_inspect)
    check = actions.add_parser(
        "verify", help="Checksums, schema, EOS, counts, and decode round-trip against documents/."
    )
    check.add_argument("out", help="Output folder of `curate run`, NAME@REF or lakefs://REPO/REF[/PATH].")
    check.add_argument("--no-decode", action="store_true", help="Skip the decode round-trip (faster).")
    add_storage_arguments(check)
    check.set_defaults(func=_verify)
    bring = actions.add_parser(
        "import", help="A Megatron indexed dataset or a Hugging Face dataset as curate shards (hash-checked)."
    )
    bring.add_argument("source", help="Megatron PREFIX (PREFIX.bin/.idx) or folder with data.bin; HF folder.")
    bring.add_argument("--format", required=True, choices=["megatron", "hf"])
    bring.add_argument("--output", required=True, metavar="OUT", help="A new folder for the shards.")
    bring.add_argument("--tokenizer", metavar="FILE", help="The ids' tokenizer.json (default: SOURCE's own).")
    bring.add_argument("--domain", default="imported", help="Domain of every document (for mixing).")
    bring.add_argument("--column", default="input_ids", help="HF: the token-id column (default input_ids).")
    bring.add_argument("--shard-tokens", type=int, default=50_000_000, help="Tokens per shard.")
    bring.set_defaults(func=_import)


# What verify reads of a lakeFS version (streamed into a temporary folder, nothing else fetched); inspect
# reads a lakeFS version in place and an embedded one from its cached checkout.
_INSPECT_FILES = ("manifest.json", "tokenizer.json", "shards/*")
_VERIFY_FILES = (*_INSPECT_FILES, "documents/*")


def _on_object_store(path: str) -> bool:
    """gs://, s3:// and the like; not a local folder, NAME@REF or a lakefs:// version."""
    return "://" in path and not path.startswith(("lakefs://", "file://"))


def _inspect(args: argparse.Namespace) -> int:
    from curate.shards import inspect

    configure(storage_from_args(args))
    if _on_object_store(args.out):  # read in place through Beam's filesystems
        report = inspect(args.out, samples=args.samples, sample_chars=args.chars)
    elif args.out.startswith("lakefs://"):  # read in place: the manifest, tokenizer and sampled shards only
        from curate.versions import resolve_data

        report = inspect(resolve_data(args.out), samples=args.samples, sample_chars=args.chars)
    else:
        from curate.versions import local_view

        with local_view(args.out, _INSPECT_FILES) as root:
            report = inspect(root, samples=args.samples, sample_chars=args.chars)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    tok = report["tokenizer"]
    print(
        f"{args.out}: {report['shards']} shard(s), {report['documents']:,} documents, "
        f"{report['total_tokens']:,} tokens ({report['token_dtype']})"
    )
    print(f"tokenizer: {tok.get('source') or tok['path']}, vocab {tok['vocab_size']:,}, eos {tok['eos_id']}")
    print(f"  {'domain':<20}{'tokens':>14}{'share':>9}")
    for domain, entry in report["domains"].items():
        print(f"  {domain:<20}{entry['tokens']:>14,}{entry['share']:>9.2%}")
    for sample in report["samples"]:
        text = sample["text"].replace("\n", " ")
        print(f"\n[{sample['domain']}] {sample['id']}\n  {text}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from curate.shards import has_documents, verify

    configure(storage_from_args(args))
    if _on_object_store(args.out):  # read in place through Beam's filesystems
        # The round-trip needs the kept documents' text (OUT/documents, unless output.documents was off).
        decode = not args.no_decode and has_documents(args.out)
        problems = verify(args.out, decode=decode)
    else:
        from curate.versions import local_view

        files = _INSPECT_FILES if args.no_decode else _VERIFY_FILES
        with local_view(args.out, files) as root:
            decode = not args.no_decode and any(Path(root, "documents").glob("*.parquet"))
            problems = [p.replace(str(root), args.out.rstrip("/")) for p in verify(root, decode=decode)]
    for problem in problems:
        print(f"FAIL {problem}")
    if problems:
        print(f"{args.out}: {len(problems)} problem(s)")
        return 1
    checked = "checksums, schema, EOS, counts"
    checked += ", decode round-trip" if decode else "; no documents/ to decode against"
    print(f"{args.out}: ok ({checked})")
    return 0


def _import(args: argparse.Namespace) -> int:
    from curate.shard_import import import_tokens

    result = import_tokens(
        args.source,
        args.format,
        args.output,
        tokenizer_file=args.tokenizer,
        domain=args.domain,
        column=args.column,
        shard_tokens=args.shard_tokens,
    )
    print(json.dumps(result))
    return 0 if result.get("export_hash_matches", True) else 1
