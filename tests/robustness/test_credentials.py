"""Runner options that carry a credential never reach a recipe (issue 22, item 10): recipes are copied
into manifest.json, the report and committed versions, so such an option is refused where the recipe is
read, from the file or the command line. Which options carry one is derived from Beam's own option
declarations (runner.beam_credential_options), so a new Beam release's options are covered too."""

from __future__ import annotations

import argparse

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from curate.cli import main
from curate.config import ConfigError, parse_config
from curate.pipelines.runner import beam_credential_options, carries_credential, known_credential_options
from curate.versions.base import redact_recipe


def _recipe(options: dict) -> dict:
    return {"input": {"paths": ["in.jsonl"]}, "runner": {"name": "dataflow", "options": options}}


def test_beams_credential_options_are_found_by_scanning_its_declarations():
    # These four are what Beam 2.77 declares; the scan finds them, not a list in curate.
    known = known_credential_options()
    assert {"azure_connection_string", "s3_access_key_id", "s3_secret_access_key", "s3_session_token"} <= set(
        known
    )
    assert known["azure_connection_string"] == "AzureOptions"


def test_an_options_class_added_later_is_scanned_too():
    class VaultOptions(PipelineOptions):
        @classmethod
        def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
            parser.add_argument("--vault_password", dest="vault_password")
            parser.add_argument("--vault_address")

    found = beam_credential_options()
    assert found["vault_password"] == "VaultOptions" and "vault_address" not in found


@pytest.mark.parametrize(
    "option",
    [
        *sorted(known_credential_options()),
        "--azure_connection_string",
        "service_account_key_file",
        "flink_sasl_password",  # passed through to a runner: refused by its name
        "databricks_api_token",
        "hdfs_client_secret",
        "AZURE_CONNECTION_STRING",
    ],
)
def test_a_credential_option_in_a_recipe_is_refused(option):
    with pytest.raises(ConfigError, match=f"{option} must not be in a recipe: it carries a credential"):
        parse_config(_recipe({option: "DefaultEndpointsProtocol=https;AccountKey=c2VjcmV0"}), "r.yaml")


@pytest.mark.parametrize("option", ["dataflow_kms_key", "max_num_workers", "gcp_oauth_scopes", "no_auth"])
def test_options_that_only_name_things_are_accepted(option):
    assert not carries_credential(option)
    assert parse_config(_recipe({option: "projects/p/keys/k"}), "r.yaml").runner.options[option]


def test_a_credential_given_on_the_command_line_is_refused_before_anything_is_written(
    capsys, tmp_path, write_recipe, shared_path
):
    out = tmp_path / "out"
    recipe = write_recipe(tmp_path / "r.yaml", [str(shared_path("jsonl", "cc_en_head-0091.jsonl.gz"))], out)
    secret = "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=dG9wc2VjcmV0"
    status = main(["run", str(recipe), "--beam-option", f"azure_connection_string={secret}"])
    error = capsys.readouterr().err
    assert status == 2 and "azure_connection_string must not be in a recipe" in error and secret not in error
    assert not out.exists()  # no manifest, report or version could hold it


def test_a_recorded_recipe_drops_credentials_by_the_same_rule():
    recipe, dropped = redact_recipe(
        _recipe({"s3_session_token": "t", "my_api_key": "k", "max_num_workers": 4})
    )
    assert recipe["runner"]["options"] == {"max_num_workers": 4}
    assert dropped == ["runner.options.my_api_key", "runner.options.s3_session_token"]
