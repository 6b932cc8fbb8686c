"""The per-worker cache of built range movies stays within its frame budget."""

from dataclasses import dataclass

from webpanel.api.video import MovieCache


@dataclass
class Movie:
    frames: int


def test_cache_keeps_the_budget_but_always_the_newest_movie():
    cache = MovieCache(items=3, max_frames=100, ttl_s=60)
    cache.put("a", Movie(40))
    cache.put("b", Movie(40))
    assert cache.get("a") and cache.get("b")
    cache.put("c", Movie(40))                       # 120 frames: the oldest goes
    assert cache.get("a") is None and cache.get("b") and cache.get("c")
    cache.put("day", Movie(1000))                   # over budget alone, yet kept (being played)
    assert cache.get("day") and cache.get("b") is None and cache.get("c") is None
    cache.drop_oversized()                          # another build starts: let it go
    assert cache.get("day") is None


def test_cache_entries_expire():
    cache = MovieCache(items=3, max_frames=100, ttl_s=0)
    cache.put("a", Movie(1))
    assert cache.get("a") is None
