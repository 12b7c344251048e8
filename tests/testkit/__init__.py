"""The test suite's helpers, in one importable package (tests/ is on pytest's pythonpath).

singer.py builds Singer messages, postgres.py talks to the test server, processes.py finds the
installed executables, target.py pipes Singer text into the real target; tap.py, cdc.py,
pipeline.py (real `meltano` on fresh databases), faults.py, dbt_runs.py, airflow_dag.py and
type_zoo.py serve their own test folders. conftest.py files only declare fixtures.
"""
