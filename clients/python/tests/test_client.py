"""The client against a real server (conftest.py starts one): every method, an error code, the
API key, x-session-id, and the retry on 429/503 with Retry-After.

The numbers are checked against the server's raw JSON fetched here with urllib alone, and
against relations that hold by definition (advantage = beta * log_ratio, cumulative sums,
argmin of the running sum, best = argmax of the scores). The 429 comes from a small proxy in
front of the real server that answers the first request(s) itself.
"""
from __future__ import annotations

import importlib.metadata
import json
import math
import os
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import progress_advantage
from progress_advantage import Client, ProgressAdvantageError, TrajectoryResult
from progress_advantage import client as client_module

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
PROMPT = "[user]: map :\nP . . . G\n. . . P .\n. # . . P\n# . . . #\n. S P . #\ngoal 0 4\nat 4 1 , up . down # left . right P"
STEP = "\n[assistant]: up"


def episodes(n: int):
    with open(os.path.join(REPO, "bench", "data", "gridworld-eval.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for _, line in zip(range(n), f)]


def raw_post(server, path, body):
    url, key = server
    req = urllib.request.Request(
        url + path, data=json.dumps(body).encode(), method="POST", headers={"content-type": "application/json", "authorization": f"Bearer {key}"}
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def test_installed_without_dependencies():
    # The distribution under test is installed (metadata present) and requires nothing.
    assert progress_advantage.__version__ == importlib.metadata.version("progress-advantage") == "0.1.0"
    assert not importlib.metadata.requires("progress-advantage")


def test_score(client, server):
    result = client.score(PROMPT, STEP, return_tokens=True)
    raw = raw_post(server, "/v1/score", {"prompt": PROMPT, "step": STEP, "return_tokens": True})
    # The server's prefix cache may serve the second of two equal calls from cached KV: float32 rounding apart.
    assert math.isclose(result.advantage, raw["advantage"], abs_tol=1e-6)
    assert math.isclose(result.log_ratio, raw["log_ratio"], abs_tol=1e-5)
    assert math.isclose(result.policy_logprob, raw["policy_logprob"], abs_tol=1e-5)
    assert math.isclose(result.reference_logprob, raw["reference_logprob"], abs_tol=1e-5)
    assert math.isclose(result.advantage, result.beta * result.log_ratio, rel_tol=1e-12)
    assert result.num_tokens == len(result.tokens) == raw["num_tokens"]
    assert math.isclose(sum(t.log_ratio for t in result.tokens), result.log_ratio, abs_tol=1e-6)
    assert result.truncated is False


def test_score_ids_and_options(client, server):
    ids = client.score(prompt_ids=[1, 5, 9, 12], step_ids=[20, 21], beta=2.0, token_aggregate="mean")
    raw = raw_post(server, "/v1/score", {"prompt_ids": [1, 5, 9, 12], "step_ids": [20, 21], "beta": 2.0, "token_aggregate": "mean"})
    assert math.isclose(ids.advantage, raw["advantage"], abs_tol=1e-5) and ids.beta == 2.0 and ids.num_tokens == 2


def test_score_many_keeps_order_across_chunks(client):
    items = [(PROMPT, s) for s in (STEP, "\n[assistant]: down", "\n[assistant]: left", "\n[assistant]: right", "\n[assistant]: up up")]
    batch = client.score_many(items, chunk_size=2)
    singles = [client.score(prompt, step) for prompt, step in items]
    assert len(batch) == 5
    for b, s in zip(batch, singles):
        assert math.isclose(b.advantage, s.advantage, abs_tol=1e-6)
    assert len({round(b.advantage, 9) for b in batch}) > 1
    dicts = client.score_many([{"prompt": PROMPT, "step": STEP}], beta=1.0)
    assert dicts[0].beta == 1.0


def test_score_trajectory(client, server):
    episode = episodes(1)[0]
    result = client.score_trajectory(episode["messages"])
    raw = raw_post(server, "/v1/trajectories/score", {"messages": episode["messages"]})
    assert isinstance(result, TrajectoryResult)
    assistant = [i for i, m in enumerate(episode["messages"]) if m["role"] == "assistant"]
    assert [s.index for s in result.steps] == assistant
    for mine, theirs in zip(result.steps, raw["steps"]):
        assert math.isclose(mine.advantage, theirs["advantage"], abs_tol=1e-6)
    running = 0.0
    for s in result.steps:
        running += s.advantage
        assert math.isclose(s.cumulative, running, abs_tol=1e-12)
    assert math.isclose(result.aggregates["sum"], running, abs_tol=1e-12)
    assert result.model == "default" and result.usage.scored_tokens == sum(s.num_tokens for s in result.steps)
    with_baselines = client.score_trajectory(episode["messages"], baselines=True)
    assert set(with_baselines.steps[0].baselines) == {"mean_logprob", "neg_entropy", "self_certainty", "deepconf"}
    assert set(with_baselines.baselines) >= {"deepconf_tail", "deepconf_bottom10"}


def test_score_trajectories_on_a_thread_pool(client):
    eps = episodes(6)
    together = client.score_trajectories([e["messages"] for e in eps], max_workers=4)
    for e, t in zip(eps, together):
        alone = client.score_trajectory(e["messages"])
        assert [s.index for s in t.steps] == [s.index for s in alone.steps]
        for a, b in zip(t.steps, alone.steps):
            assert math.isclose(a.advantage, b.advantage, abs_tol=1e-6)
    mixed = client.score_trajectories([{"messages": eps[0]["messages"]}, {"messages": []}], return_exceptions=True)
    assert isinstance(mixed[0], TrajectoryResult)
    assert isinstance(mixed[1], ProgressAdvantageError) and mixed[1].code == "empty_trajectory"
    with pytest.raises(ProgressAdvantageError) as err:
        client.score_trajectories([{"messages": []}])
    assert err.value.code == "empty_trajectory"


def test_rank(client):
    candidates = [STEP, "\n[assistant]: down", "\n[assistant]: left"]
    result = client.rank(candidates, PROMPT)
    assert len(result.scores) == 3
    assert result.best == max(range(3), key=lambda i: result.scores[i])
    assert result.order == sorted(range(3), key=lambda i: -result.scores[i])
    alone = client.score(PROMPT, candidates[1])
    assert math.isclose(result.scores[1], alone.advantage, abs_tol=1e-6)


def test_step_by_step_agent_loop(client):
    """The README's agent loop: each new step ranked alone over the conversation so far equals that
    step's advantage in the whole trajectory, and a call repeated reads its context from the cache."""
    episode = next(e for e in episodes(40) if e["n_actions"] > 2)
    messages = episode["messages"]
    whole = client.score_trajectory(messages)
    steps = [k for k, m in enumerate(messages) if m["role"] == "assistant"]
    for n, k in enumerate(steps):
        ranked = client.rank([messages[k]["content"]], messages=messages[:k])
        assert math.isclose(ranked.candidates[0].steps[0]["advantage"], whole.steps[n].advantage, abs_tol=1e-5)
    again = client.rank([messages[steps[-1]]["content"]], messages=messages[: steps[-1]])
    assert again.raw["usage"]["cached_tokens"] > 0


def test_attribute(client):
    episode = next(e for e in episodes(40) if not e["success"] and e["n_actions"] > 2)
    result = client.attribute(episode["messages"])
    cumulative = [s.cumulative for s in result.steps]
    blamed = min(range(len(cumulative)), key=lambda i: cumulative[i])
    assert result.position == blamed and result.step == result.steps[blamed].index
    assert result.method == "min_cumulative" and result.agent == "assistant"
    drop = client.attribute(episode["messages"], method="sharpest_drop")
    assert drop.position == min(range(len(drop.steps)), key=lambda i: drop.steps[i].advantage)


def test_tokenize(client, server):
    body = {"prompt": PROMPT, "step": STEP}
    result = client.tokenize(**body)
    scored = raw_post(server, "/v1/score", {**body, "return_tokens": True})
    # The span tokenize reports holds exactly the ids /v1/score scores.
    (span,) = result.spans
    assert result.ids[span["start"] : span["end"]] == [t["id"] for t in scored["tokens"]]
    assert result.num_tokens == len(result.ids) and result.bos_added in (True, False)
    step_pieces = [p for p in result.pieces if p.scored]
    assert len(step_pieces) == 1 and step_pieces[0].text == STEP
    assert (step_pieces[0].start, step_pieces[0].end) == (span["start"], span["end"])
    many = client.tokenize(items=[body, {"prompt": PROMPT, "step": "\n[assistant]: down"}])
    assert isinstance(many, list) and len(many) == 2 and many[0].ids == result.ids


def test_models_and_ready(client):
    models = client.models()
    ids = [m.id for m in models]
    assert "default" in ids and all(m.vocab_size > 0 and m.max_length > 0 for m in models)
    assert ids == [m["id"] for m in client.request("GET", "/v1/models")["data"]]
    assert client.ready()
    client.wait_ready(timeout=5)


def test_error_codes(client, server):
    with pytest.raises(ProgressAdvantageError) as err:
        client.score(PROMPT, "")
    assert err.value.code == "empty_step" and err.value.status == 422 and err.value.request_id
    with pytest.raises(ProgressAdvantageError) as err:
        client.score_many([(PROMPT, STEP), (PROMPT, "")])
    assert err.value.code == "empty_step" and err.value.item == 1
    with pytest.raises(ProgressAdvantageError) as err:
        client.score(PROMPT, STEP, model="no-such-scorer")
    assert err.value.code == "model_not_found" and err.value.status == 404
    with pytest.raises(ProgressAdvantageError) as err:
        Client(server[0], api_key=None).score(PROMPT, STEP)
    assert err.value.code == "unauthorized" and err.value.status == 401
    with pytest.raises(ProgressAdvantageError) as err:
        Client("http://127.0.0.1:9", max_retries=0).score(PROMPT, STEP)
    assert err.value.code == "connection_error" and err.value.status is None


class Proxy:
    """Forwards to the real server; answers the first len(fail) requests itself with those statuses."""

    def __init__(self, upstream: str, fail: list, retry_after: str = "1"):
        self.seen = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _handle(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0)) or None
                proxy.seen.append((self.command, self.path, dict(self.headers.items())))
                if fail:
                    status = fail.pop(0)
                    payload = json.dumps({"error": {"code": "overloaded" if status == 429 else "not_ready", "message": "try later"}}).encode()
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("retry-after", retry_after)
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization", "x-session-id")}
                req = urllib.request.Request(upstream + self.path, data=body, method=self.command, headers=headers)
                try:
                    with urllib.request.urlopen(req, timeout=60) as r:
                        status, data = r.status, r.read()
                except urllib.error.HTTPError as e:
                    status, data = e.code, e.read()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _handle
            do_POST = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def sleeps(monkeypatch):
    """The client's waits, recorded instead of slept."""
    calls = []
    monkeypatch.setattr(client_module.time, "sleep", calls.append)
    return calls


def test_retries_once_on_429_honouring_retry_after(server, sleeps):
    proxy = Proxy(server[0], [429], retry_after="1")
    try:
        result = Client(proxy.url, api_key=server[1]).score(PROMPT, STEP)
        direct = raw_post(server, "/v1/score", {"prompt": PROMPT, "step": STEP})
        assert math.isclose(result.advantage, direct["advantage"], abs_tol=1e-6)
        assert [p for _, p, _ in proxy.seen] == ["/v1/score", "/v1/score"]
        assert sleeps == [1.0]
    finally:
        proxy.close()


def test_503_then_gives_up_after_max_retries(server, sleeps):
    proxy = Proxy(server[0], [503, 503, 503], retry_after="2")
    try:
        with pytest.raises(ProgressAdvantageError) as err:
            Client(proxy.url, api_key=server[1], max_retries=2).score(PROMPT, STEP)
        assert err.value.status == 503 and err.value.code == "not_ready" and err.value.retry_after == 2.0
        assert len(proxy.seen) == 3 and sleeps == [2.0, 2.0]
    finally:
        proxy.close()


def test_backoff_without_retry_after_doubles(server, sleeps):
    proxy = Proxy(server[0], [429, 429], retry_after="")
    try:
        Client(proxy.url, api_key=server[1], backoff=0.5).score(PROMPT, STEP)
        assert len(sleeps) == 2
        assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0
    finally:
        proxy.close()


def test_session_id_header(server):
    proxy = Proxy(server[0], [])
    try:
        client = Client(proxy.url, api_key=server[1], session_id="run-1")
        client.score(PROMPT, STEP)
        client.with_session("run-2").score(PROMPT, STEP)
        client.score(PROMPT, STEP)
        assert [h.get("x-session-id") or h.get("X-Session-Id") for _, _, h in proxy.seen] == ["run-1", "run-2", "run-1"]
        assert all((h.get("Authorization") or h.get("authorization")) == f"Bearer {server[1]}" for _, _, h in proxy.seen)
    finally:
        proxy.close()
