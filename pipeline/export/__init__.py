"""The export file an auditor verifies offline: its format (pure) and reading it from disk."""
