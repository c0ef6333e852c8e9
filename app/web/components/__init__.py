"""Small reusable pieces of the app: keyboard action bars and safe text rendering."""

from app.web.components.actions import Action, action_bar
from app.web.components.text import md_escape, names_line, plotly_text

__all__ = ["Action", "action_bar", "md_escape", "names_line", "plotly_text"]
