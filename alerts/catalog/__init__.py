"""The threshold-alert catalog: every alert ``vecmon generate`` can write, one module a domain.

- :mod:`alerts.catalog.vecmon`: vecmon itself (its scrape, its targets, its collectors),
- :mod:`alerts.catalog.postgres` and :mod:`alerts.catalog.pg_signals`: PostgreSQL,
- :mod:`alerts.catalog.pgvector`: ANN latency, recall, vector indexes,
- :mod:`alerts.catalog.model_apis`: embedding and re-ranker endpoints, and spend,
- :mod:`alerts.catalog.applications`: the application probes.

:data:`CATALOG` is the order of the rule files and the README; :data:`GROUP_ORDER` the order of the
rule groups (``vecmon-<group>``).
"""

from __future__ import annotations

from alerts.catalog.applications import APP_ALERTS
from alerts.catalog.model_apis import COST, MODEL_APIS
from alerts.catalog.pg_signals import PG_SIGNALS
from alerts.catalog.pgvector import PGVECTOR
from alerts.catalog.postgres import POSTGRES
from alerts.catalog.vecmon import VECMON
from alerts.model import AlertDef

CATALOG: list[AlertDef] = [*VECMON, *POSTGRES, *PG_SIGNALS, *PGVECTOR, *MODEL_APIS, *COST, *APP_ALERTS]
ALERTS: dict[str, AlertDef] = {a.name: a for a in CATALOG}
GROUP_ORDER = ("self", "postgres", "pgvector", "model-apis", "cost", "applications")
