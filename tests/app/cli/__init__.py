"""CLI tests (typer CliRunner)."""
