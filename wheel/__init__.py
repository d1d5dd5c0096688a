"""Wheel: run a marketplace business (Amazon India, Flipkart, Tata CLiQ) from your own OMS.

This package is the core library: settings, domain types, OMS codecs, marketplace adapters,
the database and the services. It imports neither Celery nor an MQ client; `workers/` and
`bridge/` import it.
"""

# `bridge` and `workers` check this marker at start-up: PyPA's `wheel` distribution uses the
# same import name and, when installed, can shadow this package.
__wheel_middleware__ = True
__version__ = "0.1.0"
