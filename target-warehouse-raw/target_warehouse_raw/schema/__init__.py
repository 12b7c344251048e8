"""From a SCHEMA message to a table: names, column types, how a live table follows."""
