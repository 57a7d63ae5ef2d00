"""The HTTP session of one endpoint, cost-API or application target.

Keep-alive, vecmon's User-Agent, the proxy settings of the environment when ``trust_env``, and
adapters that enforce whole-request deadlines (:mod:`collectors.providers.http_deadline`);
urllib3's URL logging is redacted first (a hostile peer makes urllib3 log the URL, query and API
key included). :mod:`collectors.registry` loads this module by path: it imports ``requests``.
"""

from __future__ import annotations

import requests

from collectors.providers.http_deadline import mount_deadline_adapters, redact_urllib3_urls

USER_AGENT = "vecmon-probe"


def new_session(trust_env: bool = True) -> requests.Session:
    redact_urllib3_urls()
    session = requests.Session()
    session.trust_env = trust_env  # HTTP(S)_PROXY / NO_PROXY from the environment
    session.headers["User-Agent"] = USER_AGENT
    mount_deadline_adapters(session)
    return session
