"""The ``macrometa://`` transport: GDN streams over REST and WebSocket (work in progress)."""
