"""Dataflow Flex Template entry point: the template's parameters become a `curate run` command line.

Dataflow starts the launcher image's Python file with every template parameter and its own pipeline
options (project, region, temp_location, sdk_container_image, ...) as ``--name=value`` arguments. The
template parameters (deploy/dataflow/metadata.json) are `curate run`'s own flags; everything else is a
Beam option for the Dataflow runner. The recipe may be on gs:// (it is fetched first).
"""

from __future__ import annotations

import sys

from curate.cli import main as curate_main
from curate.core.files import is_local, local_copy
from curate.object_store import configure

# Template parameter -> `curate run` flag (the recipe is its positional argument).
PARAMETERS: dict[str, str] = {
    "recipe": "",
    "recipe_from": "--recipe-from",
    "input": "--input",
    "output": "--output",
    "s3_endpoint_url": "--s3-endpoint-url",
    "s3_region": "--s3-region",
    "strict": "--strict",  # a switch: strict=true
}


def curate_args(argv: list[str]) -> list[str]:
    """``--recipe=gs://b/r.yaml --output=gs://b/out --project=p`` -> ``run r.yaml --output gs://b/out
    --runner dataflow --beam-option project=p``."""
    recipe: str | None = None
    args: list[str] = []
    beam: list[str] = []
    for arg in argv:
        name, _, value = arg.removeprefix("--").partition("=")
        if name == "recipe":
            recipe = value
        elif name == "strict":
            args += [PARAMETERS[name]] if value.lower() in ("true", "1", "yes") else []
        elif name in PARAMETERS:
            args += [PARAMETERS[name], value]
        elif name != "runner":  # always Dataflow here
            beam += ["--beam-option", f"{name}={value}"]
    if recipe is None:
        if "--recipe-from" not in args:
            raise SystemExit("curate flex template: give the 'recipe' or the 'recipe_from' parameter")
        return ["run", *args, "--runner", "dataflow", *beam]
    if not is_local(recipe):
        configure()
        recipe = local_copy(recipe)
    return ["run", recipe, *args, "--runner", "dataflow", *beam]


def main(argv: list[str] | None = None) -> int:
    return curate_main(curate_args(list(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    sys.exit(main())
