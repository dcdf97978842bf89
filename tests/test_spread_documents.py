"""Extracted documents are reshuffled over the workers only when the input units cannot keep them busy
(pipelines/runner.py RunnerConfig.spreads_documents, pipelines/curation.py)."""

from __future__ import annotations

import apache_beam as beam
import pytest

from curate.config import parse_config
from curate.pipelines import curation
from curate.pipelines.dedup_index import Versions


@pytest.mark.parametrize(
    ("runner", "units", "spread"),
    [
        ({"name": "direct", "workers": 2}, 1, True),  # one file: one worker would read and extract it all
        ({"name": "direct", "workers": 2}, 3, True),
        ({"name": "direct", "workers": 2}, 4, False),  # two units per worker: the readers balance them
        ({"name": "direct", "workers": 1}, 1, False),  # nobody to spread to
        ({"name": "direct", "workers": 4}, 7, True),
        ({"name": "flink", "options": {"parallelism": 2}}, 100, True),  # an engine's parallelism is unknown
    ],
)
def test_documents_are_spread_after_extraction_only_when_units_are_few(runner, units, spread, tmp_path):
    files = [str(tmp_path / f"in-{i}.warc.gz") for i in range(units)]
    config = parse_config({"input": files, "output": str(tmp_path / "out"), "runner": runner})
    assert config.runner.spreads_documents(units) is spread

    pipeline = beam.Pipeline()
    stages = curation.enabled_stages(config, Versions())
    curation.build(pipeline, config, files, curation.Layout(str(tmp_path / "out")), stages)
    names = {t.unique_name for t in pipeline.to_runner_api().components.transforms.values()}
    assert ("SpreadDocs" in names) is spread
    assert not any(name.startswith("extract/SpreadDocs") for name in names)
