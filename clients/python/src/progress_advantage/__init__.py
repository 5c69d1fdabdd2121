"""Python client of progress-advantage-server (standard library only).

    from progress_advantage import Client
    client = Client("http://127.0.0.1:8080")
    client.score(prompt="[user]: at 0 0", step="\\n[assistant]: up").advantage
"""
from .client import Client
from .errors import ProgressAdvantageError
from .types import (
    Attribution,
    CandidateResult,
    ModelInfo,
    RankResult,
    ScoreResult,
    StepResult,
    TokenizedPiece,
    TokenizeResult,
    TokenScore,
    TrajectoryResult,
    Usage,
)

__version__ = "0.1.0"

__all__ = [
    "Attribution",
    "CandidateResult",
    "Client",
    "ModelInfo",
    "ProgressAdvantageError",
    "RankResult",
    "ScoreResult",
    "StepResult",
    "TokenizedPiece",
    "TokenizeResult",
    "TokenScore",
    "TrajectoryResult",
    "Usage",
    "__version__",
]
