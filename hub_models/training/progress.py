"""Logging as in diffusers' example scripts (`accelerate.logging.get_logger`), and a progress bar that stays out of
redirected logs: tqdm on a terminal; otherwise one line every N updates (not one frame per update)."""

from __future__ import annotations

import logging
import sys
import time

from accelerate.logging import get_logger
from tqdm.auto import tqdm

LOG_FORMAT = "%(asctime)s - %(levelname)s - %(name)s - %(message)s"


def setup_logging() -> None:
    """INFO lines on stderr (as the diffusers examples); accelerate's own per-file checkpoint lines stay quiet."""
    logging.basicConfig(format=LOG_FORMAT, datefmt="%m/%d/%Y %H:%M:%S", level=logging.INFO)
    logging.getLogger("accelerate").setLevel(logging.WARNING)


logger = get_logger("hub_models.training", log_level="INFO")


class Progress:
    """Updates of a training run: a tqdm bar when stderr is a terminal, else a log line every `every` updates.

    Only the local main process shows anything (`enabled`).
    """

    def __init__(self, total: int, initial: int, desc: str, every: int, enabled: bool = True) -> None:
        self.total, self.every, self.enabled = total, every, enabled
        self.interactive = sys.stderr.isatty()
        self.bar = tqdm(total=total, initial=initial, desc=desc, disable=not (enabled and self.interactive))
        self._last, self._last_step = time.perf_counter(), initial

    def update(self, step: int, epoch: int, postfix: dict[str, str]) -> None:
        self.bar.update(1)
        self.bar.set_postfix(postfix, refresh=False)
        if self.enabled and not self.interactive and step % self.every == 0:
            now = time.perf_counter()
            rate = (now - self._last) / max(step - self._last_step, 1)
            logger.info(f"step {step}/{self.total} epoch {epoch + 1} "
                        + " ".join(f"{k} {v}" for k, v in postfix.items()) + f" ({rate:.2f} s/step)")
            self._last, self._last_step = now, step

    def close(self) -> None:
        self.bar.close()


__all__ = ["LOG_FORMAT", "Progress", "logger", "setup_logging"]
