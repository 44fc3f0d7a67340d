"""Example tasks modules for ``redpool run`` (see the README)."""
