from previz.cli import main

raise SystemExit(main())
