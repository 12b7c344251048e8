"""Reading Singer input: lines to message structs, the SDK reader interface, BATCH files."""
