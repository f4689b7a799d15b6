"""Qt-free plain data and logic: messages, paths, settings, ingest, compose, rendering."""
