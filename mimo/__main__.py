"""`python -m mimo ...`: the same as the `mimo` command."""
from mimo.cli import main

if __name__ == "__main__":
    main()
