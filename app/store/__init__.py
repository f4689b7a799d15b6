"""SQLite session store, content-addressed attachment blobs, export and import (no Qt)."""
