"""Talking to the warehouse: connections, the control connection, the load history."""
