"""The prompt cache: two LRU tiers keyed by (version id, artifact sha256).

The host tier keeps parsed artifacts (CPU tensors, a few KB to MB each); the device tier keeps prompts
ready to run, on the model's device, with their key/value states when the KV cache is on. A key names
immutable bytes, so there is nothing to invalidate: a new version is a new key, servable at once.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Generic, TypeVar

from common.errors import ArtifactError
from workers.engine.artifacts.artifact import PromptArtifact, artifact_from_bytes
from workers.engine.base_model import FrozenModel
from workers.engine.inference.predict import LoadedPrompt
from workers.serving import metrics
from workers.serving.kv import with_cached_states
from workers.storage import ObjectStore

K = TypeVar("K")
V = TypeVar("V")

CacheKey = tuple[str, str]  # (version id, artifact sha256)


class LRU(Generic[K, V]):
    def __init__(self, capacity: int):
        self.capacity = capacity
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def __contains__(self, key: K) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)


class PromptCache:
    def __init__(
        self, fm: FrozenModel, store: ObjectStore, device_size: int, host_size: int, kv_cache: bool = True
    ):
        self.fm = fm
        self.store = store
        self.kv_cache = kv_cache and not fm.is_encoder_decoder
        self.device: LRU[CacheKey, LoadedPrompt] = LRU(device_size)
        self.host: LRU[CacheKey, PromptArtifact] = LRU(host_size)
        self._lock = threading.Lock()  # the embedded pool may share one cache between threads

    def get(self, version_id: str, artifact_key: str, sha256: str) -> LoadedPrompt:
        """The prompt ready to run, loaded from storage on first use; ArtifactError or ObjectMissing."""
        key = (version_id, sha256)
        with self._lock:
            ready = self.device.get(key)
            if ready is not None:
                metrics.CACHE_HITS.labels("device").inc()
                return ready
            artifact = self.host.get(key)
            if artifact is not None:
                metrics.CACHE_HITS.labels("host").inc()
            else:
                metrics.CACHE_MISSES.inc()
                artifact = self._fetch(artifact_key, sha256)
                self.host.put(key, artifact)
            ready = self._prepare(artifact)
            self.device.put(key, ready)
            return ready

    def _fetch(self, artifact_key: str, sha256: str) -> PromptArtifact:
        data = self.store.get_bytes(artifact_key)
        if sha256 and hashlib.sha256(data).hexdigest() != sha256:
            raise ArtifactError(f"The stored artifact {artifact_key} does not match its recorded hash.")
        artifact = artifact_from_bytes(data, artifact_key)
        artifact.check_fits(self.fm)  # refuse a prompt made for another model before keeping it
        return artifact

    def _prepare(self, artifact: PromptArtifact) -> LoadedPrompt:
        prompt = LoadedPrompt.from_artifact(self.fm, artifact)
        return with_cached_states(self.fm, prompt) if self.kv_cache else prompt
