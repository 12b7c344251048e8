"""The benchmark harness behind `bench/bench.py`: data sets, timed runs, server probes, report.

Modules, one job each:
  datasets      the source tables (the demo's, a realistic one, a wide one), generated on the
                server, deterministic by seed
  realistic_sql the SQL of the realistic and the wide table
  server        the PostgreSQL server under test: choice, connections, settings, table sizes
  probes        what is measured around a run besides wall time: server CPU, WAL, plugin RSS
  methods       one timed run of each method (raw COPY, tap | target, meltano run)
  series        the loop of runs over one warehouse, and the checks after each run
  report        the printed tables and the JSON results file
  cli           the command line
"""
