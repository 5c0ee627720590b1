from kubepulse.cli.main import main

raise SystemExit(main())
