"""HTTP client of progress-advantage-server, on the standard library alone (urllib).

Every scoring method posts one JSON body and returns a typed result. A 429 (overloaded) or 503
(loading, restarting, shutting down) is retried with exponential backoff, waiting what the
server's Retry-After says when it says it; a refused or reset connection is retried the same
way (every route is a pure function of its body, so a retry is safe). Any other error raises
``ProgressAdvantageError`` with the server's ``error.code``.
"""
from __future__ import annotations

import copy
import email.utils
import json
import random
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from .errors import ProgressAdvantageError
from .types import Attribution, ModelInfo, RankResult, ScoreResult, TokenizeResult, TrajectoryResult

Message = Dict[str, Any]
#: A trajectory for ``score_trajectories``: a list of messages, or a body of /v1/trajectories/score.
Trajectory = Union[Sequence[Message], Mapping[str, Any]]
#: An item for ``score_many``: ``(prompt, step)`` or a dict of /v1/score's item fields.
ScoreItem = Union[Tuple[str, str], Mapping[str, Any]]

RETRY_STATUSES = frozenset({429, 503})


def _parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Retry-After as seconds: a number of seconds, or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _compact(body: Mapping[str, Any]) -> Dict[str, Any]:
    """The body without the fields left at None (the server's defaults apply to them)."""
    return {k: v for k, v in body.items() if v is not None}


