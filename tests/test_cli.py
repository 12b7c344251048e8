"""The `pen-factory` command line, without starting servers or Meltano."""

from __future__ import annotations

import pytest

from pen_factory import cli


@pytest.fixture
def project(tmp_path):
    (tmp_path / "meltano.yml").write_text("project_id: test\n")
    (tmp_path / "sub").mkdir()
    return tmp_path


def test_the_project_is_found_from_a_subfolder(project):
    assert cli.find_project_dir(project / "sub") == project.resolve()


def test_status_of_a_server_that_never_ran(project, capsys):
    assert cli.main(["--project-dir", str(project), "embedded", "status"]) == 3
    assert "not running" in capsys.readouterr().out


def test_stop_and_psql_without_a_server(project, capsys):
    assert cli.main(["--project-dir", str(project), "embedded", "stop"]) == 0
    assert cli.main(["--project-dir", str(project), "embedded", "psql"]) == 1
    assert "embedded PostgreSQL is not running" in capsys.readouterr().err


def test_plugins_installed_looks_for_both_virtualenvs(project):
    assert not cli.plugins_installed(project)
    for kind, name in cli.PLUGINS:
        (project / ".meltano" / kind / name / "venv").mkdir(parents=True)
    assert cli.plugins_installed(project)


def test_rows_must_be_a_non_negative_number():
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["demo", "--rows", "-5"])
    assert cli.build_parser().parse_args(["demo", "--rows", "1_000_000"]).rows == 1_000_000


def test_demo_data_reports_a_connection_failure_in_one_line(capsys):
    code = cli.main(["demo-data", "--host", "127.0.0.1", "--port", "1", "--rows", "1"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("pen-factory: error: OperationalError")
    assert "Traceback" not in err
