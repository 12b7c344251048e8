"""The project's own files agree with each other: README, meltano.yml, .env.example."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pen_factory import readme_settings

ROOT = Path(__file__).resolve().parent.parent


def test_readme_settings_tables_match_the_plugins():
    stale = readme_settings.sync_project(ROOT, check=True)
    assert not stale, f"settings tables out of date in {stale}: run `pen-factory readme-settings`"


def test_quick_start_is_exactly_two_commands():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)
    assert block.strip().splitlines() == ["python3 run.py demo", "python3 run.py test"]


# Variables Meltano itself provides to meltano.yml; a user never sets them.
_MELTANO_PROVIDED = {"MELTANO_PROJECT_ROOT"}


def _meltano_variables() -> set[str]:
    lines = (ROOT / "meltano.yml").read_text().splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    return set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)\}?", text)) - _MELTANO_PROVIDED


def test_env_example_lists_every_variable_meltano_yml_reads():
    example = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", example, re.MULTILINE))
    assert _meltano_variables() <= listed
    passwords = re.findall(r"^[A-Z_]*PASSWORD=(\S*)", example, re.MULTILINE)
    assert passwords
    assert set(passwords) == {""}  # no secrets, not even example ones


def test_every_setting_is_declared_with_kind_and_description():
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    plugins = [plugin for group in project["plugins"].values() for plugin in group]
    for plugin in plugins:
        for setting in plugin.get("settings", []):  # inherited plugins declare none
            assert setting.get("kind"), (plugin["name"], setting["name"])
            assert setting.get("description"), (plugin["name"], setting["name"])
            if setting["name"].endswith("password"):
                assert setting["kind"] == "password", setting["name"]
                assert setting.get("sensitive") is True, setting["name"]


def test_the_tap_and_the_check_read_the_same_sources():
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    tap = project["plugins"]["extractors"][0]["config"]["sources"]
    check = project["plugins"]["loaders"][0]["config"]["check_sources"]
    assert set(tap) == set(check) == {"refills", "bodies", "springs"}
    for name, block in tap.items():
        for key, value in check[name].items():
            assert block[key] == value
        assert check[name]["host"] == f"${name.upper()}_HOST"


def _flatten(properties: dict, prefix: str = "") -> set[str]:
    names = set()
    for name, schema in properties.items():
        names.add(prefix + name)
        extra = schema.get("additionalProperties")
        nested = schema.get("properties") or (
            extra.get("properties") if isinstance(extra, dict) else None
        )
        if nested and prefix + name != "check_sources":
            names |= _flatten(nested, f"{prefix}{name}.")
    return names


def _declared_schema(import_path: str) -> dict:
    """A plugin class's own config schema, from a fresh interpreter: the SDK adds its built-in
    settings (stream maps, flattening, ...) to the class once a plugin has been instantiated,
    and other tests in this process may have done that."""
    module, name = import_path.rsplit(".", 1)
    code = f"import json; from {module} import {name} as P; print(json.dumps(P.config_jsonschema))"
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def test_meltano_yml_declares_every_setting_the_plugins_declare():
    """When a plugin gains a setting, meltano.yml must declare it too (kind, description)."""
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    declared = {
        plugin["name"]: {setting["name"] for setting in plugin.get("settings", [])}
        for plugin in project["plugins"]["extractors"] + project["plugins"]["loaders"]
    }
    tap = _flatten(_declared_schema("tap_manufacturing.tap.TapManufacturing")["properties"])
    tap -= {f"sources.{name}" for name in ("refills", "bodies", "springs")}  # the objects
    assert tap - declared["tap-manufacturing"] == set()
    target = _declared_schema("target_warehouse_raw.target.TargetWarehouseRaw")["properties"]
    assert set(target) - declared["target-warehouse-raw"] == set()
    check_fields = target["check_sources"]["additionalProperties"]["properties"]
    for source in ("refills", "bodies", "springs"):
        for field in check_fields:
            assert f"check_sources.{source}.{field}" in declared["target-warehouse-raw"]


def _plugin(project: dict, name: str) -> dict:
    return next(p for group in project["plugins"].values() for p in group if p["name"] == name)


def test_each_per_source_plugin_reads_only_its_source_and_the_job_ends_with_the_check():
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    sources = project["plugins"]["extractors"][0]["config"]["sources"]
    job = {job["name"]: job for job in project["jobs"]}["manufacturing-el"]
    for source in sources:
        plugin = _plugin(project, f"tap-manufacturing--{source}")
        assert plugin["inherit_from"] == "tap-manufacturing"
        assert plugin["config"] == {"only_sources": [source]}
        assert f"tap-manufacturing--{source} target-warehouse-raw" in job["tasks"]
    assert job["tasks"][-1] == "warehouse-check:test"
    # The check utility is the loader's package, settings and config, under its namespace.
    check, loader = _plugin(project, "warehouse-check"), _plugin(project, "target-warehouse-raw")
    for key in ("namespace", "pip_url", "settings", "config"):
        assert check[key] == loader[key], key
    assert check["executable"] == loader["commands"]["check"]["executable"]


def test_airflow_is_pinned_by_the_committed_constraints_file():
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    pip_url = _plugin(project, "airflow")["pip_url"].split()
    folder = ROOT / "orchestrate" / "airflow"
    requirement = [
        line for line in (folder / "requirements.in").read_text().splitlines()
        if line and not line.startswith("#")
    ]  # fmt: skip
    assert pip_url == [*requirement, "--constraint", "orchestrate/airflow/constraints.txt"]
    pins = dict(
        line.split(" ;")[0].split("==")
        for line in (folder / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith(" ")
    )
    name, version = requirement[0].split("==")
    assert pins[name.split("[")[0]] == version
    assert len(pins) > 100  # every dependency, not only Airflow


def test_meltano_lock_files_are_not_git_ignored():
    """Meltano keeps plugin lock files in plugins/ for the project to commit."""
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "plugins/extractors/tap-example--meltanolabs.lock"],
        cwd=ROOT,
        check=False,
    )
    assert ignored.returncode == 1


@pytest.mark.parametrize("folder", ["tap-manufacturing", "target-warehouse-raw", "."])
def test_each_package_has_the_license_it_declares(folder):
    manifest = (ROOT / folder / "pyproject.toml").read_text()
    assert re.findall(r'^license = "(.*)"$', manifest, re.M) == ["Apache-2.0"]
    text = (ROOT / folder / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "END OF TERMS AND CONDITIONS" in text
    assert hashlib.md5(text.encode()).hexdigest() == "3b83ef96387f14655fc854ddc3c6bd57"


def test_dbt_reads_the_warehouse_the_loader_writes():
    """The dbt utility takes each connection setting from the variable the loader takes it
    from, in every environment, and the profile applies the loader's own defaults."""
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    dbt = _plugin(project, "dbt-postgres")
    loader = _plugin(project, "target-warehouse-raw")
    assert dbt["pip_url"] == "dbt-core~=1.10.0 dbt-postgres~=1.9.0"
    for setting in dbt["settings"]:
        assert setting.get("kind"), setting["name"]
        assert setting.get("description"), setting["name"]
    password = next(s for s in dbt["settings"] if s["name"] == "password")
    assert (password["kind"], password.get("sensitive")) == ("password", True)
    same = {"host": "host", "port": "port", "dbname": "database", "user": "user",
            "password": "password", "source_schema": "schema", "sslmode": "sslmode"}  # fmt: skip
    for dbt_name, loader_name in same.items():
        assert dbt["config"][dbt_name] == loader["config"][loader_name], dbt_name
    assert dbt["config"]["schema"] == "$WAREHOUSE_ANALYTICS_SCHEMA"
    # `meltano test` runs every command called test or test-*: none of dbt's is.
    assert not [name for name in dbt["commands"] if name.startswith("test")]
    prod = next(env for env in project["environments"] if env["name"] == "prod")["config"]
    prod_loader = _plugin(prod, "target-warehouse-raw")["config"]
    prod_dbt = _plugin(prod, "dbt-postgres")["config"]
    assert prod_dbt == {"target": "prod", "sslmode": prod_loader["sslmode"]}

    profile = yaml.safe_load((ROOT / "transform" / "profiles" / "profiles.yml").read_text())
    outputs = profile["pen_factory"]["outputs"]
    defaults = _declared_schema("target_warehouse_raw.target.TargetWarehouseRaw")["properties"]
    for field, variable, loader_setting in (
        ("host", "HOST", "host"), ("port", "PORT", "port"), ("dbname", "DB", "database"),
        ("user", "USER", "user"),
    ):  # fmt: skip
        default = defaults[loader_setting]["default"]
        for output in outputs.values():
            expression = output[field]
            assert f"env_var('DBT_POSTGRES_{field.upper()}', '')" in expression
            assert f"env_var('WAREHOUSE_{variable}', '')" in expression
            assert f"or '{default}'" in expression, (field, default)
    assert "or 'prefer'" in outputs["dev"]["sslmode"]
    assert outputs["prod"]["sslmode"] == "{{ env_var('DBT_POSTGRES_SSLMODE', '') or 'require' }}"


def test_the_job_loads_then_builds_the_models_then_checks():
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    job = next(job for job in project["jobs"] if job["name"] == "manufacturing-el")
    loads = [task for task in job["tasks"] if task.endswith(" target-warehouse-raw")]
    assert job["tasks"] == [*loads, "dbt-postgres:build", "warehouse-check:test"]
    assert len(loads) == 3
