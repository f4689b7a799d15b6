"""The composition root: the application, the main window, its status bar and settings."""
