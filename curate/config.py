"""Reading a recipe: one YAML file, validated against the schema in curate.pipelines.recipe.

Errors are one line naming the file and the key, since a recipe is something users edit by hand.
"""

from __future__ import annotations

import difflib
import stat
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from curate.core.errors import CurateError
from curate.pipelines.recipe import Config

__all__ = [
    "Config",
    "ConfigError",
    "config_to_yaml",
    "default_config",
    "error_message",
    "load_config",
    "parse_config",
    "parse_yaml",
]


class ConfigError(CurateError, ValueError):
    """A recipe that cannot run; the message is one line naming the file and key."""


def _describe(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    more = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{source}: {key}: {error_message(first)}{more}"


def error_message(error: Any) -> str:
    """One validation error's message; for an unknown key, the known key it was probably meant to be."""
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden" and error["loc"]:
        model = _model_at(Config, error["loc"][:-1])
        known = list(model.model_fields) if model else []
        close = difflib.get_close_matches(str(error["loc"][-1]), known, n=1, cutoff=0.6)
        message = "unknown key" + (
            f"; did you mean '{close[0]}'?" if close else f" (known: {', '.join(known)})"
        )
    return message


def _model_at(model: type[BaseModel], loc: Any) -> type[BaseModel] | None:
    """The config model at ``loc`` inside ``model`` (list indices and dict keys step into their items)."""
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            continue  # a list index or a dict key: the items' model is the one found so far
        inner = _model_in(field.annotation)
        if inner is None:
            return None
        model = inner
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def parse_config(data: Any, source: str = "<config>") -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return Config.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_describe(error, source)) from None


MAX_RECIPE_BYTES = 1_000_000  # a recipe is a page of YAML; more is a mistake or an attack
MAX_ALIASES = 100  # YAML aliases a recipe may use (an "anchor bomb" nests them to exhaust memory)
MAX_DEPTH = 50  # nesting a recipe may use (the deepest real key is ~6 levels; PyYAML recurses per level)


class _RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader with bounds on aliases (nested aliases expand exponentially when walked) and
    on nesting (PyYAML composes and constructs recursively: deep nesting would exhaust the stack)."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.aliases = 0
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise yaml.YAMLError(f"more than {MAX_ALIASES} aliases (line {mark.line + 1})")
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.YAMLError(f"nested more than {MAX_DEPTH} levels deep (line {mark.line + 1})")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """A key given twice is an error: the second would silently replace the first (a second
        `langid:` entry turning language ID off)."""
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node)
            if key in first_line:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key '{key}' (first given on line {first_line[key] + 1}); keep one",
                    key_node.start_mark,
                )
            first_line[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def parse_yaml(text: str, source: str) -> Any:
    """A recipe's YAML text as data, with the loader's bounds; ConfigError naming ``source`` and the line.

    The command line and the service both parse recipes here, so both refuse the same inputs."""
    try:
        loader = _RecipeLoader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f": line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{source}{where}: invalid YAML: {getattr(error, 'problem', error)}") from None


def _read_recipe(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISDIR(mode):
            raise ConfigError(f"{path}: not a regular file; give a recipe YAML file")
        with open(path, "rb") as handle:  # a device (/dev/zero) is read no further than the cap
            data = handle.read(MAX_RECIPE_BYTES + 1)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config: {error.strerror}") from None
    if len(data) > MAX_RECIPE_BYTES:
        raise ConfigError(f"{path}: more than {MAX_RECIPE_BYTES:,} bytes; a recipe may have at most that")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start})") from None


def load_config(path: str | Path) -> Config:
    path = Path(path)
    return parse_config(parse_yaml(_read_recipe(path), str(path)), str(path))


def default_config() -> Config:
    return Config()


def config_to_yaml(config: Config) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
