"""Rebuild ``samples/eurosat_rgb``: a seeded, balanced sample of real EuroSAT RGB images.

python samples/make_eurosat_sample.py /path/to/eurosat_rgb --per-class 100
"""

import argparse
import random
import shutil
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source", type=Path, help="full EuroSAT RGB folder (<Class>/<Class>_<n>.jpg)")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    target = Path(__file__).parent / "eurosat_rgb"
    for folder in sorted(p for p in args.source.iterdir() if p.is_dir()):
        files = sorted(folder.glob("*.jpg"))
        chosen = random.Random(f"{args.seed}-{folder.name}").sample(files, args.per_class)
        (target / folder.name).mkdir(parents=True, exist_ok=True)
        for file in chosen:
            shutil.copy2(file, target / folder.name / file.name)


if __name__ == "__main__":
    main()
