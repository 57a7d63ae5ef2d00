"""State that collectors share across jobs and across config reloads.

Owned by whoever runs the collectors (the daemon, ``vecmon collect``, a test) and handed to
every run as ``ctx.shared``, instead of living in module globals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from collectors.spend_ledger import SpendLedger
from collectors.state_stores import StateStores
from collectors.vector_catalog import VectorColumns
from monitor.discovery import Rediscovery


@dataclass
class SharedState:
    # probe spend and polled provider costs, per source and day (budgets read it)
    ledger: SpendLedger = field(default_factory=SpendLedger)
    # vector columns found by discovery, for the embedding probes' dimension checks
    vector_columns: VectorColumns = field(default_factory=VectorColumns)
    # recall-probe state stores, one engine per SQLAlchemy URL
    state_stores: StateStores = field(default_factory=StateStores)
    # set by a discovery job when its server's databases changed: the daemon rebuilds the jobs
    rediscovery: Rediscovery = field(default_factory=Rediscovery)

    def close(self) -> None:
        self.state_stores.close()
