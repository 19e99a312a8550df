from streamfw.cli import main

raise SystemExit(main())
