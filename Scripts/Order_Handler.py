"""The original kit's handler: ``uvicorn Scripts.Order_Handler:app --host 0.0.0.0 --port 8080``.

A thin shim over the ordergate application, configured from ``ORDERGATE_*`` variables (home: the
current folder). Start-up problems (profiles, a store in use) stop uvicorn with one line and exit 2.
"""

import sys

from ordergate.api.app import create_app
from ordergate.bootstrap import prepare_gateway
from ordergate.config import Settings
from ordergate.errors import StartupError
from ordergate.security.exposure import exposure_warning, host_from_argv

settings = Settings()
try:
    gateway = prepare_gateway(settings)
    app = create_app(settings, gateway)
except StartupError as exc:
    print(f"error: {exc}", file=sys.stderr)
    raise SystemExit(2) from None

_warning = exposure_warning(host_from_argv(sys.argv) or "127.0.0.1", settings.auth)
if _warning is not None:
    print(f"warning: {_warning}", file=sys.stderr)
