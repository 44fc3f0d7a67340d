"""Factorise integers: CPU-bound work in pure Python, the shape of job redpool is for.

Trial division by small primes, then Pollard's rho (Brent's variant) with a Miller-Rabin
primality test for what remains.
"""

from __future__ import annotations

import math
import random

from redpool import task

_SMALL = [p for p in range(2, 1000) if all(p % q for q in range(2, int(p**0.5) + 1))]


def is_prime(n: int) -> bool:
    """Deterministic Miller-Rabin for n < 3.3e24, which covers the demo's inputs."""
    if n < 2:
        return False
    for p in _SMALL[:13]:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41):
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def _rho(n: int) -> int:
    if n % 2 == 0:
        return 2
    rng = random.Random(n)
    while True:
        y, c, m = rng.randrange(1, n), rng.randrange(1, n), 128
        g = r = q = 1
        x = ys = y
        while g == 1:
            x = y
            for _ in range(r):
                y = (y * y + c) % n
            k = 0
            while k < r and g == 1:
                ys = y
                for _ in range(min(m, r - k)):
                    y = (y * y + c) % n
                    q = q * abs(x - y) % n
                g = math.gcd(q, n)
                k += m
            r *= 2
        if g == n:
            g = 1
            while g == 1:
                ys = (ys * ys + c) % n
                g = math.gcd(abs(x - ys), n)
        if g != n:
            return g


@task
def factorise(n: int) -> list[int]:
    """The prime factors of ``n``, smallest first."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"expected a positive integer, got {n!r}")
    factors: list[int] = []
    for p in _SMALL:
        while n % p == 0:
            factors.append(p)
            n //= p
    stack = [n] if n > 1 else []
    while stack:
        m = stack.pop()
        if is_prime(m):
            factors.append(m)
        else:
            d = _rho(m)
            stack += [d, m // d]
    return sorted(factors)
