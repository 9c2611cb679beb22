"""One naming scheme for run folders, Hub repos and the Space: `vae-conv-z2-beta1`, `vae-dense-z4-beta1e-3`.

The `*_repo_name(run_dir)` functions are the repo naming of each kind (`hub_models.hub.kinds` names one per kind);
they agree with `published_repo_ids` for the release."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hub_models.hub.hub_api import HubPushError
from hub_models.io import read_json_or_empty
from hub_models.models.registry import arch_of
from hub_models.reference import (
    CLASSIFIER_RUN,
    CONDITIONAL_DDPM_RUN,
    DDPM_RUN,
    DEFAULT_NAMESPACE,
    HUB_PREFIX,
    PUBLISHED,
    RELEASE,
)


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


def published_vae_id(vae_name_or_path: str, repo_id: str) -> str:
    """The repo id a latent prior's VAE is published under: a `release/<name>` folder becomes
    `<namespace of repo_id>/mnist-genlab-<name>`; a repo id or another path is kept."""
    name = Path(vae_name_or_path).name
    if Path(vae_name_or_path).parent.name == "release" and "/" in repo_id:
        return f"{repo_id.split('/')[0]}/{hub_repo_name(name)}"
    return vae_name_or_path


def vae_repo_name(run_dir: Path) -> str:
    """`mnist-genlab-vae-conv-z2-beta1e-3` (`…-warmup` for a β warm-up, `…-conditional` for a conditional VAE)."""
    config, metrics = read_json_or_empty(run_dir / "config.json"), read_json_or_empty(run_dir / "metrics.json")
    train_cfg = read_json_or_empty(run_dir / "training_config.json")
    arch = arch_of(config.get("_class_name")) or metrics.get("arch")
    latent = config.get("latent_dim", metrics.get("latent_dim"))
    beta = metrics.get("beta", train_cfg.get("beta"))
    if arch is None or latent is None or beta is None:
        raise HubPushError(f"{run_dir}: cannot name the repo (need the architecture, latent_dim and beta)")
    schedule = metrics.get("beta_schedule", train_cfg.get("beta_schedule", "constant"))
    return hub_repo_name(vae_run_name(arch, int(latent), float(beta), schedule or "constant",
                                      conditional=bool(config.get("num_classes"))))


def ddpm_repo_name(run_dir: Path) -> str:
    """`mnist-genlab-ddpm`; a class-conditional U-Net gets its own repo, `mnist-genlab-ddpm-conditional`."""
    unet_config = read_json_or_empty(run_dir / "unet" / "config.json")
    return hub_repo_name(CONDITIONAL_DDPM_RUN if unet_config.get("num_class_embeds") else DDPM_RUN)


def student_repo_name(run_dir: Path) -> str:
    """A distilled student beside its teacher's repo: `mnist-genlab-ddpm-distilled-4steps`
    (`mnist-genlab-ddpm-conditional-distilled-5steps` for a class-conditional teacher)."""
    steps = (read_json_or_empty(run_dir / "metrics.json").get("distillation") or {}).get("student_steps")
    if not isinstance(steps, int):
        raise HubPushError(f"{run_dir}: cannot name the repo (metrics.json records no distillation.student_steps)")
    return f"{ddpm_repo_name(run_dir)}-distilled-{steps}steps"


def latent_prior_repo_name(run_dir: Path) -> str:
    """After its VAE: a prior over vae-conv-z4-beta1 is `mnist-genlab-latent-prior-conv-z4-beta1`."""
    vae = Path(read_json_or_empty(run_dir / "config.json").get("vae_name_or_path") or "").name
    if not vae:
        raise HubPushError(f"{run_dir}: cannot name the repo (config.json names no vae_name_or_path)")
    return hub_repo_name("latent-prior-" + vae.removeprefix(hub_repo_name("")).removeprefix("vae-"))


def fixed_repo_name(run_name: str):
    """The naming of a kind with one repo: `fixed_repo_name("ldm")(run_dir)` → `mnist-genlab-ldm`."""
    def name(run_dir: Path) -> str:
        return hub_repo_name(run_name)

    name.__doc__ = f"Always `{hub_repo_name(run_name)}`."
    return name


classifier_repo_name = fixed_repo_name(CLASSIFIER_RUN)
