"""Write a randomly initialised ESM-2 of a real model's shape in fair-esm's checkpoint format.

    python -m bench.random_esm2 t6_8M /tmp/esm2_t6_8M_random.pt

Speed does not depend on weight values, so these stand in for the real weights in benchmarks.
"""
import sys

from mimo.pipeline.testing import save_random_esm2

SHAPES = {  # (layers, width, heads) of fair-esm's ESM-2 models
    "t6_8M": (6, 320, 20), "t12_35M": (12, 480, 20), "t30_150M": (30, 640, 20),
    "t33_650M": (33, 1280, 20), "t36_3B": (36, 2560, 40),
}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in SHAPES:
        sys.exit(f"usage: python -m bench.random_esm2 {{{','.join(SHAPES)}}} OUT.pt")
    layers, width, heads = SHAPES[sys.argv[1]]
    print(save_random_esm2(sys.argv[2], layers, width, heads))
