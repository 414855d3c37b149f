"""`create_app` under its first address: the Alibaba SDK compatibility tests (kept unchanged on purpose)
import it from here. The application is built in lookalike.api.app, the one composition root."""

from lookalike.api.app import create_app

__all__ = ["create_app"]
