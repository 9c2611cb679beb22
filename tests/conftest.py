"""Shared fixtures. Tests run on a tiny real-MNIST copy (a few hundred digits) and tiny models.

Run folders come from the real scripts, trained once per session at tiny size (`vae_study`, `trained_ddpm_run`);
they are read-only: a test that changes a run works on a copy (`vae_run`, `ddpm_run`, `copy_run`). Test modules
never import each other or the fixture plugins: what they share is a fixture, or a helper of a support module
(`hub_server`, `preloaded_python`, `run_in_one_process`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

# Nothing in the tests may reach the internet: the data loader never tries the Hub for MNIST.
os.environ.setdefault("MNIST_GENLAB_SKIP_HUB", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):  # one thread per worker (and its subprocesses): the workers fill the cores
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import preloaded_python
import pytest
from filelock import FileLock

# The offline Hub server and its environment (must load before anything imports huggingface_hub).
pytest_plugins = ["hub_fixtures", "space_fixtures"]  # space_fixtures: the Space's models and app

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_TRAIN, TINY_TEST = 512, 256


def pytest_configure(config: pytest.Config) -> None:
    """glibc keeps freed memory in each test process, as scripts/evaluate_ddpm.py does: its Inception passes and
    sampling stop faulting batch-sized blocks back in (benchmarks/cpu_allocator.py: 1.3-1.4× less CPU). Not set in
    the environment: subprocesses start with glibc's default (tests/test_io.py measures it)."""
    from hub_models.io import keep_freed_memory

    keep_freed_memory()


@pytest.fixture(scope="session")
def full_mnist_cache() -> Path:
    """The full prepared copy (built once from the PyPI wheel; `.ci/run` warms it)."""
    from hub_models.data import default_cache_dir, prepare_mnist

    prepare_mnist(default_cache_dir(), try_hub=False)
    return default_cache_dir()


@pytest.fixture(scope="session")
def tiny_mnist_cache(full_mnist_cache: Path, tmp_path_factory) -> Path:
    """A prepared copy holding only the first 512 train / 256 test real digits; also exported as
    MNIST_GENLAB_CACHE so subprocesses (training scripts, the Space) use it. One copy for the whole test run, which
    pytest-xdist's workers share like the session runs: what is cached in it (the Inception statistics of the
    reference digits and their floors, the Space's calibration) is then computed once, not once per worker."""
    from hub_models.data import load_mnist_arrays, save_prepared

    root = _shared_root(tmp_path_factory) / "tiny-mnist"
    with FileLock(f"{root}.lock"):
        if not root.with_name(f"{root.name}.complete").exists():
            shutil.rmtree(root, ignore_errors=True)  # what a stopped worker left half made
            arrays = load_mnist_arrays(full_mnist_cache)
            tiny = {
                "train_images": arrays["train_images"][:TINY_TRAIN].numpy(),
                "train_labels": arrays["train_labels"][:TINY_TRAIN].numpy(),
                "test_images": arrays["test_images"][:TINY_TEST].numpy(),
                "test_labels": arrays["test_labels"][:TINY_TEST].numpy(),
            }
            save_prepared(tiny, root / "mnist")
            root.with_name(f"{root.name}.complete").touch()
    os.environ["MNIST_GENLAB_CACHE"] = str(root)
    return root


