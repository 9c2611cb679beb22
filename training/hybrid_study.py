#!/usr/bin/env python
"""Moved to scripts/hybrid_study.py; this path keeps working for one release."""

import runpy
import sys
from pathlib import Path

NEW = Path(__file__).resolve().parents[1] / "scripts" / "hybrid_study.py"
print(f"note: training/hybrid_study.py moved to {NEW.parent.name}/{NEW.name}; the old path goes next release",
      file=sys.stderr)
# run as a script, __name__ is "__main__"; imported (tests' load_script), the script's functions land here
globals().update(runpy.run_path(str(NEW), run_name=__name__))
