"""Run the geoproc CLI from a checkout or a container: ``python cli.py run hello_world``."""

from geoproc.cli import main

if __name__ == "__main__":
    main()
