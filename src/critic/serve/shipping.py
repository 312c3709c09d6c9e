"""A bundle handed to Ray workers on any node (Ray Serve replicas, scoring actors): a bundle
on a storage URI is fetched by each worker; one on the driver's disk travels through Ray's
object store, so workers on nodes that cannot read the driver's files load it too."""

from __future__ import annotations

from typing import Any

from critic.bundle import Bundle, bundle_files, unpack_bundle
from critic.storage import is_uri

from .runtime import Runtime


class ShippedBundle:
    """Made on the driver (Ray connected), passed to workers as an argument, loaded there.
    The object reference sits inside this object, so Ray hands it over as a reference (it
    resolves only top-level arguments) and each worker gets the bytes when it loads."""

    def __init__(self, bundle: Bundle) -> None:
        import ray

        self.source = bundle.source
        self._files = None if is_uri(bundle.source) else ray.put(bundle_files(bundle.path))

    def load(self, **options: Any) -> Runtime:
        """On a worker: the bundle's Runtime (``options``: ``Runtime``'s keyword arguments)."""
        import ray

        model = self.source if self._files is None else unpack_bundle(ray.get(self._files))
        return Runtime.load(model, **options)
