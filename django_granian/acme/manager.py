"""The ACME process: keep a valid certificate in the cache, renewing it ahead of expiry.

Forked by the supervisor (``acme_main``), so exactly one process per server talks to the CA. Its loop:

- a cached certificate that covers ``--acme-domain`` and is not due for renewal means no request to
  the CA at all (a restart with a valid cache is silent); sleep until the renewal time;
- otherwise order one; a failure is logged with the CA's problem document and retried with
  exponential backoff (10 s doubling up to 1 h); workers keep serving the cached certificate
  meanwhile, with a warning once it has expired.
"""

from __future__ import annotations

import datetime
import logging
import time
from typing import Callable

from ..config import Config
from .client import CertInfo, Issuer, OrderFailed, cached_certificate
from .store import CertStore

logger = logging.getLogger("django_granian.acme")

FIRST_RETRY = 10.0
MAX_RETRY = 3600.0
MAX_SLEEP = 3600.0  # re-read the cache at least hourly (another tool may have replaced it)


class Manager:
    def __init__(self, config: Config, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.store = CertStore.from_config(config)
        self.issuer = Issuer(config, self.store)
        self.sleep = sleep
        self.retry = FIRST_RETRY

    def step(self) -> float:
        """Do what is due now; seconds until the next step."""
        now = datetime.datetime.now(datetime.timezone.utc)
        info = cached_certificate(self.store)
        domains = ", ".join(self.store.domains)
        if info is not None and info.covers(self.store.domains):
            due = info.renew_at(self.config.acme_renew_before)
            if now < due:
                return min((due - now).total_seconds(), MAX_SLEEP)
            what = "renewing" if not info.expired(now) else "the cached certificate EXPIRED; renewing"
            logger.info("ACME: %s the certificate for %s (expires %s)", what, domains, _when(info.not_after))
        elif info is not None:
            logger.info("ACME: the cached certificate does not cover %s: ordering a new one", domains)
        else:
            logger.info("ACME: no certificate for %s yet: ordering one from %s", domains,
                        self.config.acme_directory)
        try:
            new = self.issuer.obtain()
        except OrderFailed as exc:
            delay = self.retry
            self.retry = min(self.retry * 2, MAX_RETRY)
            logger.error("ACME order for %s failed: %s -- retrying in %.0fs", domains, exc, delay)
            if info is not None and info.expired(now):
                logger.warning("ACME: still serving the EXPIRED certificate for %s (expired %s)", domains,
                               _when(info.not_after))
            elif info is not None:
                logger.warning("ACME: serving the cached certificate for %s until renewal succeeds (expires %s)",
                               domains, _when(info.not_after))
            return delay
        self.retry = FIRST_RETRY
        logger.info("ACME: obtained a certificate for %s (serial %x, valid until %s)", domains, new.serial,
                    _when(new.not_after))
        return self.step_after(new)

    def step_after(self, info: CertInfo) -> float:
        now = datetime.datetime.now(datetime.timezone.utc)
        return max(1.0, min((info.renew_at(self.config.acme_renew_before) - now).total_seconds(), MAX_SLEEP))

    def run(self) -> None:
        self.store.clear_challenges()  # left over by a process that was stopped mid-order
        while True:
            self.sleep(self.step())


def _when(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def acme_main(config: Config) -> None:
    """Body of the forked ACME process (the supervisor SIGTERMs it on shutdown)."""
    Manager(config).run()
