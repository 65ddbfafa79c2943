"""Entry point: ``python -m experiments.run [overrides]`` (see :mod:`experiments.app`)."""

from experiments.app import main

if __name__ == "__main__":
    main()
