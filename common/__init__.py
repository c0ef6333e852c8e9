"""Small dependency-free helpers shared by every layer (``core``, ``db``, ``app``).

This is the bottom layer: it uses the standard library only and imports nothing of ours (no
``core``, ``db`` or ``app``; no numpy, no torch), so anything may import it. What belongs here:
one copy of the tiny helpers each layer would otherwise paste for itself.

- :mod:`common.choice` — :class:`~common.choice.Choice`, the base of named options (``from_str``).
- :mod:`common.atomic` — atomic file writes (old file or whole new file, never half of one).
- :mod:`common.progress` — the ``(fraction, message)`` progress callback type.
- :mod:`common.images` — the image file suffixes the tool reads.
"""
