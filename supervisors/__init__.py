"""The node's application trees, written only against ``import otpy``.

Run one with ``otpy run supervisors.demo:root --console``.
"""

from __future__ import annotations
