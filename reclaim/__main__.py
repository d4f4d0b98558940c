import signal
import sys

from reclaim.cli import main

# `python -m reclaim plan | head` ends quietly, as other command-line tools do.
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
sys.exit(main())
