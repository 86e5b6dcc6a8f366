from plexichat_desktop.cli import main

raise SystemExit(main())
