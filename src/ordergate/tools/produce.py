"""The load producer behind ``ordergate produce`` (SPEC section 5): draw orders, send them paced, sum up.

By default it is the original kit's producer: 300 orders one second apart, strategy, instrument and
side drawn uniformly from the catalogue and POSTed to ``/create_order``. The same machinery drives
load tests: a global rate shared by concurrent workers, the ``/v1`` API, and the ``universe`` mode
that only draws instruments a strategy's subscribers trade, so most orders mean something. Every
order carries a client order id that each retry repeats, so a retry after a lost answer can never
apply an order twice. The retries are the Python client's (:mod:`ordergate.client.retry` decides,
:func:`ordergate.client.transport.asend_with_retries` loops); the bodies are encoded once per order
and the answers read without models, which keeps the producer's own cost per order small enough to
load a gateway. Drawing, answer reading and the summary maths are pure and tested without a server;
the CLI prints the table :func:`render_summary` returns.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import orjson

from ordergate.client.retry import RETRYABLE_STATUSES, RetryPolicy
from ordergate.client.transport import Outcome, asend_with_retries
from ordergate.domain.model import Order, Side
from ordergate.tools.catalogue import Catalogue

if TYPE_CHECKING:
    import httpx
    from rich.console import Console
    from rich.progress import Progress, TaskID
    from rich.table import Table

Mode = Literal["uniform", "universe"]
Api = Literal["legacy", "v1"]
Profiles = Mapping[str, Mapping[str, Collection[str]]]

BACKOFF_BASE_SECONDS = 0.1
BACKOFF_CAP_SECONDS = 5.0
RETRY_AFTER_CAP_SECONDS = 60.0
ERROR_SAMPLES = 5
_SIDES = (Side.BUY, Side.SELL)


def retry_policy(retries: int) -> RetryPolicy:
    """The producer's retries: ``retries`` after the first try, with no bound on the total time (a load
    run waits out an outage rather than count its orders as errors)."""
    return RetryPolicy(
        attempts=retries + 1,
        base_seconds=BACKOFF_BASE_SECONDS,
        cap_seconds=BACKOFF_CAP_SECONDS,
        retry_after_cap_seconds=RETRY_AFTER_CAP_SECONDS,
        total_seconds=math.inf,
    )


@dataclass(frozen=True, slots=True)
class ProducerConfig:
    """How to produce; invalid values raise ``ValueError`` with a one-line message for the user.

    With ``rate`` set, orders follow one global schedule of ``rate`` per second whatever the
    concurrency; otherwise each worker waits ``interval`` seconds between the starts of its sends
    (0 means as fast as answers come back). ``api_key`` is sent as a bearer token when auth is on.
    """

    url: str = "http://127.0.0.1:8080"
    count: int = 300
    interval: float = 1.0
    rate: float | None = None
    concurrency: int = 1
    mode: Mode = "uniform"
    seed: int | None = None
    api: Api = "legacy"
    timeout: float = 10.0
    retries: int = 5
    api_key: str | None = None

    def __post_init__(self) -> None:
        problem = _config_problem(self)
        if problem is not None:
            raise ValueError(problem)


def _config_problem(config: ProducerConfig) -> str | None:
    if not config.url.startswith(("http://", "https://")):
        return f"url must start with http:// or https:// (got {config.url!r})"
    if config.count < 1:
        return f"count must be at least 1 (got {config.count})"
    if not (math.isfinite(config.interval) and config.interval >= 0):
        return f"interval must be 0 or more seconds (got {config.interval})"
    if config.rate is not None and not (math.isfinite(config.rate) and config.rate > 0):
        return f"rate must be more than 0 orders per second (got {config.rate})"
    if config.concurrency < 1:
        return f"concurrency must be at least 1 (got {config.concurrency})"
    if config.mode not in ("uniform", "universe"):
        return f"mode must be 'uniform' or 'universe' (got {config.mode!r})"
    if config.api not in ("legacy", "v1"):
        return f"api must be 'legacy' or 'v1' (got {config.api!r})"
    if not (math.isfinite(config.timeout) and config.timeout > 0):
        return f"timeout must be more than 0 seconds (got {config.timeout})"
    if config.retries < 0:
        return f"retries must be 0 or more (got {config.retries})"
    return None


def strategy_universe(profiles: Profiles) -> dict[str, tuple[str, ...]]:
    """Each subscribed strategy with the union of its subscribers' instruments.

    Both levels are sorted so the draw is reproducible whatever the input's order or container
    (a registry's frozensets iterate differently from one process to the next).
    """
    traded: dict[str, set[str]] = {}
    for strategies in profiles.values():
        for strategy, instruments in strategies.items():
            traded.setdefault(strategy, set()).update(instruments)
    return {strategy: tuple(sorted(traded[strategy])) for strategy in sorted(traded) if traded[strategy]}


class OrderDrawer:
    """Draws the producer's orders; the same seed and inputs always give the same sequence."""

    __slots__ = ("_instruments", "_rng", "_strategies")

    def __init__(self, instruments_by_strategy: Mapping[str, Sequence[str]], seed: int | None) -> None:
        if not instruments_by_strategy:
            raise ValueError("there is no strategy with instruments to draw orders from")
        self._instruments = instruments_by_strategy
        self._strategies = tuple(instruments_by_strategy)
        self._rng = random.Random(seed)

    @classmethod
    def uniform(cls, catalogue: Catalogue, seed: int | None) -> OrderDrawer:
        """The seed producer's draw: any catalogue strategy with any catalogue instrument."""
        return cls(dict.fromkeys(catalogue.strategies, catalogue.instruments), seed)

    @classmethod
    def universe(cls, profiles: Profiles, seed: int | None) -> OrderDrawer:
        """Only subscribed strategies, each with instruments one of its subscribers trades."""
        return cls(strategy_universe(profiles), seed)

    @classmethod
    def for_mode(
        cls, mode: Mode, catalogue: Catalogue | None, profiles: Profiles | None, seed: int | None
    ) -> OrderDrawer:
        if mode == "uniform":
            if catalogue is None:
                raise ValueError("uniform mode draws from the catalogue; none was given")
            return cls.uniform(catalogue, seed)
        if profiles is None:
            raise ValueError("universe mode draws from the profiles; none were given")
        return cls.universe(profiles, seed)

    def draw(self) -> Order:
        strategy = self._rng.choice(self._strategies)
        return Order(strategy, self._rng.choice(self._instruments[strategy]), self._rng.choice(_SIDES))


@dataclass(frozen=True, slots=True)
class Answer:
    """The gateway's decision on one order."""

    accepted: bool
    reason: str | None


@dataclass(frozen=True, slots=True)
class Failure:
    """An order that got no decision; ``message`` is for the user."""

    message: str


@dataclass(slots=True)
class ProducerSummary:
    """What a run did. ``latencies`` holds, per decided order, the seconds from first send to decision."""

    sent: int = 0
    accepted: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())

    @property
    def answered(self) -> int:
        return self.accepted + self.rejected

    @property
    def unanswered(self) -> int:
        """Orders sent but still in flight when the run was interrupted."""
        return max(0, self.sent - self.answered - self.errors)

    @property
    def p50(self) -> float | None:
        return self.latency_percentile(50)

    @property
    def p99(self) -> float | None:
        return self.latency_percentile(99)

    @property
    def rate(self) -> float:
        """Decided orders per second of the run."""
        return self.answered / self.elapsed if self.elapsed > 0 else 0.0

    def latency_percentile(self, percent: float) -> float | None:
        """Nearest-rank percentile: always a latency that was observed; ``None`` before any answer."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        rank = math.ceil(round(percent * len(ordered) / 100, 9))
        return ordered[min(max(rank, 1), len(ordered)) - 1]

    def record(self, outcome: Answer | Failure, latency: float) -> None:
        if isinstance(outcome, Failure):
            self.errors += 1
            if len(self.error_samples) < ERROR_SAMPLES and outcome.message not in self.error_samples:
                self.error_samples.append(outcome.message)
        elif outcome.accepted:
            self.accepted += 1
            self.latencies.append(latency)
        else:
            reason = outcome.reason or "UNSPECIFIED"
            self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + 1
            self.latencies.append(latency)


@dataclass(frozen=True, slots=True)
class OrderRequest:
    url: str
    body: bytes
    headers: dict[str, str]


def order_request(config: ProducerConfig, order: Order, client_order_id: str) -> OrderRequest:
    """The HTTP request for one order; retries send exactly this again."""
    base = config.url.rstrip("/")
    headers = {"Content-Type": "application/json"}
    if config.api_key is not None:
        headers["Authorization"] = f"Bearer {config.api_key}"
    if config.api == "legacy":
        headers["Idempotency-Key"] = client_order_id
        document = {"STRATEGY": order.strategy, "INSTRUMENT": order.instrument, "POSITION": order.side.value}
        return OrderRequest(f"{base}/create_order", orjson.dumps(document), headers)
    document = {
        "strategy": order.strategy,
        "instrument": order.instrument,
        "side": order.side.value,
        "client_order_id": client_order_id,
    }
    return OrderRequest(f"{base}/v1/orders", orjson.dumps(document), headers)


def read_answer(api: Api, status_code: int, body: bytes) -> Answer | Failure:
    """Turn a final (non-retryable) HTTP answer into a decision, or a failure saying what came back."""
    document = _json_or_none(body)
    if status_code not in (200, 201):
        return Failure(f"HTTP {status_code}: {_detail(body)}")
    if isinstance(document, dict):
        status, reason = (document.get("RESPONSE"), document.get("REASON"))
        if api == "v1":
            status, reason = (document.get("status"), document.get("reason"))
        if status in ("ACCEPTED", "REJECTED") and (reason is None or isinstance(reason, str)):
            return Answer(accepted=status == "ACCEPTED", reason=reason)
    return Failure(f"HTTP {status_code} without a decision: {_clip(body.decode('utf-8', 'replace'))}")


def retry_delay(attempt: int, retry_after: str | None, jitter: random.Random) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): the server's ``Retry-After`` when it gave
    one, else capped exponential backoff with jitter so that many workers do not retry in step."""
    return retry_policy(0).delay(attempt, retry_after, jitter)


