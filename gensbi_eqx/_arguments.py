"""Argument checks shared by the models, the embedding networks and the benchmark runner."""


def check_positive_ints(**values) -> None:
    """Raise a ValueError naming the first argument that is not a positive integer."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
