"""Check everything a recipe names before a run touches anything: inputs, the files stages load, and the
output location. `curate run` and `curate config validate` run the same checks, so "ok" from validate
means the run will at least start; a problem found an hour into a cluster run costs the hour.
"""

from __future__ import annotations

import itertools
import os
import stat
from dataclasses import dataclass

from apache_beam.io.filesystems import FileSystems

from curate.config import Config
from curate.core.config import path_values
from curate.core.errors import CurateError
from curate.core.files import is_local
from curate.core.tokenizer import prepare
from curate.pipelines import mixing, token_shards
from curate.pipelines.curation import BuiltStages, enabled_stages
from curate.pipelines.dedup_index import Versions
from curate.pipelines.readers import detect_format, expand_inputs, read_file
from curate.pipelines.stage_order import DOCUMENT_STAGES
from curate.versions import resolve_data


def recipe_files(config: Config) -> list[tuple[str, str]]:
    """``(recipe key, path)`` for every file an enabled stage will open: the values of the stage config
    fields declared to name a file (`NamesPath("file")`, found by `path_values`), so a stage that adds
    such a field is checked here without editing a list. Bundled names ("gpt2") and versions are not
    paths; a tokenizer that is trained instead of loaded is not opened."""
    found = []
    for value in path_values(config.stages, ("stages",)):
        stage_name = str(value.loc[1])
        stage = getattr(config.stages, stage_name, None)
        if value.marker.kind != "file" or value.marker.writes or not value.marker.is_path(value.value):
            continue
        if stage is None or not getattr(stage, "enabled", True):
            continue
        if stage_name == "tokenize" and config.stages.of(token_shards.STAGE).train is not None:
            continue  # a tokenizer is trained instead
        found.append((".".join(str(part) for part in value.loc if isinstance(part, str)), value.value))
    return found


def check_readable_file(path: str, what: str) -> None:
    """A regular file that exists and can be read (a FIFO or device would block or never end)."""
    if not is_local(path):
        if not FileSystems.exists(path):
            raise CurateError(f"{what}: {path} does not exist")
        return
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise CurateError(f"{what}: {path}: {error.strerror}") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a pipe, socket or device)"
        raise CurateError(f"{what}: {path} is {kind}; give a regular file")
    if not os.access(path, os.R_OK):
        raise CurateError(f"{what}: {path} is not readable (permissions)")


def check_output(path: str) -> None:
    """The output location: named, not a file, and creatable/writable where it is local."""
    if not path.strip():
        raise CurateError("output.path is empty: give the folder the run writes to (--output DIR)")
    if not is_local(path):
        return
    if os.path.exists(path) and not os.path.isdir(path):
        raise CurateError(f"output.path: {path} is a file, not a folder; choose another --output")
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise CurateError(f"output.path: {path} cannot be created: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CurateError(f"output.path: {path} is not writable ({existing}: permission denied)")


def input_files(config: Config) -> list[str]:
    """The input files, resolved and checked: each exists, is a regular file, and has a known format."""
    files = expand_inputs(config.input.paths, output=config.output.path)
    for path in files:
        check_readable_file(path, "input")
        if config.input.format == "auto":
            detect_format(path)
    return files


# Fields WARC/WET documents carry besides the stages' annotations (their metadata).
_WARC_FIELDS = {"warc_record_id", "warc_date", "http_status"}


def check_order_by(config: Config, files: list[str]) -> None:
    """``tokenize.order_by`` must name something documents will have: an annotation of an enabled stage,
    or (JSONL/Parquet input) an input field, which curate cannot know in advance."""
    tokenize = config.stages.of(token_shards.STAGE)
    order_by = tokenize.order_by
    if not order_by or not tokenize.enabled:
        return
    known = {"read_error"} | {
        name
        for stage in DOCUMENT_STAGES
        if config.stages.of(stage).enabled
        for name in stage.annotations(config.stages.of(stage))
    }
    if config.stages.of(mixing.STAGE).enabled:
        known.add("domain")
    formats = {config.input.format if config.input.format != "auto" else detect_format(f) for f in files}
    if formats & {"warc", "wet"}:
        known |= _WARC_FIELDS
    if formats & {"jsonl", "parquet"}:
        known |= _input_fields(config, files)
    if order_by in known:
        return
    raise CurateError(
        f"stages.tokenize.order_by: '{order_by}' is not an annotation of the enabled stages or a field of "
        f"the input's first records; known: {', '.join(sorted(known))}"
    )


ORDER_BY_SAMPLE = 100  # records per JSONL/Parquet input whose fields order_by may name


def _input_fields(config: Config, files: list[str]) -> set[str]:
    """The fields of the first records of each JSONL/Parquet input (what order_by can name there)."""
    fields: set[str] = set()
    for path in files:
        if (config.input.format if config.input.format != "auto" else detect_format(path)) in ("warc", "wet"):
            continue
        for doc in itertools.islice(read_file(path, config.input), ORDER_BY_SAMPLE):
            fields |= set(doc.get("metadata") or {})
    return fields


def check_tokenizer(config: Config) -> None:
    """The tokenizer file loads as a tokenizer (``prepare`` is what the run calls, an hour later)."""
    tokenize = config.stages.of(token_shards.STAGE)
    if tokenize.enabled and tokenize.train is None:
        prepare(tokenize.tokenizer)


@dataclass
class Checked:
    """What preflight found: the input files, and the enabled stages built (each built once per run)."""

    files: list[str]
    stages: BuiltStages


def preflight(config: Config, check_files: bool = True, require_inputs: bool = True) -> Checked:
    """Every check a run needs before it starts. Raises CurateError (one line).

    ``check_files=False`` checks the recipe alone; ``require_inputs=False`` accepts a recipe without
    inputs (they may come from --input at run time)."""
    if not config.output.path.strip():
        raise CurateError("output.path is empty: give the folder the run writes to (--output DIR)")
    if require_inputs and not config.input.paths:
        raise CurateError("input.paths: no input given (set it in the recipe or pass --input)")
    files: list[str] = []
    if check_files:
        check_output(config.output.path)
        if config.input.paths:
            files = input_files(config)
        for key, path in recipe_files(config):
            check_readable_file(path, key)
        check_tokenizer(config)
    if files:
        check_order_by(config, files)
    # Every enabled stage built (once per run): one that is not available fails now, naming it.
    return Checked(files, enabled_stages(config, Versions(resolve_data)))