def render_summary(summary: ProducerSummary) -> Table:
    """The end-of-run table: counts, rejections by reason, errors, latency and throughput."""
    from rich.table import Table

    table = Table(title="ordergate produce", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("sent", str(summary.sent))
    table.add_row("accepted", str(summary.accepted))
    table.add_row("rejected", str(summary.rejected))
    for reason, count in sorted(summary.rejected_by_reason.items(), key=lambda item: (-item[1], item[0])):
        table.add_row(f"  {reason}", str(count))
    table.add_row("errors", str(summary.errors))
    for sample in summary.error_samples:
        table.add_row(f"  e.g. {_clip(sample, 80)}", "")
    if summary.unanswered:
        table.add_row("unanswered (interrupted)", str(summary.unanswered))
    table.add_row("latency p50 (ms)", _milliseconds(summary.p50))
    table.add_row("latency p99 (ms)", _milliseconds(summary.p99))
    table.add_row("elapsed (s)", f"{summary.elapsed:.2f}")
    table.add_row("rate (orders/s)", f"{summary.rate:.2f}")
    return table


async def run_producer(
    config: ProducerConfig,
    catalogue: Catalogue | None,
    profiles: Profiles | None,
    *,
    progress: bool = True,
    console: Console | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ProducerSummary:
    """Send ``config.count`` orders and return what happened.

    Cancellation (Ctrl-C under ``asyncio.run`` cancels the main task) stops sending and still returns
    the summary of what was done; orders in flight then show as unanswered. ``transport`` lets tests
    and embedders replace the network.
    """
    import httpx
    from rich.console import Console

    drawer = OrderDrawer.for_mode(config.mode, catalogue, profiles, config.seed)
    console = console or Console(stderr=True)
    summary = ProducerSummary()
    limits = httpx.Limits(max_connections=config.concurrency, max_keepalive_connections=config.concurrency)
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=config.timeout, limits=limits, transport=transport) as client:
        with _progress_bar(console, enabled=progress and console.is_terminal) as bar:
            task_id = bar.add_task("orders", total=config.count, tally="")
            run = _Run(config, drawer, client, summary, lambda: _show(bar, task_id, summary))
            workers = [asyncio.create_task(run.work()) for _ in range(config.concurrency)]
            try:
                await asyncio.gather(*workers)
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()
            finally:
                for worker in workers:
                    worker.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
    summary.elapsed = time.perf_counter() - started
    return summary


def produce(
    config: ProducerConfig,
    catalogue: Catalogue | None,
    profiles: Profiles | None,
    *,
    progress: bool = True,
    console: Console | None = None,
) -> ProducerSummary:
    """Blocking :func:`run_producer` for synchronous callers; Ctrl-C returns the partial summary."""
    return asyncio.run(run_producer(config, catalogue, profiles, progress=progress, console=console))


class _Run:
    """The shared state of one run: the next order number, the schedule and the summary."""

    def __init__(
        self,
        config: ProducerConfig,
        drawer: OrderDrawer,
        client: httpx.AsyncClient,
        summary: ProducerSummary,
        on_outcome: Callable[[], None],
    ) -> None:
        self._config = config
        self._drawer = drawer
        self._client = client
        self._summary = summary
        self._on_outcome = on_outcome
        self._prefix = f"prod-{uuid.uuid4().hex[:8]}-"
        self._jitter = random.Random()
        self._policy = retry_policy(config.retries)
        self._next = 0
        self._started = time.perf_counter()

    async def work(self) -> None:
        previous_start: float | None = None
        while self._next < self._config.count:
            number = self._next
            self._next += 1
            order = self._drawer.draw()  # drawn in number order, so the sequence is the seed's
            await self._wait_turn(number, previous_start)
            previous_start = time.perf_counter()
            self._summary.sent += 1
            outcome = await self._send(order, f"{self._prefix}{number + 1}")
            self._summary.record(outcome, time.perf_counter() - previous_start)
            self._on_outcome()

    async def _wait_turn(self, number: int, previous_start: float | None) -> None:
        if self._config.rate is not None:
            due = self._started + number / self._config.rate
        elif previous_start is not None:
            due = previous_start + self._config.interval
        else:
            return
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _send(self, order: Order, client_order_id: str) -> Answer | Failure:
        import httpx

        request = order_request(self._config, order, client_order_id)
        budget = self._policy.start(jitter=self._jitter)
        outcome = await asend_with_retries(
            lambda: self._client.post(request.url, content=request.body, headers=request.headers),
            budget,
            idempotent=True,  # the client order id makes every order safe to send again
        )
        if isinstance(outcome, httpx.Response) and outcome.status_code not in RETRYABLE_STATUSES:
            return read_answer(self._config.api, outcome.status_code, outcome.content)
        return Failure(f"{_problem(outcome)} (gave up after {budget.attempts} attempts)")


def _progress_bar(console: Console, *, enabled: bool) -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[tally]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled,
    )


def _show(bar: Progress, task_id: TaskID, summary: ProducerSummary) -> None:
    tally = f"accepted {summary.accepted} · rejected {summary.rejected} · errors {summary.errors}"
    bar.update(task_id, advance=1, tally=tally)


def _json_or_none(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _problem(outcome: Outcome) -> str:
    """The last problem of an order that got no decision: ``HTTP 503: ...`` or ``ConnectError: ...``."""
    if isinstance(outcome, Exception):
        return f"{type(outcome).__name__}: {outcome}" if str(outcome) else type(outcome).__name__
    return f"HTTP {outcome.status_code}: {_detail(outcome.content)}"


def _detail(body: bytes) -> str:
    document = _json_or_none(body)
    if isinstance(document, dict):
        for key in ("detail", "DETAIL", "message", "REASON", "reason"):
            if document.get(key) is not None:
                value = document[key]
                return _clip(value if isinstance(value, str) else orjson.dumps(value).decode())
    return _clip(body.decode("utf-8", "replace")) or "(empty body)"


def _clip(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _milliseconds(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"
