"""``rtv serve``: the HTTP service (DeepStack-compatible API, native API, console)."""
