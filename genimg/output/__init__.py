"""Everything about output files: names, PNG metadata, atomic writes."""
