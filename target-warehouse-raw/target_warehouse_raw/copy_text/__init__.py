"""From a record's JSON to a row of COPY text: the one encoder and its three paths."""
