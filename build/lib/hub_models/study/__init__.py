"""The study: the report that sets every claim of the reference study against our runs."""
