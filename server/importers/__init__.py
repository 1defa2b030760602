"""Importers: conversations kept elsewhere (an Agno SqliteDb file, Claude Code transcripts) read as
SessionRecords, one at a time, for `import --from`."""


class SourceError(Exception):
    """The file to import from is not what `--from` says (or cannot be read): one sentence for the user."""
