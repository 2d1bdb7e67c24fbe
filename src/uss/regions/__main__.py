"""Print region-proposer flags for the shell scripts:

  python -m uss.regions sam                      the challenge entry's SAM generator flags
  python -m uss.regions superpixel demo|paper    a preset's superpixel flags
"""
import argparse
import sys
from typing import Optional, Sequence

from uss.regions.settings import SUPERPIXEL_PRESETS, sam_flags, superpixel_flags


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Print the flags, space-separated, for a shell array."""
    parser = argparse.ArgumentParser(prog="python -m uss.regions", description=__doc__.splitlines()[0].rstrip(":"))
    commands = parser.add_subparsers(dest="proposer", required=True)
    commands.add_parser("sam", help="the challenge entry's SAM generator flags")
    superpixel = commands.add_parser("superpixel", help="a preset's superpixel flags")
    superpixel.add_argument("preset", choices=sorted(SUPERPIXEL_PRESETS))
    args = parser.parse_args(argv)
    words = sam_flags() if args.proposer == "sam" else superpixel_flags(args.preset)
    sys.stdout.write(" ".join(words) + "\n")


if __name__ == "__main__":
    main()
