"""Several provider keys in one variable: `GROQ_API_KEY=key1,key2`, each with a key id.

The id names a key without revealing anything of it: the variable alone when it holds one key,
else the variable and the key's position in the list as written, counted from 1
(`GROQ_API_KEY#2`). Blank items are skipped (their positions still count); a key listed twice is
used once, under its first position.
"""

from __future__ import annotations

SEPARATOR = ","


def split_keys(value: str) -> list[tuple[int, str]]:
    """The keys in a key variable's value with their positions (from 1), in order."""
    found: list[tuple[int, str]] = []
    seen: set[str] = set()
    for position, item in enumerate(value.split(SEPARATOR), start=1):
        key = item.strip()
        if key and key not in seen:
            seen.add(key)
            found.append((position, key))
    return found


def key_ids(variable: str, value: str) -> list[tuple[str, str]]:
    """(key id, key) for every key in `value`, the value of `variable`."""
    keys = split_keys(value)
    if len(keys) == 1:
        return [(variable, keys[0][1])]
    return [(f"{variable}#{position}", key) for position, key in keys]
