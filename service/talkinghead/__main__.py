import sys

from talkinghead.cli import main

sys.exit(main())
