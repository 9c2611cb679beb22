"""No Hub token ever lands in a run folder, a model card, metrics.json, training_config.json, tensorboard events,
the console, a log record or an exception message — on a successful push and on failing ones.

The token is a recognisable canary registered as a 'write' token with the offline Hub; every check greps for a
distinctive middle part of it, so a truncated or reformatted leak is caught too. tests/test_hub.py already checks
`push_run` with a token planted in training_config.json (stripped before publishing) and the read-only-token
error; this file covers the training scripts end to end and the failure paths.
"""

from __future__ import annotations

import logging
import os
import subprocess
import traceback
from pathlib import Path

import preloaded_python
import pytest
from hub_server import USER

from hub_models.hub import HubPushError, push_run, push_run_in_background

REPO_ROOT = Path(__file__).resolve().parents[1]
CANARY = "hf_CANARYsecretDoNotLeak0123456789abcd"
NEEDLE = "CANARYsecretDoNotLeak"  # what a leak of any part of the token would contain
FAST = {"backoff": 0.01, "max_retries": 2}


@pytest.fixture()
def canary(hub, monkeypatch) -> str:
    """The canary is a valid write token for this test; HF_TOKEN holds it (as a user's shell would)."""
    monkeypatch.setitem(hub.tokens, CANARY, "write")
    monkeypatch.setenv("HF_TOKEN", CANARY)
    return CANARY


def leaks_in_files(*roots: Path) -> list[str]:
    return [str(p) for root in roots for p in root.rglob("*") if p.is_file() and NEEDLE.encode() in p.read_bytes()]


def leaks_on_the_hub(hub) -> int:
    return sum(NEEDLE.encode() in blob for blob in hub.stored_bytes())


def exception_text(err: BaseException) -> str:
    """Everything an exception could show: message, repr, the formatted traceback and every chained cause."""
    parts, seen = [], err
    while seen is not None:
        parts += [str(seen), repr(seen), *traceback.format_exception(seen)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


def train(script: str, args: list[str], out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_DEBUG": "1"}  # huggingface_hub's most verbose logging
    done = preloaded_python.run([REPO_ROOT / "training" / script, *args, "--output_dir", out], cwd=REPO_ROOT,
                                env=env, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done


# ----------------------------------------------------------------------------------------------------------
# The training scripts, end to end
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_train_vae_push_to_hub_leaks_no_token(hub, canary, tiny_mnist_cache, tmp_path):
    out, repo_id = tmp_path / "run", f"{USER}/secret-vae"
    flags = ["--limit_train_samples", "64", "--batch_size", "32", "--max_train_steps", "2", "--num_figure_samples",
             "4", "--push_to_hub", "--hub_model_id", repo_id]  # fmt: skip
    done = train("train_vae.py", flags, out)

    assert f"Pushed to {hub.endpoint}/{repo_id}/commit/" in done.stdout  # pushed with the canary (HF_TOKEN)
    published = hub.head_files(repo_id)
    assert {"README.md", "metrics.json", "training_config.json"} <= set(published)
    assert list((out / "logs").rglob("events.out.tfevents*")), "no tensorboard events to check"
    assert (out / "metrics.json").is_file() and (out / "training_config.json").is_file()
    assert list((out / "checkpoints").iterdir())

    # HF_DEBUG logged every request as a curl command, with the Authorization header redacted.
    assert "-H 'authorization: <TOKEN>'" in done.stdout + done.stderr
    assert NEEDLE not in done.stdout + done.stderr
    assert leaks_in_files(out) == []  # model, card inputs, metrics, config, figures, tensorboard, checkpoints
    assert not any(NEEDLE.encode() in content for content in published.values())  # incl. the model card
    assert leaks_on_the_hub(hub) == 0  # every blob, LFS object, commit message and collection


@pytest.mark.slow
def test_train_ddpm_failed_push_leaks_no_token(hub, canary, tiny_mnist_cache, tmp_path):
    """The push fails (the Hub refuses the commit): the script warns, exits 0 and leaks the token nowhere."""
    out = tmp_path / "run"
    hub.fail("POST", r"/commit/", status=400, times=None)
    done = train("train_ddpm.py", ["--model_config", "tiny", "--limit_train_samples", "32",
                                   "--train_batch_size", "16", "--eval_batch_size", "64", "--max_train_steps", "2",
                                   "--num_sample_images", "4", "--sample_steps", "2",
                                   "--push_to_hub", "--hub_model_id", f"{USER}/secret-ddpm"], out)  # fmt: skip

    assert "warning: push to the Hub failed (HubPushError: Pushing" in done.stdout
    assert "HTTP 400 from POST" in done.stdout
    assert "-H 'authorization: <TOKEN>'" in done.stdout + done.stderr
    assert list((out / "logs").rglob("events.out.tfevents*")), "no tensorboard events to check"
    assert NEEDLE not in done.stdout + done.stderr
    assert leaks_in_files(out) == []
    assert leaks_on_the_hub(hub) == 0


# ----------------------------------------------------------------------------------------------------------
# Failure paths of push_run
# ----------------------------------------------------------------------------------------------------------
def test_push_to_an_always_failing_server_leaks_no_token(hub, canary, vae_run, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    hub.fail("POST", r"/commit/", status=500, times=None)
    with pytest.raises(HubPushError, match=r"failed after 2 retries: HTTP 500") as err:
        push_run(vae_run, f"{USER}/down", **FAST)
    future = push_run_in_background(vae_run, f"{USER}/down-background", **FAST)
    background = future.exception(timeout=120)
    assert isinstance(background, HubPushError)

    out, errs = capfd.readouterr()
    assert "retry 1/2" in caplog.text  # the retries were logged (and checked below)
    for text in (exception_text(err.value), exception_text(background), caplog.text, out, errs):
        assert NEEDLE not in text
    assert leaks_in_files(vae_run) == [] and leaks_on_the_hub(hub) == 0


def test_invalid_or_unreachable_token_checks_leak_no_token(hub, vae_run, caplog, capfd, monkeypatch):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("HF_TOKEN", CANARY)  # NOT registered: the Hub answers 401
    with pytest.raises(HubPushError, match="rejected the token") as rejected:
        push_run(vae_run, f"{USER}/invalid", **FAST)
    hub.fail("GET", r"^/api/whoami", status=503, times=None)
    with pytest.raises(HubPushError, match="Could not check the token") as unreachable:
        push_run(vae_run, f"{USER}/invalid", token=CANARY, **FAST)

    out, errs = capfd.readouterr()
    for text in (exception_text(rejected.value), exception_text(unreachable.value), caplog.text, out, errs):
        assert NEEDLE not in text
    assert hub.repos == {}
