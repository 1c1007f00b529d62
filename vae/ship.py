"""``python -m vae.ship CKPT --out characters/NAME/vae.pt``: a slim checkpoint for shipping."""

from __future__ import annotations

import argparse
import sys

from common.paths import output_file
from vae.checkpoint import slim_checkpoint


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m vae.ship",
        description="Write a slim copy of a Motion VAE checkpoint for shipping: weights, config, normalisation, "
        "skeleton and start poses, without the optimizer and RNG state (it can no longer --resume; "
        "`python -m vae.train --init-from` still trains on from its weights).",
    )
    p.add_argument("checkpoint")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    try:
        out = output_file(args.out, "--out", (".pt",))
        sizes = slim_checkpoint(args.checkpoint, out)
    except (FileNotFoundError, ValueError) as e:
        print(f"vae.ship: error: {e}", file=sys.stderr)
        return 2
    print(f"{out}: {sizes['dst_bytes'] / 1e6:.1f} MB (from {sizes['src_bytes'] / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
