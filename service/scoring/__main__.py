"""python -m service.scoring TASK [INPUT] [-o OUTPUT] ...  (the same as `toyseq-score`)"""

from .cli import main

raise SystemExit(main())
