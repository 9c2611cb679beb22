#!/usr/bin/env python
"""Moved to scripts/push_to_hub.py; this path keeps working for one release."""

import runpy
import sys
from pathlib import Path

NEW = Path(__file__).resolve().parents[1] / "scripts" / "push_to_hub.py"
print(f"note: training/push_to_hub.py moved to {NEW.parent.name}/{NEW.name}; the old path goes next release",
      file=sys.stderr)
# run as a script, __name__ is "__main__"; imported (tests' load_script), the script's functions land here
globals().update(runpy.run_path(str(NEW), run_name=__name__))
