"""The evidence report an auditor attaches: figures from its export, the page, the sealed pack."""
