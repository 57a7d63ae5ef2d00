"""Local HTTP servers that speak each model provider's documented wire format.

``FakeProvider(provider)`` runs a ThreadingHTTPServer on 127.0.0.1 (port 0) with the routes
the real API has, checks requests the way the real API would (auth header, required fields)
and answers with bodies built from the JSON shapes in ``tests/shapes/`` (vectors, scores and
usage filled in from the request). Faults are injected per request with :class:`Fault`
(queued with ``fake.push(...)``) or for every request (``fake.default = Fault(...)``).

Every request is recorded in ``fake.requests`` and every billed quantity in ``fake.billed``,
so tests can check the exact wire format and that counters match what the server reported.

Shapes seen in the wild are the default where the real API sends them: Azure OpenAI answers
with ``-1``/``-1``/``0`` token rate-limit placeholders, and ``FakeProvider(amounts_as_strings=
True)`` sends cost amounts as numeric strings (``"12.50"``, ``"0E-6176"``), as the OpenAI
costs API did May-Aug 2026. Hostile peers: ``Fault(trickle=...)`` sends the response one byte
at a time, ``pad_to``/``endless`` send oversized bodies, ``raw_response`` sends bytes that are
not HTTP at all.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import re
import ssl
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from collectors.model_metrics import (
    MODEL_API_REQUEST_DURATION_SECONDS,
    MODEL_API_REQUESTS_TOTAL,
    MODEL_API_VALIDATION_FAILURES_TOTAL,
)

SHAPES = Path(__file__).resolve().parent / "shapes"


@functools.cache
def _shape_text(name: str) -> str:
    return (SHAPES / f"{name}.json").read_text()


def shape(name: str) -> Any:
    """A fresh copy of a response shape from tests/shapes/."""
    return json.loads(_shape_text(name))


@dataclass
class Fault:
    delay: float = 0.0  # seconds before the response is sent
    body_delay: float = 0.0  # seconds between the first bytes of the body and the rest (a stalled body)
    status: int | None = None  # answer with this status and the provider's error body
    retry_after: str | None = None  # Retry-After header value
    retry_after_ms: str | None = None  # retry-after-ms header value (what OpenAI/Azure clients read first)
    raw_body: bytes | None = None  # send these bytes as the (2xx) body, e.g. malformed JSON
    dims: int | None = None  # vector size for this answer (default: the server's dims)
    nan: bool = False  # a NaN in the first vector (sent as the JSON token NaN)
    null: bool = False  # a null in the first vector (what serde_json sends for NaN)
    zero: bool = False  # first vector all zeros
    drop_one: bool = False  # one embedding / score fewer than asked
    wrong_top: bool = False  # the re-ranker ranks the relevant document last
    headers: dict[str, str] = field(default_factory=dict)
    # change the (2xx) answer before it is sent: edited in place, or replaced by what it returns
    # (e.g. a 400-digit integer in a vector, a negative usage count, an out-of-range timestamp)
    edit: Callable[[Any], Any] | None = None
    # hostile peers
    trickle: float = 0.0  # seconds between single bytes of the response, status line first
    trickle_body_only: bool = False  # with trickle: the headers go at once, then the body trickles
    pad_to: int = 0  # lead the (2xx) JSON body with whitespace up to this many bytes (still valid JSON)
    endless: bool = False  # a chunked (2xx) body of whitespace that never ends
    raw_response: bytes | None = None  # these bytes instead of an HTTP response, then close (a garbled peer)


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


# route -> (provider set, kind)
ROUTES = {
    ("openai", "/v1/embeddings"): "embedding",
    ("openai_compatible", "/v1/embeddings"): "embedding",
    ("cohere", "/v2/embed"): "embedding",
    ("cohere", "/v2/rerank"): "rerank",
    ("voyage", "/v1/embeddings"): "embedding",
    ("voyage", "/v1/rerank"): "rerank",
    ("jina", "/v1/embeddings"): "embedding",
    ("jina", "/v1/rerank"): "rerank",
    ("tei", "/embed"): "embedding",
    ("tei", "/rerank"): "rerank",
    ("ollama", "/api/embed"): "embedding",
}
AZURE_ROUTE = re.compile(r"^/openai/deployments/([^/]+)/embeddings$")
BASE_PATH = {"openai": "/v1", "openai_compatible": "/v1", "voyage": "/v1", "jina": "/v1"}
ERROR_SHAPES = {"openai": "openai_error", "openai_compatible": "openai_error", "azure_openai": "openai_error",
                "cohere": "cohere_error", "voyage": "voyage_error", "jina": "voyage_error", "tei": "tei_error",
                "ollama": "ollama_error"}
WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def count_tokens(texts: list[str]) -> int:
    """The fake's tokenizer: one token per word (deterministic, so tests can predict usage)."""
    return sum(len(words(t)) for t in texts)


