"""Batch generation from prompt files: parse rows into jobs, then run them grouped by model."""
