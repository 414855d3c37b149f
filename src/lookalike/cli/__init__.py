"""`lookalike` command line: serve, admin tasks, a tenant's billing calls, duplicate reports, bulk import.

Every admin command accepts --json and then prints one JSON object (ids and secrets) on stdout, so scripts
can parse it. A failure is one line on stderr, `lookalike: error: <what> — <how to fix>` (exit status 2 for
a usage mistake, 1 otherwise); --debug or LOOKALIKE_DEBUG=1 adds the traceback.

One module per job: parser (the whole command line), options (what commands share), one module per command
group (serve, admin_*, tenant, duplicates, bulk_import), settings (config.py's order), errors (the one line),
tenant_client (the API calls), upload_listener and ports (serve's listeners).
"""

from lookalike.cli.main import main
from lookalike.cli.parser import build_parser
from lookalike.cli.settings import settings_from_args

# tests/system/test_config.py reads the settings of a parsed command line under this name.
_settings = settings_from_args

__all__ = ["build_parser", "main"]
