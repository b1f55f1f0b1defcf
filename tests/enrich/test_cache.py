"""The two-generation LRU cache."""

from __future__ import annotations

from portolan.enrich.cache import ASK_EVERY, LRU, SAMPLE, WINDOW


def test_lru_keeps_what_is_used_and_stays_bounded() -> None:
    cache: LRU[str] = LRU(50)
    answer = "an answer"
    for i in range(1000):
        cache.put(f"10.0.{i // 256}.{i % 256}", answer)
        assert cache.get("hot") is not None or i == 0
        if i == 0:
            cache.put("hot", answer)
        assert len(cache) <= 100
    assert all(cache.get(f"10.0.3.{i}") is not None for i in range(182, 232))  # last 50
    assert cache.get("hot") is answer  # used all along: never forgotten
    assert cache.get("10.0.0.0") is None  # not used since: forgotten
    cache.clear()
    assert len(cache) == 0


def test_an_old_hit_moves_to_the_young_generation() -> None:
    cache: LRU[int] = LRU(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("c", 3)  # the young generation was full: a and b are old now
    assert cache.get_young("a") is None
    assert cache.get("a") == 1  # found in the old one, and moved
    assert cache.get_young("a") == 1
    assert cache.take_old("b") == 2
    assert cache.take_old("b") is None


def new_keys(cache: LRU[int], start: int, count: int) -> None:
    batch = {f"new-{start + i}": i for i in range(count)}
    found, missing = cache.take(list(batch))
    assert not found and len(missing) == count
    cache.admit(list(batch), list(batch.values()))


def test_a_stream_of_new_keys_is_sampled_until_keys_come_back() -> None:
    warming: LRU[int] = LRU(10 * WINDOW)
    new_keys(warming, 0, WINDOW // 2)
    back = [f"new-{i}" for i in range(WINDOW // 40)]
    for i in range(1, 6):  # one key in twenty comes back: not sampled while not full
        found, missing = warming.take(back)
        assert not missing
        warming.put_many(found)
        new_keys(warming, i * WINDOW, WINDOW // 2 - len(back))
    assert not warming.sampling and not warming.idle
    assert len(warming) == WINDOW // 2 + 5 * (WINDOW // 2 - len(back))
    cache: LRU[int] = LRU(WINDOW)
    for i in range(3):  # full, and nothing answered from it: new keys are sampled
        new_keys(cache, i * WINDOW, WINDOW)
    assert cache.sampling
    kept = len(cache)
    new_keys(cache, 3 * WINDOW, WINDOW)
    assert len(cache) - kept == WINDOW // SAMPLE
    # the same keys again and again: answered from the cache, so all are kept again
    hot = [f"hot-{i}" for i in range(100)]
    for _ in range(3 * WINDOW // len(hot)):
        found, missing = cache.take(hot)
        cache.put_many(found)
        cache.admit(missing, [1] * len(missing))
    assert not cache.sampling
    found, missing = cache.take(hot)
    assert missing == [] and len(found) == len(hot)


def test_a_cache_that_answers_nothing_is_asked_for_one_batch_in_a_few() -> None:
    cache: LRU[int] = LRU(WINDOW)
    assert [cache.ask() for _ in range(ASK_EVERY)] == [True] * ASK_EVERY
    for i in range(3):
        new_keys(cache, i * WINDOW, WINDOW)
    assert cache.sampling and cache.idle
    assert [cache.ask() for _ in range(3 * ASK_EVERY)].count(True) == 3
    # keys that come back in the batches that ask it: asked for every batch again
    hot = [f"hot-{i}" for i in range(100)]
    cache.admit(hot, [1] * len(hot))
    while cache.idle:
        if cache.ask():
            found, missing = cache.take(hot)
            cache.put_many(found)
            cache.admit(missing, [1] * len(missing))
    assert all(cache.ask() for _ in range(ASK_EVERY))


def test_a_cache_that_answers_a_few_is_still_asked() -> None:
    cache: LRU[int] = LRU(WINDOW)
    for i in range(3):
        new_keys(cache, i * WINDOW, WINDOW)
    hot = [f"hot-{i}" for i in range(50)]
    cache.admit(hot, [1] * len(hot))
    for i in range(30):  # 50 of every 1,050 keys answered: sampled, not idle
        found, missing = cache.take(hot)
        cache.put_many(found)
        cache.admit(missing, [1] * len(missing))
        new_keys(cache, (3 + i) * WINDOW, 1000)
    assert cache.sampling and not cache.idle


def test_new_keys_make_a_cache_idle_before_it_is_full() -> None:
    cache: LRU[int] = LRU(10 * WINDOW)
    new_keys(cache, 0, WINDOW // 2)
    assert not cache.idle and len(cache) == WINDOW // 2  # not judged yet: all kept
    new_keys(cache, WINDOW // 2, WINDOW // 2)
    assert cache.idle and cache.sampling  # judged at the end of the window
    assert len(cache) == WINDOW // 2 + WINDOW // 2 // SAMPLE
    new_keys(cache, WINDOW, WINDOW)
    assert len(cache) == WINDOW // 2 + WINDOW // 2 // SAMPLE + WINDOW // SAMPLE
