"""headcast networks (torch). The runtime (streamer/) never imports this package."""
