"""``python -m jupyter_mldeploy.server``: the azmlinfsrv-compatible scoring server (see :mod:`.supervisor`)."""

from __future__ import annotations

import sys

from jupyter_mldeploy.server.supervisor import main

if __name__ == "__main__":
    sys.exit(main())