def make_vector(i: int, dims: int) -> list[float]:
    return [round((((i + 1) * (j + 3)) % 11 - 5) / 10.0, 3) or 0.05 for j in range(dims)]


class FakeProvider:
    def __init__(self, provider: str, *, dims: int = 8, api_key: str | None = None,
                 admin_key: str | None = None, today: date | None = None, page_size: int = 2,
                 amounts_as_strings: bool = False, tls: tuple[str, str] | None = None):
        self.provider = provider
        self.tls = tls  # (certificate file, key file): serve HTTPS
        self.amounts_as_strings = amounts_as_strings
        self.sent_bytes: list[int] = []  # response bytes written, per request
        self.dims = dims
        self.api_key = api_key
        self.admin_key = admin_key
        self.today = today or datetime.now(UTC).date()
        self.page_size = page_size
        self.default = Fault()
        self.faults: deque[Fault] = deque()
        self.requests: list[Recorded] = []
        self.billed: list[dict[str, float]] = []  # usage reported per 2xx answer
        self.cost_days: dict[date, list[tuple[str, float]]] = {}
        self.usage_days: dict[date, list[tuple[str, int, int]]] = {}
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out as separate writes; with Nagle on, the client's delayed ACK
            # would add ~40 ms to every keep-alive response and spoil the latency measurements
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                fake._handle(self, "POST")

            def do_GET(self) -> None:
                fake._handle(self, "GET")

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # the client gave up (timeout test): nothing to report

        self.server = Server(("127.0.0.1", 0), Handler)
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    # -- lifecycle

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        """The base URL an endpoint config uses for this provider."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}{BASE_PATH.get(self.provider, '')}"

    def start(self) -> FakeProvider:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def push(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    # -- request handling

    def _next_fault(self) -> Fault:
        with self._lock:
            return self.faults.popleft() if self.faults else self.default

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in handler.headers.items()}
        record = Recorded(method, parts.path, parse_qs(parts.query), headers, body)
        with self._lock:
            self.requests.append(record)
        fault = self._next_fault()
        if fault.delay:
            self.stopping.wait(fault.delay)
        try:
            if fault.status is not None:  # an injected failure: nothing is billed
                raise _Reject(fault.status, "injected failure")
            status, payload, extra = self._answer(record, fault)
        except _Reject as reject:
            status, payload, extra = reject.status, self._error_body(reject.message), {}
        if fault.edit is not None and status < 300:
            edited = fault.edit(payload)
            payload = payload if edited is None else edited
        if fault.raw_body is not None and status < 300:
            payload = fault.raw_body
            if self.billed:  # billed by the provider, but nobody can read the usage
                self.billed[-1]["unreadable"] = True
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if fault.endless and status < 300:
            headers["Transfer-Encoding"] = "chunked"
        else:
            headers["Content-Length"] = str(max(len(data), fault.pad_to if status < 300 else 0))
        if fault.retry_after is not None:
            headers["Retry-After"] = fault.retry_after
        if fault.retry_after_ms is not None:
            headers["retry-after-ms"] = fault.retry_after_ms
        headers.update({**extra, **fault.headers})
        with contextlib.suppress(OSError):  # the client went away
            self._send(handler, fault, status, headers, data)

    def _send(self, handler: BaseHTTPRequestHandler, fault: Fault, status: int, headers: dict[str, str],
              data: bytes) -> None:
        out = handler.wfile
        sent = 0

        def write(chunk: bytes, trickle: bool = False) -> None:
            nonlocal sent
            if not trickle:
                out.write(chunk)
                sent += len(chunk)
                return
            for i in range(len(chunk)):
                if self.stopping.is_set():
                    raise OSError("fake stopped")
                out.write(chunk[i:i + 1])
                sent += 1
                self.stopping.wait(fault.trickle)

        try:
            if fault.raw_response is not None:
                handler.close_connection = True
                write(fault.raw_response, bool(fault.trickle))
                return
            reason = handler.responses.get(status, ("",))[0]
            head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            write(head.encode("latin-1"), bool(fault.trickle) and not fault.trickle_body_only)
            if fault.endless and status < 300:
                block = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
                while not self.stopping.is_set():
                    write(block)
                return
            if fault.pad_to > len(data) and status < 300:
                pad, block = fault.pad_to - len(data), b" " * 65536
                while pad > 0:
                    write(block[:pad])
                    pad -= len(block)
            if fault.body_delay:
                write(data[:8])
                self.stopping.wait(fault.body_delay)
                data = data[8:]
            write(data, bool(fault.trickle))
        finally:
            with self._lock:
                self.sent_bytes.append(sent)

    def _error_body(self, message: str) -> Any:
        body = shape(ERROR_SHAPES.get(self.provider, "openai_error"))
        if "error" in body and isinstance(body["error"], dict):
            body["error"]["message"] = message
        elif "message" in body:
            body["message"] = message
        elif "detail" in body:
            body["detail"] = message
        else:
            body["error"] = message
        return body

    def _auth(self, record: Recorded, admin: bool = False) -> None:
        key = self.admin_key if admin else self.api_key
        if key is None:
            return
        if self.provider == "azure_openai" and not admin:
            if record.headers.get("api-key") != key:
                raise _Reject(401, "Access denied due to invalid subscription key or wrong API endpoint.")
        elif record.headers.get("authorization") != f"Bearer {key}":
            raise _Reject(401, "Incorrect API key provided.")

    def _answer(self, record: Recorded, fault: Fault) -> tuple[int, Any, dict[str, str]]:
        if record.method == "GET" and self.provider == "openai" and record.path.startswith("/v1/organization/"):
            self._auth(record, admin=True)
            return self._organization(record)
        kind = ROUTES.get((self.provider, record.path))
        if self.provider == "azure_openai" and AZURE_ROUTE.match(record.path):
            kind = "embedding"
            if not record.query.get("api-version"):
                raise _Reject(404, "Resource not found")
        if kind is None or record.method != "POST":
            raise _Reject(404, f"no route {record.method} {record.path}")
        self._auth(record)
        body = record.body
        if not isinstance(body, dict):
            raise _Reject(400, "request body must be a JSON object")
        if kind == "embedding":
            return self._embed(body, fault)
        return self._rerank(body, fault)

    # -- embeddings

    def _texts(self, body: dict) -> list[str]:
        key = {"cohere": "texts", "tei": "inputs"}.get(self.provider, "input")
        texts = body.get(key)
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
            raise _Reject(422 if self.provider in ("tei",) else 400, f"{key} must be a non-empty list of strings")
        return texts

    def _vectors(self, texts: list[str], fault: Fault) -> list[list[Any]]:
        dims = fault.dims or self.dims
        vectors: list[list[Any]] = [make_vector(i, dims) for i in range(len(texts))]
        if fault.zero:
            vectors[0] = [0.0] * dims
        if fault.nan:
            vectors[0][0] = float("nan")
        if fault.null:
            vectors[0][0] = None
        if fault.drop_one:
            vectors = vectors[:-1]
        return vectors

    def _embed(self, body: dict, fault: Fault) -> tuple[int, Any, dict[str, str]]:
        p = self.provider
        texts = self._texts(body)
        if p in ("openai", "openai_compatible", "cohere", "voyage", "jina", "ollama") and not body.get("model"):
            raise _Reject(400, "model is required")
        if p == "cohere" and body.get("input_type") not in ("search_document", "search_query", "classification",
                                                           "clustering", "image"):
            raise _Reject(400, "invalid request: input_type is required")
        if p == "azure_openai" and "model" in body:
            pass  # Azure ignores it; the deployment names the model
        if p in ("openai", "openai_compatible", "azure_openai") and body.get("encoding_format", "float") != "float":
            raise _Reject(400, "encoding_format must be float for this fake")
        tokens = count_tokens(texts)
        vectors = self._vectors(texts, fault)
        headers: dict[str, str] = {}
        if p in ("openai", "openai_compatible", "azure_openai"):
            out = shape("openai_embeddings")
            template = out["data"][0]
            out["data"] = [{**template, "index": i, "embedding": v} for i, v in enumerate(vectors)]
            out["model"] = body.get("model", "text-embedding-3-small")
            out["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
            if p != "openai_compatible":
                headers = {"x-ratelimit-limit-requests": "3000", "x-ratelimit-remaining-requests": "2999",
                           "x-ratelimit-reset-requests": "20ms", "x-ratelimit-limit-tokens": "1000000",
                           "x-ratelimit-remaining-tokens": str(1000000 - tokens),
                           "x-ratelimit-reset-tokens": "6m0s",
                           "openai-processing-ms": str(int(fault.delay * 1000) + 1), "x-request-id": "req_fake"}
            if p == "azure_openai":  # Azure's placeholders (MS Q&A 5625878, openai-dotnet#838): not a real limit
                headers.update({"x-ratelimit-limit-tokens": "-1", "x-ratelimit-remaining-tokens": "-1",
                                "x-ratelimit-reset-tokens": "0"})
        elif p == "cohere":
            out = shape("cohere_embed")
            out["embeddings"] = {"float": vectors}
            out["texts"] = [t.lower() for t in texts]
            out["meta"]["billed_units"] = {"input_tokens": tokens}
        elif p in ("voyage", "jina"):
            out = shape(f"{p}_embeddings")
            template = out["data"][0]
            out["data"] = [{**template, "index": i, "embedding": v} for i, v in enumerate(vectors)]
            out["model"] = body["model"]
            out["usage"] = {"total_tokens": tokens} if p == "voyage" else {"total_tokens": tokens,
                                                                          "prompt_tokens": tokens}
        elif p == "tei":
            out = vectors
            headers = self._tei_headers(texts, tokens, fault)
        elif p == "ollama":
            out = shape("ollama_embed")
            out["model"] = body["model"]
            out["embeddings"] = vectors
            out["prompt_eval_count"] = tokens
            out["load_duration"] = 1_019_500
            out["total_duration"] = int(fault.delay * 1e9) + 2_000_000
        else:  # pragma: no cover
            raise _Reject(500, "unknown provider")
        self.billed.append({"tokens": tokens})
        return 200, out, headers

    @staticmethod
    def _tei_headers(texts: list[str], tokens: int, fault: Fault) -> dict[str, str]:
        total_ms = int(fault.delay * 1000) + 2
        return {"x-compute-type": "cpu", "x-compute-time": str(total_ms),
                "x-compute-characters": str(sum(len(t) for t in texts)), "x-compute-tokens": str(tokens),
                "x-total-time": str(total_ms), "x-tokenization-time": "1", "x-queue-time": "0",
                "x-inference-time": str(max(1, total_ms - 1))}

    # -- re-rank

    def _rerank(self, body: dict, fault: Fault) -> tuple[int, Any, dict[str, str]]:
        p = self.provider
        docs_key = "texts" if p == "tei" else "documents"
        query, documents = body.get("query"), body.get(docs_key)
        if not isinstance(query, str) or not query:
            raise _Reject(422 if p == "tei" else 400, "query is required")
        if not isinstance(documents, list) or not documents or not all(isinstance(d, str) for d in documents):
            raise _Reject(422 if p == "tei" else 400, f"{docs_key} must be a list of strings")
        if p != "tei" and not body.get("model"):
            raise _Reject(400, "model is required")
        if p == "voyage" and "top_n" in body:
            raise _Reject(400, "top_n is not a Voyage parameter (use top_k)")
        q = set(words(query))
        scores = [len(q & set(words(d))) / max(1, len(q)) * 0.98 + 0.01 * (1 - i / len(documents))
                  for i, d in enumerate(documents)]
        order = sorted(range(len(documents)), key=lambda i: -scores[i])
        if fault.wrong_top:
            order = order[::-1]
            scores = [1.0 - s for s in scores]
        if fault.nan:
            scores[order[0]] = float("nan")
        if fault.drop_one:
            order = order[:-1]
        limit = body.get("top_k" if p == "voyage" else "top_n")
        if isinstance(limit, int):
            order = order[:limit]
        tokens = count_tokens([query]) * len(documents) + count_tokens(documents)  # Voyage's formula
        headers: dict[str, str] = {}
        if p == "cohere":
            out = shape("cohere_rerank")
            out["results"] = [{"index": i, "relevance_score": scores[i]} for i in order]
            out["meta"]["billed_units"] = {"search_units": 1}
            self.billed.append({"search_units": 1})
        elif p in ("voyage", "jina"):
            out = shape(f"{p}_rerank")
            key = "data" if p == "voyage" else "results"
            out[key] = [{"index": i, "relevance_score": scores[i]} for i in order]
            if p == "jina" and body.get("return_documents", True):
                for item in out[key]:
                    item["document"] = {"text": documents[item["index"]]}
            out["model"] = body["model"]
            out["usage"] = {"total_tokens": tokens}
            self.billed.append({"tokens": tokens})
        else:  # tei
            out = [{"index": i, "score": scores[i]} for i in order]
            headers = self._tei_headers(documents, tokens, fault)
            self.billed.append({"tokens": tokens})
        return 200, out, headers

    # -- OpenAI organization costs / usage

    def _organization(self, record: Recorded) -> tuple[int, Any, dict[str, str]]:
        q = record.query
        try:
            start_time = int(q["start_time"][0])
        except (KeyError, ValueError):
            raise _Reject(400, "start_time is required") from None
        if "end_time" in q and int(q["end_time"][0]) > datetime.now(UTC).timestamp():
            raise _Reject(400, "end_time must not be in the future")
        width = q.get("bucket_width", ["1d"])[0]
        limit = int(q.get("limit", ["7"])[0])
        if record.path == "/v1/organization/costs":
            if width != "1d":
                raise _Reject(400, "bucket_width must be 1d")
            if not 1 <= limit <= 180:
                raise _Reject(400, f"Invalid limit provided: {limit}")
            group_by = q.get("group_by", [])
        elif record.path == "/v1/organization/usage/embeddings":
            if width not in ("1m", "1h", "1d") or (width == "1d" and not 1 <= limit <= 31):
                raise _Reject(400, f"Invalid limit provided: {limit}")
            group_by = q.get("group_by", [])
        else:
            raise _Reject(404, "no such organization route")
        if any(k.endswith("[]") for k in q):
            raise _Reject(400, "unknown parameter")
        first = datetime.fromtimestamp(start_time, UTC).date()
        days = [first + timedelta(days=n) for n in range((self.today - first).days + 1)]
        offset = int(q.get("page", ["0"])[0] or 0)
        size = min(limit, self.page_size)
        page_days = days[offset:offset + size]
        buckets = []
        for day in page_days:
            start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
            if record.path.endswith("/costs"):
                template = shape("openai_costs_page")["data"][0]["results"][0]
                results = []
                for item, usd in self.cost_days.get(day, []):
                    row = copy.deepcopy(template)
                    row["amount"]["value"] = self._amount(usd)
                    row["line_item"] = item if "line_item" in group_by else None
                    results.append(row)
            else:
                template = shape("openai_usage_embeddings_page")["data"][0]["results"][0]
                results = []
                for model, tokens, reqs in self.usage_days.get(day, []):
                    row = dict(template, input_tokens=tokens, num_model_requests=reqs,
                               model=model if "model" in group_by else None)
                    results.append(row)
            buckets.append({"object": "bucket", "start_time": start, "end_time": start + 86400,
                            "results": results})
        more = offset + size < len(days)
        return 200, {"object": "page", "data": buckets, "has_more": more,
                     "next_page": str(offset + size) if more else None}, {}


    def _amount(self, usd: float) -> Any:
        """A cost amount as the costs API sends it: a JSON number, or (``amounts_as_strings``) the
        numeric string the live API sent May-Aug 2026 (openai-java#771): ``"12.50"``, ``"0E-6176"``."""
        if not self.amounts_as_strings:
            return usd
        return "0E-6176" if usd == 0 else f"{usd:.2f}" if round(usd, 2) == usd else repr(usd)


class _Reject(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# --------------------------------------------------------------------------- test helpers

MODELS = {
    ("openai", "embedding"): "text-embedding-3-small",
    ("openai_compatible", "embedding"): "BAAI/bge-small-en-v1.5",
    ("azure_openai", "embedding"): "text-embedding-3-small",
    ("cohere", "embedding"): "embed-v4.0",
    ("cohere", "rerank"): "rerank-v3.5",
    ("voyage", "embedding"): "voyage-3.5",
    ("voyage", "rerank"): "rerank-2.5",
    ("jina", "embedding"): "jina-embeddings-v3",
    ("jina", "rerank"): "jina-reranker-v2-base-multilingual",
    ("tei", "embedding"): "BAAI/bge-small-en-v1.5",
    ("tei", "rerank"): "BAAI/bge-reranker-base",
    ("ollama", "embedding"): "nomic-embed-text",
}
COMBOS = sorted(MODELS)


def endpoint_config(fake: FakeProvider, kind: str = "embedding", **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "ep", "provider": fake.provider, "kind": kind, "url": fake.url,
                            "model": MODELS[(fake.provider, kind)], "timeout": "2s", "interval": "60s"}
    if fake.api_key:
        data["api_key"] = fake.api_key
    data.update(overrides)
    return data


class Probe:
    """Runs ModelProbeCollector against a fake the way a job does: same state every run."""

    def __init__(self, fake: FakeProvider, kind: str = "embedding", *, prices: Any = None, ledger: Any = None,
                 dimension_source: Any = None, **overrides: Any):
        import requests

        from collectors.model_probe import ModelProbeCollector
        from collectors.provider_costs import PriceTable
        from collectors.settings.endpoints import EndpointTarget
        from collectors.spend_ledger import SpendLedger

        self.target = EndpointTarget.model_validate(endpoint_config(fake, kind, **overrides))
        self.session = requests.Session()
        self.session.trust_env = False
        self.sleeps: list[float] = []
        self.ledger = ledger if ledger is not None else SpendLedger()
        self.collector = ModelProbeCollector(session=self.session, prices=prices or PriceTable.load(),
                                             ledger=self.ledger, default_dimension_source=dimension_source,
                                             sleep=self.sleeps.append)
        self.state: dict[str, Any] = {}

    @property
    def labels(self) -> dict[str, str]:
        t = self.target
        return {"target": t.name, "provider": t.provider, "model": t.model, "kind": t.kind}

    def run(self):
        from helpers import Families

        from collectors.base import CollectContext

        return ProbeRun(self, Families(self.collector.collect(
            CollectContext(target=self.target.name, settings=self.target, state=self.state))))


class ProbeRun:
    def __init__(self, probe: Probe, families: Any):
        self.probe = probe
        self.families = families

    def value(self, name: str, **labels: str) -> float | None:
        pm = {k: v for k, v in self.probe.labels.items() if k != "kind"} if name.startswith(
            ("vecmon_embedding_", "vecmon_rerank_")) else self.probe.labels
        return self.families.value(name, {**pm, **labels})

    def requests(self, outcome: str) -> float | None:
        return self.value(MODEL_API_REQUESTS_TOTAL.name, outcome=outcome)

    def outcomes(self) -> dict[str, float]:
        from collectors.providers.common import OUTCOMES

        return {o: self.requests(o) for o in OUTCOMES if self.requests(o)}

    def latency_sum(self, outcome: str = "success") -> float | None:
        return self.value(f"{MODEL_API_REQUEST_DURATION_SECONDS.name}_sum", outcome=outcome)

    def latency_count(self, outcome: str = "success") -> float | None:
        return self.value(f"{MODEL_API_REQUEST_DURATION_SECONDS.name}_count", outcome=outcome)

    def failures(self, reason: str) -> float | None:
        return self.value(MODEL_API_VALIDATION_FAILURES_TOTAL.name, reason=reason)

    def text(self) -> str:
        return self.families.text()
