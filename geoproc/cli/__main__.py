"""``python -m geoproc.cli``: the same as the ``geoproc`` command."""

from . import main

main()
