"""The MCP server: every registered action as a Model Context Protocol tool, each call a
schema-checked, recorded step (``rlam mcp``; see :mod:`.server`)."""
