"""From rows to a table: the per-stream load, its batches, and one class per load method."""
