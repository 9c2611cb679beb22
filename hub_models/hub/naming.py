"""One naming scheme for run folders, Hub repos and the Space: `vae-conv-z2-beta1`, `vae-dense-z4-beta1e-3`."""

from __future__ import annotations

from collections.abc import Sequence

from hub_models.reference import DEFAULT_NAMESPACE, HUB_PREFIX, PUBLISHED, RELEASE


def beta_tag(beta: float) -> str:
    """1e-3 → '1e-3', 1.0 → '1', 20.0 → '20', 0.5 → '0.5'."""
    text = f"{beta:g}"
    if "e" in text or beta == 0 or abs(beta) >= 1e-2:
        return text.replace("e-0", "e-").replace("e+0", "e")
    mantissa, exponent = f"{beta:e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def vae_run_name(arch: str, latent_dim: int, beta: float, beta_schedule: str = "constant",
                 conditional: bool = False) -> str:
    suffix = ("-warmup" if beta_schedule == "linear-warmup" else "") + ("-conditional" if conditional else "")
    return f"vae-{arch}-z{latent_dim}-beta{beta_tag(beta)}{suffix}"


def hub_repo_name(run_name: str) -> str:
    """Repo name on the Hub for a run folder name: `mnist-genlab-vae-conv-z2-beta1`."""
    return f"{HUB_PREFIX}-{run_name}"


def release_repo_ids(namespace: str = DEFAULT_NAMESPACE, names: Sequence[str] = RELEASE) -> dict[str, str]:
    """The Hub repo id of every run the Space shows (`names`: the release list):
    `{"vae-conv-z2-beta1": "<namespace>/mnist-genlab-vae-conv-z2-beta1", …}`."""
    return {name: f"{namespace}/{hub_repo_name(name)}" for name in names}


def published_repo_ids(namespace: str = DEFAULT_NAMESPACE) -> dict[str, str]:
    """Every folder of `release/` and its repo id: the Space's models and those it does not show yet."""
    return release_repo_ids(namespace, PUBLISHED)
