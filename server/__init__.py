"""The MCP server: tools over the session store, stdio transport."""