def _shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test run's base temporary folder, which pytest-xdist's workers share (each has its own below it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def load_script() -> Callable[[str], ModuleType]:
    """A script of the checkout imported as a module, fresh on each call: `load_script("training/train_vae.py")`
    (the scripts are files, not a package, so their `parse_args` and `main` are reached this way)."""

    def load(relative_path: str) -> ModuleType:
        path = REPO_ROOT / relative_path
        spec = importlib.util.spec_from_file_location(f"script_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def run_script() -> Callable[..., str]:
    """`run_script("training/train_ddpm.py", *flags)` runs the script as `python <script> <flags>` runs it
    (`__main__`, its argv), but in this process: no interpreter start and no torch / diffusers imports, about 7 s
    of CPU less per run. `sys.exit(0)` ends it as it ends a process. One thread, as the tests' subprocesses
    (OMP_NUM_THREADS=1): runs of both kinds compare bit for bit. Returns what it logged; another `SystemExit`
    propagates. What needs a process of its own (exit codes, signals, launchers, another environment) runs in a
    subprocess instead."""
    import io
    import logging

    import torch
    from run_in_one_process import run_as_main

    def run(relative_path: str, *flags: str) -> str:
        stream, root = io.StringIO(), logging.getLogger()
        handler, level, threads = logging.StreamHandler(stream), root.level, torch.get_num_threads()
        root.addHandler(handler), root.setLevel(logging.INFO)
        torch.set_num_threads(1)
        try:
            run_as_main(str(REPO_ROOT / relative_path), list(flags))
        finally:
            torch.set_num_threads(threads)
            root.removeHandler(handler), root.setLevel(level)
        return stream.getvalue()

    return run


@pytest.fixture(scope="module")
def own_cache(tmp_path_factory) -> Iterator[Path]:
    """A data cache of the module's own (decoded images, FID statistics) as MNIST_GENLAB_CACHE; the FID network is
    still read from the user's cache (hub_models.evaluation.inception.network_path looks there too). One torch
    thread meanwhile: tiny models run several times faster so on a busy machine (as under pytest-xdist)."""
    import torch

    root = tmp_path_factory.mktemp("own-cache")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MNIST_GENLAB_CACHE", str(root))
        yield root
    torch.set_num_threads(threads)


@pytest.fixture()
def tmp_run_dir() -> Path:
    with tempfile.TemporaryDirectory(prefix="run-") as d:
        yield Path(d)


# ----------------------------------------------------------------------------------------------------------
# Run folders trained by the real scripts, once per session
# ----------------------------------------------------------------------------------------------------------
# The study folder: the release's five VAEs (hub_models.reference.RELEASE_VAES; every VAE claim of the report needs
# them) and a β-annealed dense z=4 run, as (arch, latent_dim, beta, beta_schedule) under the names
# hub_models.hub.naming gives them (not imported here: huggingface_hub must load after hub_fixtures).
TINY_STUDY = {
    "vae-conv-z2-beta1": ("conv", 2, 1.0, "constant"),
    "vae-conv-z4-beta1": ("conv", 4, 1.0, "constant"),
    "vae-dense-z2-beta1": ("dense", 2, 1.0, "constant"),
    "vae-conv-z2-beta1e-3": ("conv", 2, 1e-3, "constant"),
    "vae-conv-z2-beta20": ("conv", 2, 20.0, "constant"),
    "vae-dense-z4-beta20-warmup": ("dense", 4, 20.0, "linear-warmup"),
}
# Flags of the tiny runs: 8 updates of 64 digits (two epochs of the 410 tiny training digits), small figures.
TINY_VAE_FLAGS = "--seed 0 --max_train_steps 8 --num_figure_samples 4 --checkpointing_steps 100".split()
TINY_DDPM_FLAGS = (
    "--model_config tiny --num_epochs 2 --train_batch_size 128 --eval_batch_size 128 "
    "--num_sample_images 4 --sample_steps 2 --logger none --seed 3"
).split()
# The real evaluator at N=12 against the 256 tiny test digits: an FID with its floor for about a minute of CPU,
# most of it the Inception statistics of the reference (N=10,000 would cost CPU hours). N=12 vs mnist-test is also
# a point of tests/test_ddpm_evaluation.py: the reference statistics and the floor, cached per session, serve both.
TINY_DDPM_EVAL_FLAGS = "--num_samples 12 --batch_size 12 --sampler dpmsolver++ --steps 25".split()
# A class-conditional tiny run: 2 updates, then the guidance table (w 0 and 2, N=20 in chunks of 7, so the balanced
# classes cross chunk borders) and a main point at w=2 in bf16, all against the 102 tiny held-out digits (one set of
# reference statistics for the whole chain).
TINY_CONDITIONAL_FLAGS = (
    "--model_config tiny --class_conditional --max_train_steps 2 --train_batch_size 64 --eval_batch_size 128 "
    "--num_sample_images 10 --sample_steps 2 --logger none --seed 3"
).split()
TINY_CONDITIONAL_EVAL_FLAGS = (
    "--sampler ddpm --steps 3 --precision bf16 --batch_size 7 --num_samples 12 --reference mnist-test "
    "--guidance_sweep 0 2 --guidance_samples 20 --guidance_scale 2"
).split()


def tree_digest(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file in a folder."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def _script(name: str, *args: str) -> list[str]:
    return [str(REPO_ROOT / "training" / name), *args]


def _in_one_process(*commands: list[str]) -> list[str]:
    """One process that runs the scripts one after the other (tests/run_in_one_process.py): one interpreter start
    and one torch / diffusers import for all of them."""
    joined = [arg for i, cmd in enumerate(commands) for arg in (["--"] if i else []) + cmd]
    return [str(Path(__file__).with_name("run_in_one_process.py")), *joined]


def _vae_study(folder: Path) -> list[list[list[str]]]:
    """Two chains of one process, each training three of the six VAEs: the chains run side by side."""
    flags = [["--arch", arch, "--latent_dim", str(z), "--beta", str(beta), "--beta_schedule", schedule,
              "--output_dir", str(folder / name)]
             for name, (arch, z, beta, schedule) in TINY_STUDY.items()]  # fmt: skip
    runs = [_script("train_vae.py", *run_flags, *TINY_VAE_FLAGS) for run_flags in flags]
    return [[_in_one_process(*runs[:3])], [_in_one_process(*runs[3:])]]


def _ddpm_run(folder: Path) -> list[list[list[str]]]:
    """One chain of one process: train, then evaluate."""
    return [[_in_one_process(_script("train_ddpm.py", *TINY_DDPM_FLAGS, "--output_dir", str(folder)),
                             _script("evaluate_ddpm.py", "--run_dir", str(folder), *TINY_DDPM_EVAL_FLAGS))]]


def _conditional_ddpm_run(folder: Path) -> list[list[list[str]]]:
    """One chain of one process: train a class-conditional UNet, then its guidance table and main point."""
    return [[_in_one_process(_script("train_ddpm.py", *TINY_CONDITIONAL_FLAGS, "--output_dir", str(folder)),
                             _script("evaluate_ddpm.py", "--run_dir", str(folder), *TINY_CONDITIONAL_EVAL_FLAGS))]]


# Session run fixture → (its folder under the session's temporary root, the chains of commands that make it: the
# chains run side by side, the commands of a chain one after the other). The DDPM first: its chain is the longest.
RUN_RECIPES: dict[str, tuple[str, Callable[[Path], list[list[list[str]]]]]] = {
    "trained_ddpm_run": ("ddpm", _ddpm_run),
    "conditional_ddpm_run": ("ddpm-conditional", _conditional_ddpm_run),
    "vae_study": ("vae-study", _vae_study),
}


class RunMaker:
    """Makes one session run folder in a background thread: each chain of commands is a task of the shared `pool`,
    its commands logged to files. Under pytest-xdist the folder is shared by the workers: a file lock lets the first
    worker make it and the others reuse it (a `.complete` marker says it was made without error). `wait()` returns
    the folder, or fails the test with the log of what failed."""

    def __init__(self, folder: Path, chains: list[list[list[str]]], logs: Path, pool: ThreadPoolExecutor) -> None:
        self.folder, self.logs, self.stopped = folder, logs, False
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}  # read here, in the main thread
        self.procs: list[preloaded_python.PythonProcess] = []
        self.digest: dict[str, str] | None = None  # of the finished folder: session runs must stay unchanged
        self.error: str | None = None
        self.thread = threading.Thread(target=self._make, args=(chains, pool), daemon=True)
        self.thread.start()

    def _make(self, chains: list[list[list[str]]], pool: ThreadPoolExecutor) -> None:
        complete = self.folder.with_name(f"{self.folder.name}.complete")
        with FileLock(f"{self.folder}.lock"):
            if complete.exists():  # another worker made it
                return
            shutil.rmtree(self.folder, ignore_errors=True)  # what a stopped worker left half made
            tasks = [pool.submit(self._chain, i, chain) for i, chain in enumerate(chains)]
            self.error = next((e for e in [task.result() for task in tasks] if e), None)
            if self.error is None:
                complete.touch()

    def _chain(self, i: int, chain: list[list[str]]) -> str | None:
        """Runs the commands one after the other; the error of the first that fails, else None."""
        for j, cmd in enumerate(chain):
            if self.stopped:
                return "the session ended first"
            log = self.logs / f"{self.folder.name}-{i}-{j}.log"
            log.unlink(missing_ok=True)
            proc = preloaded_python.start(cmd, stdout=log, env=self.env, cwd=REPO_ROOT)
            self.procs.append(proc)
            if proc.wait() != 0:
                return f"{' '.join(cmd)} exited with {proc.returncode}:\n{log.read_text()[-5000:]}"
        return None

    def wait(self) -> Path:
        self.thread.join()
        if self.error:
            pytest.fail(self.error, pytrace=False)
        if self.digest is None:
            self.digest = tree_digest(self.folder)
        return self.folder

    def stop(self) -> None:
        self.stopped = True
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()


class RunMakers:
    """The session's run makers, started at most once each. Their chains share a pool of as many workers as there
    are cores (at least 2), which bounds the CPU and memory the background trainings take. The root is the test
    run's base temporary folder, which pytest-xdist's workers share."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.root = _shared_root(tmp_path_factory) / "session-runs"
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        self.makers: dict[str, RunMaker] = {}
        self.pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1), thread_name_prefix="run-maker")

    def start(self, name: str) -> RunMaker:
        if name not in self.makers:
            folder_name, recipe = RUN_RECIPES[name]
            folder = self.root / folder_name
            self.makers[name] = RunMaker(folder, recipe(folder), self.root / "logs", self.pool)
        return self.makers[name]

    def stop(self) -> None:
        for maker in self.makers.values():
            maker.stop()
        self.pool.shutdown(wait=False, cancel_futures=True)


# Tests that need a session run (a real script trained at tiny size) belong to the full suite, not the quick loop.
SLOW_FIXTURES = frozenset(RUN_RECIPES)


# The longest modules (about 90-160 s of one core each), started first: pytest-xdist hands modules out in collection
# order (`--dist loadfile`), and a long one started last would leave the other worker idle at the end.
LONGEST_FIRST = ("test_fid_reference.py", "test_train_vae.py", "test_ddpm_training.py", "test_cards.py",
                 "test_space_browser.py", "test_hub.py", "test_crash_safety.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the order within a module is kept


@pytest.fixture(scope="session")
def run_makers(request, tiny_mnist_cache: Path, tmp_path_factory) -> Iterator[RunMakers]:
    """Starts every session run the selected tests need, side by side (the VAE study and the DDPM train at the
    same time); the session fixtures below each wait for theirs."""
    makers = RunMakers(tmp_path_factory)
    needed = {name for item in request.session.items for name in getattr(item, "fixturenames", ())}  # + deps
    for name in RUN_RECIPES:
        if name in needed:
            makers.start(name)
    yield makers
    makers.stop()
    changed = [m.folder.name for m in makers.makers.values() if m.digest and tree_digest(m.folder) != m.digest]
    assert not changed, f"a test changed the session run(s) {changed}: copy a run (copy_run) before changing it"


@pytest.fixture(scope="session")
def vae_study(run_makers: RunMakers) -> Path:
    """A study folder of six VAE runs (`TINY_STUDY`: the release's five and `vae-dense-z4-beta20-warmup`), each
    trained for 8 updates by training/train_vae.py as scripts/run_study.py runs it. Read-only: copy a run before
    changing it."""
    return run_makers.start("vae_study").wait()


@pytest.fixture(scope="session")
def trained_ddpm_run(run_makers: RunMakers) -> Path:
    """A tiny-UNet DDPM run of training/train_ddpm.py (2 epochs, seed 3) with the evaluation.json of
    scripts/evaluate_ddpm.py (one DPM-Solver++ point, N=12). Read-only: copy it before changing it."""
    return run_makers.start("trained_ddpm_run").wait()


@pytest.fixture(scope="session")
def conditional_ddpm_run(run_makers: RunMakers) -> Path:
    """A tiny class-conditional DDPM run of training/train_ddpm.py --class_conditional with evaluate_ddpm.py's
    guidance table (w 0 and 2, N=20) and main point (w 2, N=12, bf16). Read-only: copy it before changing it."""
    return run_makers.start("conditional_ddpm_run").wait()


@pytest.fixture()
def copy_run(tmp_path: Path) -> Callable[..., Path]:
    """`copy_run(src, dest=None)`: a copy of a session run folder to change, at `dest` (default: tmp_path/name)."""

    def copy(src: Path, dest: Path | None = None) -> Path:
        dest = dest if dest is not None else tmp_path / src.name
        shutil.copytree(src, dest)
        return dest

    return copy


@pytest.fixture()
def vae_run(vae_study: Path, copy_run) -> Path:
    """This test's own copy of the trained Conv VAE, z=2, β=1 (`vae-conv-z2-beta1`)."""
    return copy_run(vae_study / "vae-conv-z2-beta1")


@pytest.fixture()
def ddpm_run(trained_ddpm_run: Path, copy_run) -> Path:
    """This test's own copy of the trained and evaluated tiny DDPM run."""
    return copy_run(trained_ddpm_run)


# ----------------------------------------------------------------------------------------------------------
# Tiny image datasets of other shapes (issue 37): tests/image_fixtures.py
# ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def grey_image_folder(tmp_path_factory) -> Path:
    """28×28 greyscale images in three class folders (bar, square, cross)."""
    from image_fixtures import make_image_folder

    return make_image_folder(tmp_path_factory.mktemp("grey-images"), size=28, mode="L")


@pytest.fixture(scope="session")
def rgb_image_folder(tmp_path_factory) -> Path:
    """32×32 RGB images in three class folders (bar, square, cross), each class its own tint."""
    from image_fixtures import make_image_folder

    return make_image_folder(tmp_path_factory.mktemp("rgb-images"), size=32, mode="RGB")
