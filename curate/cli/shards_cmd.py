"""`curate shards inspect|verify OUT`: look at a run's token shards, or prove they are intact."""

from __future__ import annotations

import argparse
import json

from curate.object_store import add_storage_arguments, configure, storage_from_args
from curate.shards import has_documents, inspect, verify


def register(subparsers: argparse._SubParsersAction) -> None:
    shards = subparsers.add_parser("shards", help="Inspect or verify a run's token shards.")
    actions = shards.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("inspect", help="Counts, per-domain token shares and decoded samples.")
    show.add_argument("out", help="Output folder of `curate run` (with manifest.json).")
    show.add_argument("--samples", type=int, default=3, help="Decoded documents to show (default 3).")
    show.add_argument("--chars", type=int, default=300, help="Characters shown per sample.")
    show.add_argument("--json", action="store_true", help="Print the report as JSON.")
    add_storage_arguments(show)
    show.set_defaults(func=_inspect)
    check = actions.add_parser(
        "verify", help="Checksums, schema, EOS, counts, and decode round-trip against documents/."
    )
    check.add_argument("out", help="Output folder of `curate run` (with manifest.json).")
    check.add_argument("--no-decode", action="store_true", help="Skip the decode round-trip (faster).")
    add_storage_arguments(check)
    check.set_defaults(func=_verify)


def _inspect(args: argparse.Namespace) -> int:
    configure(storage_from_args(args))
    report = inspect(args.out, samples=args.samples, sample_chars=args.chars)
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
    configure(storage_from_args(args))
    # The round-trip needs the kept documents' text (OUT/documents, unless output.documents was off).
    decode = not args.no_decode and has_documents(args.out)
    problems = verify(args.out, decode=decode)
    for problem in problems:
        print(f"FAIL {problem}")
    if problems:
        print(f"{args.out}: {len(problems)} problem(s)")
        return 1
    checked = "checksums, schema, EOS, counts"
    checked += ", decode round-trip" if decode else "; no documents/ to decode against"
    print(f"{args.out}: ok ({checked})")
    return 0
