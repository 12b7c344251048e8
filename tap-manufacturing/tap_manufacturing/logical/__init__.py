"""LOG_BASED replication: change data capture through PostgreSQL's built-in logical decoding.

- pgoutput.py  decodes the `pgoutput` plugin's messages (pure)
- slots.py     replication slots and publications: create, check, advance, drop
- render.py    renders pgoutput's text values exactly as a full-table read does, on the source
- changes.py   reads one run's changes and writes RECORD and STATE messages
- catalog.py   the two properties a change stream adds to its table's schema
- sync.py      one LOG_BASED stream's run: snapshot or changes, and the bookmark rules
- admin.py     the command that drops a source's slot and publication

The contract with the target is in docs/value-encoding.md; operations in the README.
"""
