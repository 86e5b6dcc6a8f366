"""The meter on its own: the server's policy rule by rule and zxcvbn's estimate."""

from __future__ import annotations

from user_manager.strength import evaluate, policy_checks

POLICY = {"min_length": 12, "max_length": 256, "require_upper": True, "require_lower": True,
          "require_digit": True, "require_special": True}


def test_each_rule_of_the_server_policy_is_checked():
    checks = {c["rule"]: c["ok"] for c in policy_checks("short", POLICY)}
    assert checks == {"length": False, "upper": False, "lower": True, "digit": False,
                      "special": False, "max_length": True}
    assert all(c["ok"] for c in policy_checks("Corr3ct-Horse-Battery", POLICY))
    # A policy without a rule does not check it.
    relaxed = {**POLICY, "require_special": False, "min_length": 8}
    assert [c["rule"] for c in policy_checks("abc", relaxed)] == [
        "length", "upper", "lower", "digit", "max_length"]


def test_a_password_that_meets_every_rule_can_still_be_too_easy_to_guess():
    verdict = evaluate("Password1234!", POLICY, [], min_score=2)
    assert verdict["policy_ok"] is True
    assert verdict["score"] <= 1 and verdict["acceptable"] is False
    assert any("too easy to guess" in p for p in verdict["problems"])
    assert verdict["warning"]  # zxcvbn says why
    # With min_score 0 only the server's policy decides.
    assert evaluate("Password1234!", POLICY, [], min_score=0)["acceptable"] is True


def test_a_strong_password_is_acceptable_and_names_count_as_known_words():
    strong = evaluate("Corr3ct-Horse-Battery", POLICY, ["ann"], min_score=2)
    assert strong["acceptable"] and strong["score"] == 4 and strong["problems"] == []
    assert strong["crack_time"] and strong["label"] == "very strong"
    plain = evaluate("Annabelle-Smith1", POLICY, [], min_score=0)["guesses_log10"]
    known = evaluate("Annabelle-Smith1", POLICY, ["annabelle", "smith"],
                     min_score=0)["guesses_log10"]
    assert known < plain


def test_an_empty_password_is_not_acceptable_and_breaks_nothing():
    verdict = evaluate("", POLICY, [], min_score=2)
    assert verdict["acceptable"] is False and verdict["label"] == "empty"
    assert verdict["problems"][0] == "needs at least 12 characters"
    long = evaluate("Ab1!" + "x" * 250, POLICY, [], min_score=2)
    assert long["policy_ok"] is True  # the estimate reads the first 72 characters only
