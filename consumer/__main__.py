import sys

from consumer.early_signals import hold_stop_signals

if next((a for a in sys.argv[1:] if not a.startswith("-")), None) == "run":
    hold_stop_signals()  # first thing: a SIGTERM while importing is a graceful stop

from consumer.cli import main  # after holding the stop signals

raise SystemExit(main())
