"""Model references: aliases, families and where the weights are."""

from genimg.models.families import FAMILIES, Family, get_family
from genimg.models.resolve import ModelRef, resolve_model

__all__ = ["FAMILIES", "Family", "ModelRef", "get_family", "resolve_model"]
