"""Talking to the Hub safely: the push error every publishing function raises, retries of transient failures, and
the token checks done before any upload work."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import httpx2
from huggingface_hub import HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError

logger = logging.getLogger(__name__)

T = TypeVar("T")


class HubPushError(RuntimeError):
    """A push that could not be done; the message says why and what to do (it never contains the token)."""


def _is_transient(err: Exception) -> bool:
    if isinstance(err, httpx2.TransportError):
        return True
    if isinstance(err, HfHubHTTPError) and err.response is not None:
        # 412: the branch moved between reading its head and committing (a concurrent push); a retry re-reads it.
        return err.response.status_code >= 500 or err.response.status_code in (408, 412, 429)
    return False


def _describe(err: Exception) -> str:
    if isinstance(err, HfHubHTTPError) and err.response is not None:
        return f"HTTP {err.response.status_code} from {err.response.request.method} {err.response.url.path}"
    return f"{type(err).__name__}: {err}"


def _with_retries(what: str, fn: Callable[[], T], max_retries: int, backoff: float) -> T:
    """`fn()` retried on connection errors and 5xx/429 with exponential backoff (backoff · 2^attempt)."""
    for attempt in range(max_retries + 1):
        try:
            return fn()
        except Exception as err:
            if not _is_transient(err) or attempt == max_retries:
                raise
            delay = backoff * 2**attempt
            logger.warning(
                "%s failed (%s); retry %d/%d in %.1fs", what, _describe(err), attempt + 1, max_retries, delay
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


def _require_token(token: str | None) -> str:
    """The explicit token or the one from HF_TOKEN / `hf auth login`; HubPushError (no network) if none."""
    token = token or get_token()
    if not token:
        raise HubPushError(
            "No Hugging Face token found: set HF_TOKEN or run `hf auth login` "
            "(a token with the 'write' role), then push again."
        )
    return token


def _check_token(api: HfApi, token: str, max_retries: int, backoff: float) -> str:
    """The user name behind a write token; HubPushError (before any upload work) otherwise."""
    try:
        info = _with_retries("whoami", lambda: api.whoami(token=token), max_retries, backoff)
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        if status == 401:
            raise HubPushError(
                "The Hub rejected the token (HTTP 401): it is invalid or expired; "
                "create a new 'write' token and set HF_TOKEN."
            ) from None
        raise HubPushError(f"Could not check the token with the Hub: {_describe(err)}") from None
    except httpx2.TransportError as err:
        raise HubPushError(f"Could not reach the Hub to check the token: {_describe(err)}") from None
    role = ((info.get("auth") or {}).get("accessToken") or {}).get("role")
    if role == "read":
        raise HubPushError(
            f"The token of {info.get('name')!r} is read-only: pushing needs a token with the "
            "'write' role (https://huggingface.co/settings/tokens)."
        )
    return info.get("name", "")


__all__ = ["HubPushError"]
