"""Typed results of the scoring routes. Each keeps the server's whole answer in ``raw``.

Fields the server adds later are kept in ``raw`` and never break parsing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


@dataclass
class TokenScore:
    id: int
    text: str
    policy_logprob: float
    reference_logprob: float
    log_ratio: float

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "TokenScore":
        return cls(d["id"], d["text"], d["policy_logprob"], d["reference_logprob"], d["log_ratio"])


def _tokens(d: Dict[str, Any]) -> Optional[List[TokenScore]]:
    return [TokenScore.from_dict(t) for t in d["tokens"]] if "tokens" in d else None


@dataclass
class Usage:
    prompt_tokens: int
    scored_tokens: int

    @classmethod
    def from_dict(cls, d: Optional[Dict[str, Any]]) -> Optional["Usage"]:
        return cls(d["prompt_tokens"], d["scored_tokens"]) if d else None


@dataclass
class ScoreResult:
    """One step: ``advantage = beta * log_ratio``."""

    advantage: float
    log_ratio: float
    beta: float
    policy_logprob: float
    reference_logprob: float
    num_tokens: int
    truncated: bool
    tokens: Optional[List[TokenScore]] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ScoreResult":
        return cls(
            advantage=d["advantage"],
            log_ratio=d["log_ratio"],
            beta=d["beta"],
            policy_logprob=d["policy_logprob"],
            reference_logprob=d["reference_logprob"],
            num_tokens=d["num_tokens"],
            truncated=d["truncated"],
            tokens=_tokens(d),
            raw=d,
        )


@dataclass
class StepResult:
    """One step of a trajectory; ``index`` is its message (or segment) index."""

    index: int
    advantage: float
    log_ratio: float
    num_tokens: int
    truncated: bool
    cumulative: float
    role: Optional[str] = None
    name: Optional[str] = None
    baselines: Optional[Dict[str, float]] = None
    tokens: Optional[List[TokenScore]] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "StepResult":
        return cls(
            index=d["index"],
            advantage=d["advantage"],
            log_ratio=d["log_ratio"],
            num_tokens=d["num_tokens"],
            truncated=d["truncated"],
            cumulative=d["cumulative"],
            role=d.get("role"),
            name=d.get("name"),
            baselines=d.get("baselines"),
            tokens=_tokens(d),
            raw=d,
        )


@dataclass
class TrajectoryResult:
    beta: float
    num_tokens: int
    truncated_tokens: int
    steps: List[StepResult]
    #: mean, sum, min, max, last, bottom10 of the step advantages.
    aggregates: Dict[str, float]
    baselines: Optional[Dict[str, float]] = None
    labels: Optional[Dict[str, Any]] = None
    model: Optional[str] = None
    usage: Optional[Usage] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, d: Dict[str, Any], model: Optional[str] = None, usage: Optional[Dict[str, Any]] = None) -> "TrajectoryResult":
        return cls(
            beta=d["beta"],
            num_tokens=d["num_tokens"],
            truncated_tokens=d["truncated_tokens"],
            steps=[StepResult.from_dict(s) for s in d["steps"]],
            aggregates=d["aggregates"],
            baselines=d.get("baselines"),
            labels=d.get("labels"),
            model=d.get("model", model),
            usage=Usage.from_dict(d.get("usage", usage)),
            raw=d,
        )


@dataclass
class CandidateResult:
    advantage: float
    steps: List[Dict[str, Any]]


@dataclass
class RankResult:
    beta: float
    #: Each candidate's score (step_aggregate of its steps' advantages), in input order.
    scores: List[float]
    #: Candidate indices, best first.
    order: List[int]
    best: int
    candidates: List[CandidateResult]
    model: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "RankResult":
        return cls(
            beta=d["beta"],
            scores=d["scores"],
            order=d["order"],
            best=d["best"],
            candidates=[CandidateResult(c["advantage"], c["steps"]) for c in d["candidates"]],
            model=d.get("model"),
            raw=d,
        )


@dataclass
class Attribution:
    """The blamed step: ``step`` is its message index, ``position`` its rank among the steps."""

    step: Optional[int]
    position: Optional[int]
    agent: Optional[str]
    method: str
    beta: float
    steps: List[StepResult]
    labels: Optional[Dict[str, Any]] = None
    model: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Attribution":
        return cls(
            step=d["step"],
            position=d["position"],
            agent=d["agent"],
            method=d["method"],
            beta=d["beta"],
            steps=[StepResult.from_dict(s) for s in d["steps"]],
            labels=d.get("labels"),
            model=d.get("model"),
            raw=d,
        )


@dataclass
class TokenizedPiece:
    """One piece (message, prompt, step) of a tokenized body: its text and ``[start, end)`` token span."""

    text: Optional[str]
    start: int
    end: int
    scored: bool
    step: Optional[int] = None
    role: Optional[str] = None
    agent: Optional[str] = None
    truncated: bool = False

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "TokenizedPiece":
        return cls(d.get("text"), d["start"], d["end"], d["scored"], d.get("step"), d.get("role"), d.get("agent"), d.get("truncated", False))


@dataclass
class TokenizeResult:
    """What the scoring routes would score for a body (POST /v1/tokenize)."""

    ids: List[int]
    bos_added: bool
    pieces: List[TokenizedPiece]
    #: The scored spans (index, start, end): token k of a span is scored by the log-prob at k - 1.
    spans: List[Dict[str, Any]]
    tokenization: Optional[str] = None
    num_tokens: Optional[int] = None
    truncated_tokens: int = 0
    model: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, d: Dict[str, Any], model: Optional[str] = None) -> "TokenizeResult":
        return cls(
            ids=d["ids"],
            bos_added=d["bos_added"],
            pieces=[TokenizedPiece.from_dict(p) for p in d.get("pieces", [])],
            spans=d.get("spans", []),
            tokenization=d.get("tokenization"),
            num_tokens=d.get("num_tokens"),
            truncated_tokens=d.get("truncated_tokens", 0),
            model=d.get("model", model),
            raw=d,
        )


@dataclass
class ModelInfo:
    id: str
    beta: float
    max_length: int
    vocab_size: int
    device: str
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ModelInfo":
        return cls(d["id"], d["beta"], d["max_length"], d["vocab_size"], d["device"], raw=d)