class Client:
    """A progress-advantage-server at ``base_url``.

    ``api_key``: sent as ``Authorization: Bearer <key>`` (servers started with --api-key).
    ``timeout``: seconds for one HTTP attempt. ``max_retries``: retries of a 429/503 or a refused
    connection; ``backoff`` doubles per retry up to ``max_backoff`` seconds when the server gives
    no Retry-After. ``session_id``: sent as ``x-session-id`` on every request (an agent run's id:
    routers send a session's calls to the replica holding its prefix cache). ``model``: the scorer
    used when a call names none.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080",
        api_key: Optional[str] = None,
        timeout: float = 60.0,
        *,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        session_id: Optional[str] = None,
        model: Optional[str] = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.session_id = session_id
        self.model = model

    def with_session(self, session_id: Optional[str]) -> "Client":
        """A copy of this client that sends ``x-session-id: session_id``."""
        other = copy.copy(self)
        other.session_id = session_id
        return other

    # ------------------------------------------------------------------------------------------
    # transport

    def _headers(self, has_body: bool) -> Dict[str, str]:
        headers = {"accept": "application/json", "user-agent": "progress-advantage-python/0.1.0"}
        if has_body:
            headers["content-type"] = "application/json"
        if self.api_key is not None:
            headers["authorization"] = f"Bearer {self.api_key}"
        if self.session_id is not None:
            headers["x-session-id"] = self.session_id
        return headers

    def _delay(self, attempt: int, retry_after: Optional[float]) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        # Exponential, with jitter so that many clients turned away at once do not return at once.
        return min(self.backoff * (2**attempt), self.max_backoff) * random.uniform(0.5, 1.0)

    @staticmethod
    def _error_from(err: urllib.error.HTTPError) -> ProgressAdvantageError:
        raw = err.read()
        body: Any = None
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            pass
        detail = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), dict) else {}
        return ProgressAdvantageError(
            str(detail.get("code", f"http_{err.code}")),
            str(detail.get("message", raw[:200].decode("utf-8", "replace") or err.reason)),
            err.code,
            item=detail.get("item") if isinstance(detail.get("item"), int) else None,
            retry_after=_parse_retry_after(err.headers.get("retry-after") if err.headers else None),
            request_id=err.headers.get("x-request-id") if err.headers else None,
            body=body,
        )

    def request(self, method: str, path: str, body: Optional[Mapping[str, Any]] = None) -> Any:
        """One call to the server (retried as the class says); the decoded JSON answer."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        url = self.base_url + path
        attempt = 0
        while True:
            req = urllib.request.Request(url, data=data, method=method, headers=self._headers(data is not None))
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    raw = resp.read()
                try:
                    return json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, ValueError) as exc:
                    raise ProgressAdvantageError("invalid_response", f"{method} {path}: the answer is not JSON ({exc})") from None
            except urllib.error.HTTPError as exc:
                error = self._error_from(exc)
                if exc.code in RETRY_STATUSES and attempt < self.max_retries:
                    time.sleep(self._delay(attempt, error.retry_after))
                    attempt += 1
                    continue
                raise error from None
            except (urllib.error.URLError, ConnectionError, socket.timeout) as exc:
                reason = getattr(exc, "reason", exc)
                if isinstance(reason, (socket.timeout, TimeoutError)):
                    raise ProgressAdvantageError("timeout", f"{method} {path}: no answer within {self.timeout} s") from None
                if attempt < self.max_retries:
                    time.sleep(self._delay(attempt, None))
                    attempt += 1
                    continue
                raise ProgressAdvantageError("connection_error", f"{method} {path}: {reason}") from None

    def _post(self, path: str, body: Mapping[str, Any]) -> Dict[str, Any]:
        payload = _compact(body)
        if "model" not in payload and self.model is not None:
            payload["model"] = self.model
        return self.request("POST", path, payload)

    # ------------------------------------------------------------------------------------------
    # scoring

    def score(
        self,
        prompt: Optional[str] = None,
        step: Optional[str] = None,
        *,
        prompt_ids: Optional[Sequence[int]] = None,
        step_ids: Optional[Sequence[int]] = None,
        model: Optional[str] = None,
        **options: Any,
    ) -> ScoreResult:
        """Progress advantage of one step after its prompt (text, or exact token ids).

        ``options``: any field of POST /v1/score (beta, token_aggregate, return_tokens, truncate, ...).
        """
        body = {"prompt": prompt, "step": step, "prompt_ids": prompt_ids, "step_ids": step_ids, "model": model, **options}
        return ScoreResult.from_dict(self._post("/v1/score", body))

    def score_many(self, items: Iterable[ScoreItem], *, model: Optional[str] = None, chunk_size: int = 256, **options: Any) -> List[ScoreResult]:
        """Many steps, in input order: ``(prompt, step)`` pairs or dicts of /v1/score item fields.

        Sent ``chunk_size`` items a request (the server's --max-items is 256 by default).
        """
        bodies = [{"prompt": it[0], "step": it[1]} if isinstance(it, tuple) else dict(it) for it in items]
        out: List[ScoreResult] = []
        for i in range(0, len(bodies), chunk_size):
            answer = self._post("/v1/score", {"items": bodies[i : i + chunk_size], "model": model, **options})
            out.extend(ScoreResult.from_dict(r) for r in answer["results"])
        return out

    def score_trajectory(
        self,
        messages: Optional[Sequence[Message]] = None,
        *,
        segments: Optional[Sequence[Mapping[str, Any]]] = None,
        format: Optional[str] = None,
        data: Any = None,
        model: Optional[str] = None,
        **options: Any,
    ) -> TrajectoryResult:
        """Per-step advantages of one trajectory: OpenAI-form ``messages``, ``segments``, or a
        dataset record (``format`` who_and_when / tau_bench / agentprocessbench / processbench, ``data``).

        ``options``: action_roles, render, baselines, return_tokens, beta, token_aggregate, ...
        """
        body = {"messages": messages, "segments": segments, "format": format, "data": data, "model": model, **options}
        answer = self._post("/v1/trajectories/score", body)
        return TrajectoryResult.from_dict(answer)

    def score_trajectories(
        self,
        trajectories: Iterable[Trajectory],
        *,
        max_workers: int = 8,
        return_exceptions: bool = False,
        **options: Any,
    ) -> List[Union[TrajectoryResult, ProgressAdvantageError]]:
        """Scores many trajectories concurrently on a thread pool; results in input order.

        Each is a list of messages or a body of /v1/trajectories/score; ``options`` apply to all.
        The server batches concurrent requests into shared forward passes. With
        ``return_exceptions`` a failed trajectory gives its ProgressAdvantageError in its place;
        otherwise the first failure (in input order) is raised once all have finished.
        """

        def one(t: Trajectory) -> Union[TrajectoryResult, ProgressAdvantageError]:
            body = dict(t) if isinstance(t, Mapping) else {"messages": list(t)}
            try:
                return self.score_trajectory(**{**options, **body})
            except ProgressAdvantageError as exc:
                if return_exceptions:
                    return exc
                raise

        with ThreadPoolExecutor(max_workers=max_workers) as pool:
            futures = [pool.submit(one, t) for t in trajectories]
            return [f.result() for f in futures]

    def rank(
        self,
        candidates: Sequence[Union[str, Sequence[str], Sequence[Message]]],
        prompt: Optional[str] = None,
        *,
        messages: Optional[Sequence[Message]] = None,
        step_aggregate: Optional[str] = None,
        model: Optional[str] = None,
        **options: Any,
    ) -> RankResult:
        """Best-of-N: candidates (a step, a list of steps, or a list of messages) continuing ``prompt`` or ``messages``."""
        body = {"prompt": prompt, "messages": messages, "candidates": list(candidates), "step_aggregate": step_aggregate, "model": model, **options}
        return RankResult.from_dict(self._post("/v1/rank", body))

    def attribute(
        self,
        messages: Optional[Sequence[Message]] = None,
        *,
        method: Optional[str] = None,
        segments: Optional[Sequence[Mapping[str, Any]]] = None,
        format: Optional[str] = None,
        data: Any = None,
        model: Optional[str] = None,
        **options: Any,
    ) -> Attribution:
        """The step (and agent) where a failed trajectory went wrong; ``method`` min_cumulative
        (default), sharpest_drop or sharpest_abs_drop."""
        body = {"messages": messages, "segments": segments, "format": format, "data": data, "method": method, "model": model, **options}
        return Attribution.from_dict(self._post("/v1/attribute", body))

    def tokenize(self, **body: Any) -> Union[TokenizeResult, List[TokenizeResult]]:
        """What scoring would score for ``body`` (any body of /v1/score, /v1/trajectories/score,
        /v1/rank or /v1/attribute): ids, whether BOS was added, per piece its text and span, and
        truncation. A body with ``items`` (or a rank's ``candidates``) gives one result each, in a list."""
        answer = self._post("/v1/tokenize", body)
        if "results" in answer:
            return [TokenizeResult.from_dict(r, answer.get("model")) for r in answer["results"]]
        return TokenizeResult.from_dict(answer)

    # ------------------------------------------------------------------------------------------
    # service

    def models(self) -> List[ModelInfo]:
        return [ModelInfo.from_dict(m) for m in self.request("GET", "/v1/models")["data"]]

    def ready(self) -> bool:
        """True when /ready answers 200 (every scorer loaded); no retries."""
        req = urllib.request.Request(self.base_url + "/ready", headers=self._headers(False))
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.status == 200
        except (urllib.error.URLError, ConnectionError, socket.timeout):
            return False

    def wait_ready(self, timeout: float = 120.0, interval: float = 0.25) -> None:
        """Blocks until /ready answers 200; ProgressAdvantageError ``not_ready`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                raise ProgressAdvantageError("not_ready", f"{self.base_url} was not ready within {timeout} s")
            time.sleep(interval)
