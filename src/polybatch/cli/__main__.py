"""``python -m polybatch.cli``: the same entry point as the ``polybatch`` command."""

from . import main

main()
