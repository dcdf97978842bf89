"""Reading a recipe: one YAML file, validated against the schema in curate.pipelines.recipe.

Errors are one line naming the file and the key, since a recipe is something users edit by hand.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from curate.core.errors import CurateError
from curate.pipelines.recipe import Config

__all__ = ["Config", "ConfigError", "config_to_yaml", "default_config", "load_config", "parse_config"]


class ConfigError(CurateError, ValueError):
    """A recipe that cannot run; the message is one line naming the file and key."""


def _describe(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    more = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{source}: {key}: {first['msg'].removeprefix('Value error, ')}{more}"


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


class _RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a bound on aliases: nested aliases expand exponentially when walked."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise yaml.YAMLError(f"more than {MAX_ALIASES} aliases (line {mark.line + 1})")
        return super().compose_node(parent, index)

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
    text = _read_recipe(path)
    try:
        loader = _RecipeLoader(text)
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where}: invalid YAML: {getattr(error, 'problem', error)}") from None
    return parse_config(data, str(path))


def default_config() -> Config:
    return Config()


def config_to_yaml(config: Config) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
