"""``python -m fusionrec`` (and ``torchrun ... -m fusionrec train ...``): the command line."""

from fusionrec.cli import main

raise SystemExit(main())
