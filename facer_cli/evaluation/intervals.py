"""How sure a measured rate is: exact binomial intervals and the pairs a rate needs (pure Python).

- **Confidence intervals**: every FAR and FRR comes with its exact two-sided 95 %
  Clopper–Pearson interval for k errors in n pairs (`binomial_ci`; with k = 0 its
  upper end is 1 − 0.025^(1/n) ≈ 3.7 / n, a little above the one-sided "rule of
  three" 3 / n).
- **Pairs a rate needs**: a point rate f is measured, not guessed, only with at least
  ⌈1/f⌉ pairs (`needed_pairs`: with fewer, one error already exceeds f); a rate is
  *shown* within a target only when the upper end of its interval is (`pairs_needed`:
  with no error at all, ⌈ln 0.025 / ln(1 − target)⌉ pairs).

No SciPy import: the incomplete beta function is evaluated here.
"""

from __future__ import annotations

import math

_EPS = 1e-9  # guards floor(target × n) against 0.29 × 100 = 28.999…
CONFIDENCE = 0.95


def needed_pairs(rate: float) -> int | float:
    """Pairs needed before a rate this small is measured rather than guessed: ⌈1 / rate⌉ (∞ for 0)."""
    if rate <= 0:
        return math.inf
    return math.ceil(1.0 / rate - _EPS)


def needs_note(rate: float, kind: str, have: int) -> str:
    """Why a point rate is not reported: how many pairs of `kind` it needs, and how many there are."""
    needed = needed_pairs(rate)
    if needed == math.inf:
        return f"cannot be measured with any number of {kind} pairs"
    return f"needs ≥ {needed} {kind} pairs, have {have}"


def error_budget(target: float, n: int) -> int:
    """The most errors in n pairs whose point rate stays within `target`: ⌊target × n⌋."""
    return math.floor(target * n + _EPS)


def fraction(count: int, total: int) -> float | None:
    """count / total; None for no pairs at all."""
    return None if total == 0 else count / total


def rounded(value: float | None, digits: int = 6) -> float | None:
    """A figure as reports print it (None stays None)."""
    return None if value is None else round(float(value), digits)


# -- confidence intervals (pure Python: no SciPy import) ------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        step = d * c
        h *= step
        if abs(step - 1.0) < 1e-15:
            break
    return h


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function (the Beta(a, b) CDF at x)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def beta_quantile(q: float, a: float, b: float) -> float:
    """x with I_x(a, b) = q, by bisection (monotone in x)."""
    low, high = 0.0, 1.0
    for _ in range(200):
        middle = (low + high) / 2
        if regularized_beta(a, b, middle) < q:
            low = middle
        else:
            high = middle
        if high - low < 1e-15:
            break
    return (low + high) / 2


def binomial_ci(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact two-sided Clopper–Pearson interval of a rate with k events in n trials ((0, 1) for n = 0)."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= k <= n:
        raise ValueError(f"k must be between 0 and n ({n}), got {k}")
    alpha = 1.0 - confidence
    if k == 0:
        low = 0.0
        high = 1.0 - (alpha / 2) ** (1.0 / n)
    else:
        low = beta_quantile(alpha / 2, k, n - k + 1)
        high = 1.0 if k == n else beta_quantile(1.0 - alpha / 2, k + 1, n - k)
    if k == n:
        low = (alpha / 2) ** (1.0 / n)
    return low, high


def pairs_needed(target: float, confidence: float = CONFIDENCE) -> int | float:
    """Fewest pairs whose 95 % upper bound can reach `target`, with no error at all (∞ for 0)."""
    if target <= 0:
        return math.inf
    if target >= 1:
        return 1
    alpha = 1.0 - confidence
    n = math.ceil(math.log(alpha / 2) / math.log1p(-target) - _EPS)
    while binomial_ci(0, n, confidence)[1] > target:  # guard the rounding
        n += 1
    return n


def most_errors_within(target: float, n: int, confidence: float = CONFIDENCE) -> int | None:
    """The most errors in n pairs whose 95 % upper bound stays within `target` (None: not even 0)."""
    if n <= 0 or binomial_ci(0, n, confidence)[1] > target:
        return None
    low, high = 0, n  # the upper bound rises with k: bisect for the last k within the target
    while low < high:
        middle = (low + high + 1) // 2
        if binomial_ci(middle, n, confidence)[1] <= target:
            low = middle
        else:
            high = middle - 1
    return low


def interval(count: int, total: int) -> tuple[float, float] | None:
    """The 95 % interval of count / total; None for no pairs at all."""
    return None if total == 0 else binomial_ci(count, total)


def interval_list(ci: tuple[float, float] | None) -> list[float | None] | None:
    """An interval as JSON reports it: [low, high], rounded."""
    return None if ci is None else [rounded(ci[0]), rounded(ci[1])]
