"""`fp.view()`: the most recent records of every table, newest first."""

from __future__ import annotations


def view(n: int = 7) -> dict:
    """{table name: DataFrame of its n newest records}. In Jupyter, also displays them."""
    from .records import MODELS

    frames = {name: model.df(limit=n) for name, model in MODELS.items()}
    try:
        from IPython import get_ipython

        if get_ipython() is not None and type(get_ipython()).__name__ == "ZMQInteractiveShell":
            from IPython.display import Markdown, display

            for name, df in frames.items():
                display(Markdown(f"**{name}**"))
                display(df)
    except ImportError:
        pass
    return frames
