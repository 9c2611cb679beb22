"""The study, one module per part: the report that sets every claim of the reference study against our runs
(`report`, with its fixed rules in `verdicts`), and the studies run beyond it, each in one place: `anomaly`,
`completion`, `hybrid`."""
