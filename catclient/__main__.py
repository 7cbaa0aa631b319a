"""``python -m catclient``: the command line client."""

from catclient.cli import main

raise SystemExit(main())
