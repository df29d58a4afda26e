"""`compare`: a provider's list against its catalog models, without I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.selector.discovery import Known, Unlisted, Verdict, compare
from services.selector.providers.listing import Listed

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(days=2)
A = Known(1, "groq/a", "a")
B = Known(2, "groq/b", "b")


def test_every_listed_model_is_fine_and_nothing_is_new():
    verdict = compare("groq", [A, B], ["a", "b"], [Listed("a"), Listed("b")], NOW)

    assert verdict == Verdict()


def test_a_missing_model_is_unlisted_with_its_reason_and_since_now():
    verdict = compare("groq", [A, B], ["a", "b"], [Listed("a")], NOW)

    assert verdict.unlisted == (
        Unlisted(B, "not listed by groq since 2026-12-01 10:00 UTC — update catalog.yaml", NOW),
    )
    assert verdict.unlisted[0].changed


def test_a_model_still_missing_keeps_its_first_time_and_needs_no_saving():
    reason = "not listed by groq since 2026-11-29 10:00 UTC — update catalog.yaml"
    gone = Known(2, "groq/b", "b", unlisted_reason=reason, unlisted_since=EARLIER)

    [unlisted] = compare("groq", [A, gone], ["a", "b"], [Listed("a")], NOW).unlisted

    assert (unlisted.reason, unlisted.since) == (reason, EARLIER)
    assert not unlisted.changed


def test_a_model_listed_again_is_relisted():
    gone = Known(2, "groq/b", "b", unlisted_reason="not listed …", unlisted_since=EARLIER)

    verdict = compare("groq", [A, gone], ["a", "b"], [Listed("a"), Listed("b")], NOW)

    assert verdict == Verdict(relisted=(gone,))


def test_inactive_expired_and_priced_models_are_unlisted_with_their_own_reason():
    listed = [
        Listed("a", active=False),
        Listed("b", expires=date(2026, 12, 1)),
        Listed("c:free", free=False),
        Listed("d:free", free=True, expires=date(2026, 12, 2)),
    ]
    models = [A, B, Known(3, "p/c", "c:free"), Known(4, "p/d", "d:free")]

    verdict = compare("openrouter", models, [m.provider_model_id for m in models], listed, NOW)

    assert [(u.model.name, u.reason) for u in verdict.unlisted] == [
        (
            "groq/a",
            "listed as inactive by openrouter since 2026-12-01 10:00 UTC — update catalog.yaml",
        ),
        ("groq/b", "past its expiration date 2026-12-01 at openrouter — update catalog.yaml"),
        (
            "p/c",
            "no longer free at openrouter since 2026-12-01 10:00 UTC (its list gives a price) "
            "— update catalog.yaml",
        ),
    ]


def test_a_reason_that_changes_is_saved_with_the_first_time():
    gone = Known(1, "groq/a", "a", unlisted_reason="not listed …", unlisted_since=EARLIER)

    [unlisted] = compare("groq", [gone], ["a"], [Listed("a", active=False)], NOW).unlisted

    assert unlisted.since == EARLIER
    assert unlisted.reason.startswith("listed as inactive by groq since 2026-11-29 10:00 UTC")
    assert unlisted.changed


def test_new_free_models_are_the_free_active_unexpired_ones_the_catalog_lacks():
    listed = [
        Listed("a"),
        Listed("new:free", free=True, context_tokens=32768),
        Listed("paid", free=False),
        Listed("unknown-price"),
        Listed("retired:free", free=True, active=False),
        Listed("leaving:free", free=True, expires=date(2026, 11, 30)),
        Listed("switched-off:free", free=True),
    ]

    verdict = compare("openrouter", [A], ["a", "switched-off:free"], listed, NOW)

    assert verdict.new_free == (Listed("new:free", free=True, context_tokens=32768),)


def test_gemini_catalog_ids_may_carry_the_models_prefix():
    model = Known(1, "gemini/flash", "models/gemini-3.6-flash")

    verdict = compare(
        "gemini", [model], ["models/gemini-3.6-flash"], [Listed("gemini-3.6-flash")], NOW
    )

    assert verdict == Verdict()
