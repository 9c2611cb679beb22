#!/usr/bin/env python
"""Publish the Gradio Space: build it from `spaces_app/` (with the library, pinned requirements, the report) and
upload it as a Space repo in one commit, pointing at the model repos `publish_study.py` published.

    python scripts/publish_study.py --study_dir release --namespace you        # the models first
    python scripts/publish_space.py --repo_id you/mnist-genlab --models_namespace you

Idempotent: publishing an unchanged Space makes no commit. `--build_dir` only builds the folder (no upload).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # `python scripts/publish_space.py` from a checkout

from hub_models.hub import run_publish_cli  # noqa: E402
from hub_models.reference import DEFAULT_NAMESPACE  # noqa: E402
from hub_models.space.publish import HARDWARE, SpaceSources, build_space, publish_space  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo_id", required=True, help="The Space to create or update, e.g. you/mnist-genlab.")
    parser.add_argument("--models_namespace", default=DEFAULT_NAMESPACE,
                        help="User or organisation that published the models (<namespace>/mnist-genlab-<run>).")
    parser.add_argument("--hardware", choices=sorted(HARDWARE), default="cpu",
                        help="cpu: CPU Basic (CPU torch wheels); zero-gpu: ZeroGPU (CUDA torch, @spaces.GPU).")
    parser.add_argument("--private", action="store_true", help="Create the Space as private.")
    parser.add_argument("--skip_model_check", action="store_true",
                        help="Publish even if some model repos do not exist yet (their tabs will say so).")
    parser.add_argument("--build_dir", type=Path, default=None,
                        help="Only build the Space into this empty folder; upload nothing.")
    parser.add_argument("--app_dir", type=Path, default=REPO_ROOT / "spaces_app", help="The app to publish.")
    parser.add_argument("--docs_dir", type=Path, default=REPO_ROOT / "docs", help="REPORT.md and its figures.")
    parser.add_argument("--token", default=None, help="Hub token; default HF_TOKEN or `hf auth login` (preferred).")
    parser.add_argument("--max_retries", type=int, default=5, help="Retries per Hub call on network errors/5xx.")
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    sources = SpaceSources(app_dir=args.app_dir, docs_dir=args.docs_dir)
    if args.build_dir is not None:
        return run_publish_cli(
            lambda: build_space(args.build_dir, sources, space_id=args.repo_id,
                                models_namespace=args.models_namespace, hardware=args.hardware),
            lambda files: print(f"built {len(files)} files in {args.build_dir}"),
        )

    def show(result: dict) -> None:
        print(f"{args.repo_id}: {result['commit']} ({len(result['files'])} files)")
        print(f"space: {result['url']}")

    return run_publish_cli(
        lambda: publish_space(args.repo_id, sources, models_namespace=args.models_namespace,
                              hardware=args.hardware, token=args.token, private=args.private,
                              check_models=not args.skip_model_check, max_retries=args.max_retries),
        show,
    )

if __name__ == "__main__":
    sys.exit(main(parse_args()))
