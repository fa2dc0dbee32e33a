"""Prompts as users write them: A1111 weighting, long prompts, styles."""
