"""A trial with a known optimum: loss = (x - 1.5)^2 + (y + 0.5)^2 + (z - 2)^2, reported
after each of --steps steps (each --sleep seconds), the intermediate values falling
towards it, then as the final metrics."""

import argparse
import json
import os
import time

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--y", type=float, required=True)
parser.add_argument("--z", type=float, required=True)
parser.add_argument("--steps", type=int, default=0)
parser.add_argument("--sleep", type=float, default=0.0)
args = parser.parse_args()
loss = (args.x - 1.5) ** 2 + (args.y + 0.5) ** 2 + (args.z - 2.0) ** 2
with open(os.environ["PILOTKIT_METRICS"], "a") as f:
    for step in range(args.steps):
        time.sleep(args.sleep)
        f.write(json.dumps({"step": step, "loss": loss * (1 + 2 / (step + 1))}) + "\n")
        f.flush()
    f.write(json.dumps({"loss": loss}) + "\n")
