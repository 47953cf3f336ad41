"""``make sim SEEDS=N`` (or ``python -m tests.sim``): run many seeds of the simulation, or replay one.

python -m tests.sim --seeds 2000                 # seeds 0..1999 of both variants
python -m tests.sim --variant shared --seed 417  # replay one seed, with its trace on failure
"""

from __future__ import annotations

import argparse
import sys
import time

from tests.sim.world import VARIANTS, SimulationFailure, simulate


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sim")
    parser.add_argument("--seeds", type=int, default=1000, help="how many seeds per variant (from --start)")
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--seed", type=int, default=None, help="replay this one seed")
    parser.add_argument("--variant", choices=(*VARIANTS, "all"), default="all")
    args = parser.parse_args()
    variants = VARIANTS if args.variant == "all" else (args.variant,)
    seeds = [args.seed] if args.seed is not None else list(range(args.start, args.start + args.seeds))
    began = time.monotonic()
    failures = 0
    runs = answers = 0
    for variant in variants:
        for seed in seeds:
            try:
                world = simulate(seed, variant)
            except SimulationFailure as failure:
                failures += 1
                print(failure, file=sys.stderr)
                if failures >= 5:
                    break
            else:
                runs += 1
                answers += world.answers
    took = time.monotonic() - began
    print(f"{runs} runs passed, {failures} failed, {answers} answers checked, in {took:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
