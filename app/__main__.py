import gc
import sys

# Paused from the first import: see DrainingServer.serve (app/core/workers.py);
# `main` turns it back on for every command but the server's.
gc.disable()

from app.cli import main  # noqa: E402

sys.exit(main())
