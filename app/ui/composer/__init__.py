"""The composer: where the user types a question and attaches files, shared by every feature."""
