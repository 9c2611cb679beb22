#!/usr/bin/env python
"""Publish one finished run folder (VAE or DDPM) to the Hugging Face Hub in one commit, with its model card.

    hf auth login        # or: export HF_TOKEN=hf_...  (a token with the 'write' role)
    python scripts/push_to_hub.py --run_dir runs/conv-z2-b1 --repo_id you/mnist-genlab-vae-conv-z2-beta1

Uploads the model (config + safetensors, or the DDPM pipeline folder), README.md, figures, metrics.json and
training_config.json; never checkpoints or logs. Re-running it on an unchanged run changes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(
    0, str(Path(__file__).resolve().parents[1])
)  # `python scripts/push_to_hub.py` from a checkout

from hub_models.hub import push_run, run_publish_cli


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--run_dir", required=True, type=Path, help="Finished run folder (from train_vae/ddpm)."
    )
    parser.add_argument("--repo_id", required=True, help="Target repo, `user/name` or `org/name`.")
    parser.add_argument("--private", action="store_true", help="Create the repo as private (if it is new).")
    parser.add_argument(
        "--revision", default=None, help="Branch to commit to (created if missing); default main."
    )
    parser.add_argument(
        "--commit_message", default=None, help="Commit title (default: 'Upload <kind> run <name>')."
    )
    parser.add_argument("--create_pr", action="store_true", help="Open a pull request instead of committing.")
    parser.add_argument(
        "--token",
        default=None,
        help="Hub token; default HF_TOKEN or `hf auth login` (preferred: a token given here "
        "shows in the process list).",
    )
    parser.add_argument(
        "--max_retries", type=int, default=5, help="Retries per Hub call on network errors/5xx."
    )
    parser.add_argument(
        "--source_url",
        default=None,
        help="Where the project's source is published (a git URL), for the card's `pip install` line; default: "
        "the installed package's homepage, else no install line.",
    )
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    return run_publish_cli(
        lambda: push_run(
            args.run_dir,
            args.repo_id,
            token=args.token,
            private=args.private,
            revision=args.revision,
            commit_message=args.commit_message,
            create_pr=args.create_pr,
            max_retries=args.max_retries,
            source_url=args.source_url,
        ),
        print,
    )

if __name__ == "__main__":
    sys.exit(main(parse_args()))
