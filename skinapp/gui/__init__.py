"""The desktop dashboard (PySide6). Qt-free state lives in the modules without a `qt_` prefix;
widgets live in `qt_*.py` and take their model in the constructor (napari's habit)."""
