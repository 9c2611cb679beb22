"""Placeholder: the offline Hub fixtures land here (see issue 4)."""
