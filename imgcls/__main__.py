"""``python -m imgcls COMMAND ...``: the ``imgcls`` command line."""

from imgcls.commands import main

if __name__ == "__main__":
    main()
