"""The transcript: the chat's messages as bubbles, with links to boxes and cited sources."""
