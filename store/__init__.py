"""Session storage: the store protocol, its models and errors, and the backends."""

from .errors import (
    InvalidInput,
    MigrationFailed,
    SchemaTooNew,
    SessionNotFound,
    StoreBusy,
    StoreError,
    StoreUnavailable,
)
from .models import (
    AgentConfig,
    ChatHistoryPage,
    ChatMessage,
    NewMessage,
    NewRun,
    NewToolCall,
    Run,
    RunMetrics,
    SearchHit,
    Session,
    SessionPage,
    SessionSummary,
    ToolCall,
    ToolCallPage,
)
from .protocol import SessionStore
from .sqlite import SqliteStore

__all__ = [
    "AgentConfig",
    "ChatHistoryPage",
    "ChatMessage",
    "InvalidInput",
    "MigrationFailed",
    "NewMessage",
    "NewRun",
    "NewToolCall",
    "Run",
    "RunMetrics",
    "SchemaTooNew",
    "SearchHit",
    "Session",
    "SessionNotFound",
    "SessionPage",
    "SessionStore",
    "SessionSummary",
    "SqliteStore",
    "StoreBusy",
    "StoreError",
    "StoreUnavailable",
    "ToolCall",
    "ToolCallPage",
]
