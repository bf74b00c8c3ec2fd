"""The add-on's one error type (bpy-free).

Everything a user can fix (no audio chosen, a mesh without shape keys, the server down, a wrong
token, Blender's online access off) raises `AddonError` with a sentence that says what to do.
Operators turn it into `self.report({'ERROR'}, str(error))`; a job on a worker thread hands it to
the main thread, which shows it in the panel and reports it.
"""

from __future__ import annotations


class AddonError(Exception):
    """A problem the user can fix; the message says how."""
